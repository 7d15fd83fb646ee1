use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The change log kept a row per seat: a seat batch of 400 seats wrote 400 rows, each with two index
// entries and a foreign-key check against `events`, while it held the event's sequence row locked
// (~10 ms of a ~65 ms batch in a best-available storm). A change now is one row whose `seats` packs
// every seat it changed. Every change gets its row, seatless ones too, so a reader can tell a change
// that was pruned from one that touched no seat. The old rows are dropped, not converted: the log is
// only for resuming, and a client resuming from before it gets a snapshot.
const UP: &str = "
DROP TABLE seat_changes;
CREATE TABLE seat_changes (
    event_id   {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    seats      {bytes} NOT NULL,
    changed_at {ts} NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE INDEX seat_changes_changed_at_idx ON seat_changes (changed_at);
";

const DOWN: &str = "
DROP TABLE seat_changes;
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
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, DOWN).await
    }
}
