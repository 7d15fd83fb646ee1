//! Database connection, migrations, the statement counter, and batch statements written for PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr, EntityName,
    EntityTrait, IdenStatic, PrimaryKeyTrait, Statement,
};

use crate::config::Config;

/// Counts SQL statements the pool executes: tests use it to prove a query is free of N+1 loads.
#[derive(Debug, Default)]
pub struct StatementCounter(AtomicU64);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Opens the pool and brings the schema up to date.
pub async fn connect(
    config: &Config,
) -> anyhow::Result<(DatabaseConnection, Arc<StatementCounter>)> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out by default: one more round trip per acquire, and a
        // booking acquires several times (6 % of the server's CPU under ticket-war, docs/profiling.md).
        // Only a connection idle this long may have been dropped by the server or a proxy; a busy one
        // that broke still fails its query and leaves the pool.
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    if config.is_postgres() {
        options
            .max_connections(config.db_max_connections)
            .min_connections(1);
    } else {
        // SQLite allows one writer at a time; a single connection serialises work in the pool instead
        // of failing with SQLITE_BUSY when two transactions try to upgrade to writers.
        options.max_connections(1).min_connections(1);
    }
    let mut db = Database::connect(options)
        .await
        .with_context(|| "cannot connect to the database at DATABASE_URL".to_owned())?;

    let counter = Arc::new(StatementCounter::default());
    let sink = Arc::clone(&counter);
    db.set_metric_callback(move |_| {
        sink.0.fetch_add(1, Ordering::Relaxed);
    });

    Migrator::up(&db, None)
        .await
        .context("running database migrations")?;
    Ok((db, counter))
}

/// Whether the connection speaks PostgreSQL (row locks, SKIP LOCKED) or SQLite (one writer at a time).
pub fn is_postgres(db: &impl sea_orm::ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// `column IN (ids)`, written for the planner: on PostgreSQL one array parameter (`= ANY($1)`), so a
/// batch's statement has the same text whatever its size and a hundred ids cost no more to plan than
/// one (an `IN` list of 127 took ~6 ms to plan and 0.1 ms to run); SQLite has no arrays.
pub fn any_of(
    db: &impl sea_orm::ConnectionTrait,
    column: impl sea_orm::ColumnTrait,
    ids: &[uuid::Uuid],
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::extension::postgres::PgFunc;
    use sea_orm::sea_query::{Expr, ExprTrait};
    if is_postgres(db) {
        Expr::col(column).eq(PgFunc::any(Expr::val(ids.to_vec())))
    } else {
        column.is_in(ids.iter().copied())
    }
}

/// `column = 'value'` with the value in the statement's text rather than a parameter. A partial index
/// (`WHERE status = 'available'`) serves only a statement that names its value, and PostgreSQL runs
/// a prepared statement on a generic plan after a few executions, which cannot see what a parameter
/// holds: it would scan the table instead. For the program's own constants (statuses), never input.
pub fn equals_constant(
    column: impl sea_orm::sea_query::IntoColumnRef,
    value: &'static str,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    Expr::col(column).eq(Expr::Constant(value.into()))
}

/// Inserts `rows` (active models that all set the same columns) in one statement and returns nothing;
/// see [`insert_new`] for the statement and why.
pub async fn insert_all<A>(db: &impl sea_orm::ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
{
    if rows.is_empty() {
        return Ok(());
    }
    if is_postgres(db) {
        db.execute_raw(populate(rows, false)?).await?;
    } else {
        for chunk in sqlite_chunks(rows) {
            A::Entity::insert_many(chunk)
                .exec_without_returning(db)
                .await?;
        }
    }
    Ok(())
}

/// Inserts `rows` (active models that all set the same columns, `id` among them), skipping those
/// that conflict with a unique key, and returns the ids of those that went in.
///
/// On PostgreSQL the statement's text depends on the table and columns, never on the number of rows:
/// the rows go as one `jsonb` parameter, turned into table rows by `jsonb_populate_recordset`. A
/// multi-row `VALUES` list is a new statement for every batch size: parsed, planned and prepared
/// anew (one more round trip), with one bound parameter per value. SQLite takes `VALUES` lists.
pub async fn insert_new<A>(
    db: &impl sea_orm::ConnectionTrait,
    rows: Vec<A>,
) -> Result<std::collections::HashSet<uuid::Uuid>, DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    <<A::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: Into<uuid::Uuid>,
{
    if rows.is_empty() {
        return Ok(Default::default());
    }
    if is_postgres(db) {
        let inserted = db.query_all_raw(populate(rows, true)?).await?;
        return inserted
            .iter()
            .map(|row| row.try_get::<uuid::Uuid>("", "id"))
            .collect();
    }
    let mut ids = std::collections::HashSet::new();
    for chunk in sqlite_chunks(rows) {
        let inserted = A::Entity::insert_many(chunk)
            .on_conflict(
                sea_orm::sea_query::OnConflict::new()
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_with_returning_keys(db)
            .await?;
        if let sea_orm::TryInsertResult::Inserted(keys) = inserted {
            ids.extend(keys.into_iter().map(Into::into));
        }
    }
    Ok(ids)
}

/// SQLite binds at most 32,766 values per statement.
fn sqlite_chunks<A: ActiveModelTrait>(rows: Vec<A>) -> Vec<Vec<A>> {
    const ROWS_PER_STATEMENT: usize = 1_000;
    let mut chunks = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(ROWS_PER_STATEMENT).collect());
    }
    chunks
}

/// `INSERT INTO t (columns) SELECT columns FROM jsonb_populate_recordset(NULL::t, $1)` with the rows
/// as a JSON array of objects keyed by column name, optionally skipping conflicts and returning ids.
///
/// The JSON is written straight into the parameter's text (PostgreSQL parses it into `jsonb` once):
/// a `serde_json::Value` tree, a map with its own key strings per row, then serialised by the
/// driver, was ~8 % of the server's CPU in a general-admission storm (docs/profiling.md).
fn populate<A: ActiveModelTrait>(rows: Vec<A>, skip_conflicts: bool) -> Result<Statement, DbErr> {
    use sea_orm::Iterable;
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|column| rows.first().is_some_and(|row| !row.is_not_set(*column)))
        .collect();
    // `"column":` for each column, written once.
    let keys: Vec<String> = columns
        .iter()
        .map(|column| format!("{}:", serde_json::Value::from(column.as_str())))
        .collect();
    let mut json = Vec::with_capacity(rows.len() * columns.len() * 48 + 2);
    json.push(b'[');
    for (at, mut row) in rows.into_iter().enumerate() {
        if at > 0 {
            json.push(b',');
        }
        json.push(b'{');
        for (n, (column, key)) in columns.iter().zip(&keys).enumerate() {
            if n > 0 {
                json.push(b',');
            }
            json.extend_from_slice(key.as_bytes());
            let value = row.take(*column).into_value().ok_or_else(|| {
                DbErr::Custom(format!(
                    "a batch insert's rows set different columns ({} unset)",
                    column.as_str()
                ))
            })?;
            write_json(&mut json, value)?;
        }
        json.push(b'}');
    }
    json.push(b']');
    let json = String::from_utf8(json)
        .map_err(|_| DbErr::Custom("a batch insert wrote invalid UTF-8".into()))?;
    let table = A::Entity::default().table_name().to_owned();
    let names = columns
        .iter()
        .map(|column| format!("\"{}\"", column.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "INSERT INTO \"{table}\" ({names}) SELECT {names} \
         FROM jsonb_populate_recordset(NULL::\"{table}\", $1::jsonb)"
    );
    if skip_conflicts {
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING \"id\"");
    }
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [sea_orm::Value::String(Some(json))],
    ))
}

/// A column value as `jsonb_populate_recordset` reads it back into the column's type.
fn write_json(out: &mut Vec<u8>, value: sea_orm::Value) -> Result<(), DbErr> {
    use std::io::Write;

    use sea_orm::Value;
    let written = match value {
        Value::Bool(Some(v)) => write!(out, "{v}"),
        Value::SmallInt(Some(v)) => write!(out, "{v}"),
        Value::Int(Some(v)) => write!(out, "{v}"),
        Value::BigInt(Some(v)) => write!(out, "{v}"),
        Value::String(Some(v)) => {
            serde_json::to_writer(&mut *out, &v).map_err(std::io::Error::from)
        }
        Value::Uuid(Some(id)) => {
            let mut text = uuid::Uuid::encode_buffer();
            write!(out, "\"{}\"", id.hyphenated().encode_lower(&mut text))
        }
        Value::ChronoDateTimeUtc(Some(at)) => write!(
            out,
            "\"{}\"",
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
        Value::Json(Some(json)) => {
            serde_json::to_writer(&mut *out, &json).map_err(std::io::Error::from)
        }
        Value::Bool(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::String(None)
        | Value::Uuid(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::Json(None) => write!(out, "null"),
        other => {
            return Err(DbErr::Custom(format!(
                "no JSON form for a batch insert of {other:?}"
            )));
        }
    };
    written.map_err(|err| DbErr::Custom(format!("writing a batch insert: {err}")))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use entity::enums::SeatStatus;
    use entity::event_seat;
    use sea_orm::Set;
    use uuid::Uuid;

    use super::*;

    fn change(version: i64) -> event_seat::ActiveModel {
        event_seat::ActiveModel {
            event_id: Set(Uuid::from_u128(1)),
            seat_id: Set(Uuid::from_u128(2)),
            section_id: Set(Uuid::from_u128(4)),
            tier_id: Set(Uuid::from_u128(3)),
            status: Set(SeatStatus::Held),
            hold_id: Set(Some(Uuid::from_u128(5))),
            order_id: Set(None),
            version: Set(version),
            updated_at: Set(Utc.with_ymd_and_hms(2026, 12, 2, 1, 2, 3).unwrap()),
        }
    }

    /// The statement's one parameter, as the JSON PostgreSQL will read.
    fn rows_of(statement: &Statement) -> serde_json::Value {
        let Some(sea_orm::Value::String(Some(text))) = statement
            .values
            .as_ref()
            .and_then(|values| values.0.first())
        else {
            panic!("no text parameter: {statement:?}")
        };
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn a_constant_is_written_into_the_statement_not_bound() {
        use sea_orm::{EntityTrait, QueryFilter, QueryTrait};
        let statement = entity::prelude::EventSeat::find()
            .filter(equals_constant(
                entity::event_seat::Column::Status,
                SeatStatus::Available.as_str(),
            ))
            .build(DbBackend::Postgres);
        assert!(
            statement.sql.ends_with(r#"WHERE "status" = 'available'"#),
            "{}",
            statement.sql
        );
        assert!(statement.values.is_none_or(|values| values.0.is_empty()));
    }

    #[test]
    fn a_batch_insert_has_one_text_whatever_its_size() {
        let one = populate(vec![change(1)], false).expect("one row");
        let many = populate((1..=50).map(change).collect(), false).expect("50 rows");
        assert_eq!(one.sql, many.sql);
        assert_eq!(
            one.sql,
            "INSERT INTO \"event_seats\" (\"event_id\", \"seat_id\", \"section_id\", \"tier_id\", \"status\", \"hold_id\", \"order_id\", \"version\", \"updated_at\") \
             SELECT \"event_id\", \"seat_id\", \"section_id\", \"tier_id\", \"status\", \"hold_id\", \"order_id\", \"version\", \"updated_at\" \
             FROM jsonb_populate_recordset(NULL::\"event_seats\", $1::jsonb)"
        );
        assert_eq!(
            rows_of(&one),
            serde_json::json!([{
                "event_id": Uuid::from_u128(1).to_string(),
                "seat_id": Uuid::from_u128(2).to_string(),
                "section_id": Uuid::from_u128(4).to_string(),
                "tier_id": Uuid::from_u128(3).to_string(),
                "status": SeatStatus::Held.as_str(),
                "hold_id": Uuid::from_u128(5).to_string(),
                "order_id": null,
                "version": 1,
                "updated_at": "2026-12-02T01:02:03.000000Z",
            }])
        );
        assert_eq!(rows_of(&many).as_array().map(Vec::len), Some(50));
    }

    #[test]
    fn text_and_json_columns_are_escaped_and_nulls_written_as_null() {
        use entity::enums::IdempotencyStatus;
        use entity::idempotency_key;
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 1, 2, 3).unwrap();
        let awkward = "a \"quoted\" key\\with\nnewline, tab\t, café ✓ \u{1}";
        let response = serde_json::json!({ "id": "x\"y", "list": [1, null, "é"] });
        let row = |response: Option<serde_json::Value>| idempotency_key::ActiveModel {
            id: Set(Uuid::from_u128(9)),
            user_id: Set(Uuid::from_u128(8)),
            key: Set(awkward.into()),
            operation: Set("bookTickets".into()),
            request_hash: Set("hash".into()),
            status: Set(IdempotencyStatus::Completed),
            response: Set(response),
            created_at: Set(at),
            expires_at: Set(at),
        };
        let statement =
            populate(vec![row(Some(response.clone())), row(None)], true).expect("two rows");
        assert!(
            statement
                .sql
                .ends_with(" ON CONFLICT DO NOTHING RETURNING \"id\"")
        );
        let rows = rows_of(&statement);
        assert_eq!(rows[0]["key"], awkward);
        assert_eq!(rows[0]["response"], response);
        assert_eq!(rows[1]["response"], serde_json::Value::Null);
        assert_eq!(rows[1]["status"], IdempotencyStatus::Completed.as_str());
    }

    #[test]
    fn rows_that_set_different_columns_are_refused() {
        let mut partial = change(2);
        partial.tier_id = sea_orm::NotSet;
        assert!(populate(vec![change(1), partial], false).is_err());
    }
}
