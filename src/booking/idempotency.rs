//! Idempotency keys: the same key with the same request returns the first result, also while the first
//! is still running (without doing the work twice); the same key with a different request is CONFLICT.
//!
//! The first request claims the key by inserting its row (`in_flight`); the unique `(user_id, key)`
//! makes that claim exclusive across instances. It stores the result when done (`completed`), or
//! deletes the row when it failed, so a retry runs the operation again. A duplicate finds the row and
//! waits for it to complete. Keys live 24 hours. A claim older than two minutes belongs to a request
//! that died between claim and answer (a crash or restart): the next retry takes it over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::enums::IdempotencyStatus;
use entity::idempotency_key;
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, IntoActiveModel, QueryFilter, Statement,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::is_postgres;
use crate::error::{AppError, AppResult};

/// How long a key is remembered.
pub const KEY_TTL_HOURS: i64 = 24;
/// How long a duplicate waits for the first request before giving up with CONFLICT.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(15);
const POLL_EVERY: Duration = Duration::from_millis(25);
/// How long a claim (`in_flight`) is honoured. Far beyond the HTTP request timeout (30 s) and a
/// booking batch, so only a request that died (crash, restart) leaves one this old.
const IN_FLIGHT_LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// A validated idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let key = raw.trim();
        if key.is_empty() || key.len() > 255 {
            return Err(AppError::bad_input(
                "idempotencyKey must be 1 to 255 characters",
            ));
        }
        // A key is an identifier. NUL in particular: PostgreSQL text cannot hold it, and a key that
        // failed inside a coalesced batch's insert would fail the batch for every buyer in it (the
        // GraphQL guardrails refuse NUL anywhere; this holds for any other caller too).
        if key.chars().any(char::is_control) {
            return Err(AppError::bad_input(
                "idempotencyKey must not contain control characters",
            ));
        }
        Ok(Self(key.to_owned()))
    }
}

/// A fingerprint of what a request asks for: the operation and its canonical input.
pub fn request_hash(operation: &str, input: &impl Serialize) -> AppResult<String> {
    let json = serde_json::to_string(input)
        .map_err(|err| AppError::Internal(anyhow::anyhow!("hashing a request: {err}")))?;
    let digest = Sha256::new()
        .chain_update(operation.as_bytes())
        .chain_update([0])
        .chain_update(json.as_bytes())
        .finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `work` at most once per (user, key): a duplicate gets the stored result of the first run.
pub async fn once<T, F, Fut>(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdempotencyKey,
    operation: &str,
    request_hash: String,
    work: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    once_inner(db, user_id, key, operation, request_hash, false, work).await
}

/// A claimed key, for work that completes it itself (see [`once_completed_by_work`]).
#[derive(Debug, Clone)]
pub struct ClaimedKey {
    pub user_id: Uuid,
    pub key: IdempotencyKey,
}

/// Like [`once`], but a successful `work` has completed the key itself, with [`complete_claimed`] in
/// the transaction that made its outcome: the key commits with the outcome, and the request costs no
/// commit of its own for it. A failed `work` gives the key back as with `once`.
pub async fn once_completed_by_work<T, F, Fut>(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdempotencyKey,
    operation: &str,
    request_hash: String,
    work: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    once_inner(db, user_id, key, operation, request_hash, true, work).await
}

/// Completes claimed keys with their responses in one statement, in the caller's transaction.
pub(crate) async fn complete_claimed(
    db: &impl ConnectionTrait,
    completions: &[(&ClaimedKey, serde_json::Value)],
) -> AppResult<()> {
    if completions.is_empty() {
        return Ok(());
    }
    if is_postgres(db) {
        let mut users = Vec::with_capacity(completions.len());
        let mut keys = Vec::with_capacity(completions.len());
        let mut responses = Vec::with_capacity(completions.len());
        for (claimed, response) in completions {
            users.push(claimed.user_id);
            keys.push(claimed.key.0.clone());
            responses.push(response.to_string());
        }
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE idempotency_keys SET status = $1, response = done.response::jsonb \
             FROM unnest($2::uuid[], $3::text[], $4::text[]) AS done (user_id, key, response) \
             WHERE idempotency_keys.user_id = done.user_id AND idempotency_keys.key = done.key",
            [
                IdempotencyStatus::Completed.as_str().into(),
                users.into(),
                keys.into(),
                responses.into(),
            ],
        ))
        .await?;
        return Ok(());
    }
    let row_of = |claimed: &ClaimedKey| {
        Condition::all()
            .add(idempotency_key::Column::UserId.eq(claimed.user_id))
            .add(idempotency_key::Column::Key.eq(claimed.key.0.as_str()))
    };
    let (response, rows) = completions.iter().fold(
        (CaseStatement::new(), Condition::any()),
        |(response, rows), (claimed, value)| {
            (
                response.case(row_of(claimed), Expr::value(value.clone())),
                rows.add(row_of(claimed)),
            )
        },
    );
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::Status,
            Expr::value(IdempotencyStatus::Completed.as_str()),
        )
        .col_expr(idempotency_key::Column::Response, response.into())
        .filter(rows)
        .exec(db)
        .await?;
    Ok(())
}

async fn once_inner<T, F, Fut>(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdempotencyKey,
    operation: &str,
    request_hash: String,
    completed_by_work: bool,
    work: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        let now = Utc::now();
        if claim(db, user_id, key, operation, &request_hash, now).await? {
            return run_claimed(db, user_id, key, completed_by_work, work).await;
        }
        let Some(existing) = find(db, user_id, key).await? else {
            // The first request failed and gave the key back between our two statements: claim again.
            continue;
        };
        if existing.expires_at <= now || abandoned(&existing, now) {
            // Forgotten, or claimed by a request that died (a crash or restart between its claim and
            // its answer): run as new. Deleting only this very row keeps a fresh claim safe.
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::Id.eq(existing.id))
                .filter(idempotency_key::Column::Status.eq(existing.status))
                .exec(db)
                .await?;
            continue;
        }
        if existing.request_hash != request_hash || existing.operation != operation {
            return Err(AppError::Conflict(
                "this idempotency key was already used for a different request".into(),
            ));
        }
        if existing.status == IdempotencyStatus::Completed {
            let stored = existing.response.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "completed idempotency key without a response"
                ))
            })?;
            return serde_json::from_value(stored).map_err(|err| {
                AppError::Internal(anyhow::anyhow!("reading a stored response: {err}"))
            });
        }
        if started.elapsed() > WAIT_FOR_FIRST {
            return Err(AppError::Conflict(
                "a request with this idempotency key is still in progress".into(),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// True for a claim older than any request can run: its request died without answering.
fn abandoned(key: &idempotency_key::Model, now: DateTime<Utc>) -> bool {
    key.status == IdempotencyStatus::InFlight && key.created_at + IN_FLIGHT_LEASE <= now
}

/// The row that claims `key` for a request that is still running.
pub(crate) fn in_flight(
    user_id: Uuid,
    key: &IdempotencyKey,
    operation: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> idempotency_key::Model {
    idempotency_key::Model {
        id: Uuid::now_v7(),
        user_id,
        key: key.0.clone(),
        operation: operation.to_owned(),
        request_hash: request_hash.to_owned(),
        status: IdempotencyStatus::InFlight,
        response: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(KEY_TTL_HOURS),
    }
}

/// The claimed row once its request is done, with the response a retry gets.
pub(crate) fn completed(
    claimed: &idempotency_key::Model,
    response: serde_json::Value,
) -> idempotency_key::Model {
    idempotency_key::Model {
        status: IdempotencyStatus::Completed,
        response: Some(response),
        ..claimed.clone()
    }
}

async fn claim(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdempotencyKey,
    operation: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let row = in_flight(user_id, key, operation, request_hash, now)
        .into_active_model()
        .reset_all();
    let inserted = idempotency_key::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                idempotency_key::Column::UserId,
                idempotency_key::Column::Key,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(rows) => Ok(rows > 0),
        // ON CONFLICT DO NOTHING inserted nothing: somebody holds the key.
        Err(sea_orm::DbErr::RecordNotInserted) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    key: &IdempotencyKey,
) -> AppResult<Option<idempotency_key::Model>> {
    Ok(idempotency_key::Entity::find()
        .filter(idempotency_key::Column::UserId.eq(user_id))
        .filter(idempotency_key::Column::Key.eq(key.0.as_str()))
        .one(db)
        .await?)
}

async fn run_claimed<T, F, Fut>(
    db: &DatabaseConnection,
    user_id: Uuid,
    key: &IdempotencyKey,
    completed_by_work: bool,
    work: F,
) -> AppResult<T>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let outcome = work().await;
    let filter = || {
        sea_orm::Condition::all()
            .add(idempotency_key::Column::UserId.eq(user_id))
            .add(idempotency_key::Column::Key.eq(key.0.as_str()))
    };
    match &outcome {
        Ok(_) if completed_by_work => {}
        Ok(value) => {
            let response = serde_json::to_value(value)
                .map_err(|err| AppError::Internal(anyhow::anyhow!("storing a response: {err}")))?;
            idempotency_key::Entity::update_many()
                .col_expr(
                    idempotency_key::Column::Status,
                    Expr::value(IdempotencyStatus::Completed.as_str()),
                )
                .col_expr(idempotency_key::Column::Response, Expr::value(response))
                .filter(filter())
                .exec(db)
                .await?;
        }
        Err(_) => {
            idempotency_key::Entity::delete_many()
                .filter(filter())
                .exec(db)
                .await?;
        }
    }
    outcome
}

/// Completes claimed keys (by row id) with their responses in one statement, for a batch whose
/// requests committed together.
///
/// On PostgreSQL (as in [`complete_claimed`]) the pairs go as arrays, so the statement's text is the
/// same for every batch: written as a `CASE` with a branch per key it was a new statement for each
/// batch size (176 texts in one storm), parsed, planned and prepared anew every time.
pub(crate) async fn complete_all(
    db: &impl ConnectionTrait,
    responses: Vec<(Uuid, serde_json::Value)>,
) -> AppResult<()> {
    if responses.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = responses.iter().map(|(id, _)| *id).collect();
    if is_postgres(db) {
        let texts: Vec<String> = responses
            .iter()
            .map(|(_, response)| response.to_string())
            .collect();
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE idempotency_keys SET status = $1, response = done.response::jsonb \
             FROM unnest($2::uuid[], $3::text[]) AS done (id, response) \
             WHERE idempotency_keys.id = done.id AND idempotency_keys.id = ANY($2::uuid[])",
            [
                IdempotencyStatus::Completed.as_str().into(),
                ids.into(),
                texts.into(),
            ],
        ))
        .await?;
        return Ok(());
    }
    let response = responses
        .into_iter()
        .fold(CaseStatement::new(), |case, (id, response)| {
            case.case(idempotency_key::Column::Id.eq(id), Expr::value(response))
        });
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::Status,
            Expr::value(IdempotencyStatus::Completed.as_str()),
        )
        .col_expr(idempotency_key::Column::Response, response.into())
        .filter(idempotency_key::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets keys older than their time to live.
pub async fn delete_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<u64> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_claim_older_than_any_request_is_abandoned() {
        let now = Utc::now();
        let key = IdempotencyKey::parse("k").expect("a key");
        let claim = |age: chrono::Duration| in_flight(Uuid::nil(), &key, "op", "hash", now - age);
        assert!(!abandoned(&claim(chrono::Duration::seconds(30)), now));
        assert!(abandoned(&claim(chrono::Duration::minutes(3)), now));
        let done = completed(&claim(chrono::Duration::hours(1)), serde_json::json!(1));
        assert!(!abandoned(&done, now), "a completed key keeps its answer");
    }

    #[test]
    fn the_same_request_hashes_the_same_and_another_differently() {
        let a = request_hash("holdTickets", &("tier", 2)).expect("hash");
        let b = request_hash("holdTickets", &("tier", 2)).expect("hash");
        let c = request_hash("holdTickets", &("tier", 3)).expect("hash");
        let d = request_hash("bookTickets", &("tier", 2)).expect("hash");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn keys_must_be_1_to_255_characters() {
        assert!(IdempotencyKey::parse("  ").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("order-7f3a").is_ok());
    }
}
