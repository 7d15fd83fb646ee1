//! Renders backend-neutral DDL.
//!
//! The schema is written as plain SQL because its guarantees live in features the query builder does not
//! express (partial unique indexes, multi-column CHECKs). Only column types differ between the backends, so
//! the SQL names them with placeholders: `{uuid}`, `{ts}` (a UTC timestamp), `{json}` and `{bytes}`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Runs each `;`-separated statement of `sql` after substituting the backend's column types.
pub async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let (uuid, ts, json, bytes) = match backend {
        DbBackend::Postgres => ("uuid", "timestamptz", "jsonb", "bytea"),
        // SQLite has no such types; these names give TEXT affinity (`blob` BLOB), which is how SeaORM
        // reads them back.
        DbBackend::Sqlite => (
            "uuid_text",
            "timestamp_with_timezone_text",
            "json_text",
            "blob",
        ),
        other => {
            return Err(DbErr::Migration(format!(
                "unsupported database backend {other:?}"
            )));
        }
    };
    // Comments go before splitting: they may contain semicolons.
    let sql = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{uuid}", uuid)
        .replace("{ts}", ts)
        .replace("{json}", json)
        .replace("{bytes}", bytes);
    let connection = manager.get_connection();
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        connection.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Drops tables in the given order (dependants first).
pub async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    Ok(())
}
