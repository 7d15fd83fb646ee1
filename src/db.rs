//! Database connection, migrations, and the statement counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

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
