use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// One row per waiting room. Joins lock it to take the next position, so positions are unique and
// contiguous; the admission pass locks it (SKIP LOCKED: one instance admits at a time) to let shoppers
// in at the event's rate and cap. shuffled_at records that the pre-queue got its random order, once.
const UP: &str = r#"
CREATE TABLE event_queues (
    event_id         {uuid} PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    last_position    BIGINT NOT NULL CHECK (last_position >= 0),
    admitted_count   BIGINT NOT NULL CHECK (admitted_count >= 0),
    admitted_through BIGINT NOT NULL CHECK (admitted_through >= 0),
    shuffled_at      {ts} NULL,
    updated_at       {ts} NOT NULL,
    CONSTRAINT event_queues_admitted_within_positions CHECK (admitted_through <= last_position)
);
CREATE INDEX queue_entries_admitted_idx ON queue_entries (event_id, status, pass_expires_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, "DROP INDEX queue_entries_admitted_idx").await?;
        ddl::drop_tables(manager, &["event_queues"]).await
    }
}
