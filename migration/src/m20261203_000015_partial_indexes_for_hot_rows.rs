use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Every hold and every sale rewrites a seat's `status` and its owner (`hold_id` or `order_id`), so an
// `event_seats` update is never heap-only and writes an entry into every index the new row version
// belongs to. With five full indexes that was five entries per seat held and five per seat sold. Each
// read these served wants only part of the rows: the free seats of an event (best-available candidates,
// waitlist counts by section or tier), the seats of a hold, the seats of an order. Partial indexes on
// just those rows serve the same reads, and a row version enters only the ones it qualifies for: a held
// seat goes into the primary key and the hold index, a sold one into the primary key and the order
// index. Counts per status (seat maps, availability) read an event's rows through the primary key.
// Hold then sale of 100,000 seats in batches of 350, ten alternated passes: median update time 6.9 →
// 5.3 s, WAL ~35 % less (scripts/event-seat-updates.sh, BENCHMARKS.md).
//
// `holds` likewise: every read of the sweep index asks for active holds by expiry, and every booking
// turns its hold from active to converted, which wrote a new (status, expiry) entry no read wants.
const UP: &str = "
DROP INDEX event_seats_section_status_idx;
DROP INDEX event_seats_tier_status_idx;
DROP INDEX event_seats_hold_idx;
DROP INDEX event_seats_order_idx;
CREATE INDEX event_seats_available_idx ON event_seats (event_id, section_id, tier_id)
    WHERE status = 'available';
CREATE INDEX event_seats_hold_idx ON event_seats (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX event_seats_order_idx ON event_seats (order_id) WHERE order_id IS NOT NULL;
DROP INDEX holds_sweep_idx;
CREATE INDEX holds_active_expiry_idx ON holds (expires_at) WHERE status = 'active';
";

const DOWN: &str = "
DROP INDEX event_seats_available_idx;
DROP INDEX event_seats_hold_idx;
DROP INDEX event_seats_order_idx;
CREATE INDEX event_seats_section_status_idx ON event_seats (event_id, section_id, status);
CREATE INDEX event_seats_tier_status_idx ON event_seats (event_id, tier_id, status);
CREATE INDEX event_seats_hold_idx ON event_seats (hold_id);
CREATE INDEX event_seats_order_idx ON event_seats (order_id);
DROP INDEX holds_active_expiry_idx;
CREATE INDEX holds_sweep_idx ON holds (status, expires_at);
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
