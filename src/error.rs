//! The one error type of Seat Storm and its stable GraphQL codes.
//!
//! Every variant maps to exactly one `extensions.code`. Resolvers convert with
//! `async_graphql::ResultExt::extend` (never plain `?`, which goes through `Display` and drops the code).
//! Internal errors are logged with their cause chain and reach the client only as a generic message.

use async_graphql::{ErrorExtensions, FieldError};
use sea_orm::error::ConnAcquireErr;
use sea_orm::{DbErr, RuntimeErr};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadUserInput(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    SoldOut(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// Some requested seats are sold; lists every unavailable seat.
    #[error("some seats are sold")]
    SeatsSold(Vec<uuid::Uuid>),
    /// Some requested seats are in someone else's hold; lists them.
    #[error("some seats are held by someone else")]
    SeatsHeld(Vec<uuid::Uuid>),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the payment was declined: {0}")]
    PaymentDeclined(String),
    /// The event sells through its waiting room and the buyer has no valid queue pass.
    #[error("{0}")]
    QueueRequired(String),
    /// A persisted query's hash is unknown: Apollo clients then resend it with the document. The
    /// message is the one those clients look for.
    #[error("PersistedQueryNotFound")]
    PersistedQueryNotFound,
    /// Only documents known to the server are accepted, and this one is not.
    #[error("only persisted queries known to this server are accepted")]
    PersistedQueryRequired,
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::SoldOut(_) | Self::SeatsSold(_) => "SOLD_OUT",
            Self::SeatsHeld(_) => "CONFLICT",
            Self::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Self::HoldExpired => "HOLD_EXPIRED",
            Self::PaymentDeclined(_) => "PAYMENT_DECLINED",
            Self::QueueRequired(_) => "QUEUE_REQUIRED",
            Self::TooManyRequests(_) => "TOO_MANY_REQUESTS",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryRequired => "PERSISTED_QUERY_REQUIRED",
            // Every database connection stayed busy for the whole acquire timeout: overload, not a
            // fault. A retry with the same idempotency key is safe.
            Self::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => "SERVER_BUSY",
            Self::Database(_) | Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    /// Maps a violated database constraint to the error it means, by constraint name.
    ///
    /// PostgreSQL reports the constraint's name; SQLite reports a CHECK by name but a UNIQUE index by its
    /// columns (`UNIQUE constraint failed: users.email`), so each rule lists both spellings.
    /// Any other database error stays internal.
    pub fn on_constraint(err: DbErr, rules: &[ConstraintRule]) -> Self {
        if let Some(violated) = violated_constraint(&err) {
            for rule in rules {
                if rule.matches(&violated) {
                    return (rule.error)();
                }
            }
        }
        Self::Database(err)
    }
}

/// One entry of [`AppError::on_constraint`]: a constraint and the error its violation means.
pub struct ConstraintRule {
    pub name: &'static str,
    pub sqlite_columns: &'static str,
    pub error: fn() -> AppError,
}

impl ConstraintRule {
    fn matches(&self, violated: &str) -> bool {
        violated == self.name
            || (!self.sqlite_columns.is_empty() && violated == self.sqlite_columns)
    }
}

/// The name (PostgreSQL, SQLite CHECK) or column list (SQLite UNIQUE) of the violated constraint.
fn violated_constraint(err: &DbErr) -> Option<String> {
    let runtime = match err {
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return None,
    };
    let RuntimeErr::SqlxError(sqlx_err) = runtime else {
        return None;
    };
    let database_error = sqlx_err.as_database_error()?;
    if let Some(name) = database_error.constraint() {
        return Some(name.to_owned());
    }
    let message = database_error.message();
    ["UNIQUE constraint failed: ", "CHECK constraint failed: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .map(|rest| rest.trim().to_owned())
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> FieldError {
        let message = match self {
            Self::Database(err @ DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => {
                tracing::warn!(error = %err, "no database connection free: answering SERVER_BUSY");
                "the server is busy: retry in a moment".to_owned()
            }
            Self::Database(err) => {
                tracing::error!(error = %err, "database error");
                "internal server error".to_owned()
            }
            Self::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        FieldError::new(message).extend_with(|_, extensions| {
            extensions.set("code", self.code());
            if let Self::SeatsSold(seats) | Self::SeatsHeld(seats) = self {
                let ids: Vec<async_graphql::Value> = seats
                    .iter()
                    .map(|id| async_graphql::Value::from(id.to_string()))
                    .collect();
                extensions.set("unavailableSeatIds", async_graphql::Value::List(ids));
            }
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_own_code_and_it_reaches_the_graphql_error() {
        let cases = [
            (AppError::bad_input("x"), "BAD_USER_INPUT"),
            (AppError::Unauthenticated("x".into()), "UNAUTHENTICATED"),
            (AppError::Forbidden("x".into()), "FORBIDDEN"),
            (AppError::NotFound("event"), "NOT_FOUND"),
            (AppError::Conflict("x".into()), "CONFLICT"),
            (AppError::SoldOut("x".into()), "SOLD_OUT"),
            (AppError::TooManyRequests("x".into()), "TOO_MANY_REQUESTS"),
            (AppError::SeatsSold(vec![]), "SOLD_OUT"),
            (AppError::SeatsHeld(vec![]), "CONFLICT"),
            (AppError::LimitExceeded("x".into()), "LIMIT_EXCEEDED"),
            (AppError::HoldExpired, "HOLD_EXPIRED"),
            (AppError::PaymentDeclined("x".into()), "PAYMENT_DECLINED"),
            (AppError::QueueRequired("x".into()), "QUEUE_REQUIRED"),
            (
                AppError::PersistedQueryNotFound,
                "PERSISTED_QUERY_NOT_FOUND",
            ),
            (AppError::PersistedQueryRequired, "PERSISTED_QUERY_REQUIRED"),
            (
                AppError::Internal(anyhow::anyhow!("boom")),
                "INTERNAL_SERVER_ERROR",
            ),
            (
                AppError::Database(DbErr::Custom("boom".into())),
                "INTERNAL_SERVER_ERROR",
            ),
            (
                AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
                "SERVER_BUSY",
            ),
            // A closed pool is a fault of the server, not a load to wait out.
            (
                AppError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
                "INTERNAL_SERVER_ERROR",
            ),
        ];
        for (error, code) in cases {
            let graphql_error = error.extend();
            let extensions = graphql_error.extensions.expect("extensions are set");
            assert_eq!(
                extensions.get("code"),
                Some(&async_graphql::Value::from(code)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = AppError::Database(DbErr::Custom("SELECT secret FROM users".into())).extend();
        assert!(!error.message.contains("SELECT"));
    }
}
