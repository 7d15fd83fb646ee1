use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- The live feed's order: every transaction that changes an event's inventory increments the event's
-- sequence number (locked last, after seats and tiers) and logs the seats it changed under that number.
-- Because the row stays locked until commit, sequence order is commit order, and a subscriber that
-- resumes from a number reads exactly what it missed.
CREATE TABLE event_sequences (
    event_id {uuid} PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL CHECK (seq >= 0)
);
INSERT INTO event_sequences (event_id, seq) SELECT id, 0 FROM events;

CREATE TABLE seat_changes (
    event_id   {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    seat_id    {uuid} NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('available', 'held', 'sold')),
    tier_id    {uuid} NOT NULL,
    changed_at {ts} NOT NULL,
    PRIMARY KEY (event_id, seq, seat_id)
);
CREATE INDEX seat_changes_changed_at_idx ON seat_changes (changed_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(manager, &["seat_changes", "event_sequences"]).await
    }
}
