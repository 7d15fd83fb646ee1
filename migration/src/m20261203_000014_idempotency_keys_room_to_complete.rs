use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Every idempotency key is written twice within milliseconds: claimed (inserted) and then completed
// (status and response updated). Neither column is indexed, so the completion can be a heap-only
// update, which writes no index entry, but only if the new row version fits in the same page; at the
// default fill factor the page a batch of claims filled has no room, and each completion wrote a new
// entry into each of the table's three indexes. Half-empty pages leave room for every completion: in a
// general-admission storm 87 % of completions went heap-only (9 % before) and the completing statement
// took 1.0 instead of 2.5 ms per batch. That is ~2 % of PostgreSQL's time per booking, below what
// whole storms on this machine can resolve (six alternated pairs: no difference either way;
// BENCHMARKS.md). Keys expire within a day, so the doubled page count stays small. SQLite has no
// fill factor.
const UP: &str = "ALTER TABLE idempotency_keys SET (fillfactor = 50)";
const DOWN: &str = "ALTER TABLE idempotency_keys RESET (fillfactor)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => ddl::run(manager, UP).await,
            _ => Ok(()),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => ddl::run(manager, DOWN).await,
            _ => Ok(()),
        }
    }
}
