//! Database migrations for Seat Storm.
//!
//! Migrations are history: they define their own SQL and never import the `entity` crate, so they keep
//! compiling whatever the entities become. Every migration runs on PostgreSQL (production) and SQLite (the
//! embedded default); `ddl` renders the few types that differ between the two.

pub use sea_orm_migration::prelude::*;

mod ddl;
mod m20261122_000001_accounts;
mod m20261122_000002_venues;
mod m20261122_000003_events_and_holds;
mod m20261122_000004_orders_inventory_tickets;
mod m20261122_000005_waitlist_queue_notifications;
mod m20261122_000006_live_sequences;
mod m20261122_000007_hold_expiry_warnings;
mod m20261122_000008_waitlist_offer_announcements;
mod m20261122_000009_event_queues;
mod m20261122_000010_waitlist_offer_index;
mod m20261201_000011_orders_refund_due_index;
mod m20261201_000012_buyer_ticket_counts;
mod m20261202_000013_ticket_copied_keys;
mod m20261203_000014_idempotency_keys_room_to_complete;
mod m20261203_000015_partial_indexes_for_hot_rows;
mod m20261203_000016_seat_changes_per_batch;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_accounts::Migration),
            Box::new(m20261122_000002_venues::Migration),
            Box::new(m20261122_000003_events_and_holds::Migration),
            Box::new(m20261122_000004_orders_inventory_tickets::Migration),
            Box::new(m20261122_000005_waitlist_queue_notifications::Migration),
            Box::new(m20261122_000006_live_sequences::Migration),
            Box::new(m20261122_000007_hold_expiry_warnings::Migration),
            Box::new(m20261122_000008_waitlist_offer_announcements::Migration),
            Box::new(m20261122_000009_event_queues::Migration),
            Box::new(m20261122_000010_waitlist_offer_index::Migration),
            Box::new(m20261201_000011_orders_refund_due_index::Migration),
            Box::new(m20261201_000012_buyer_ticket_counts::Migration),
            Box::new(m20261202_000013_ticket_copied_keys::Migration),
            Box::new(m20261203_000014_idempotency_keys_room_to_complete::Migration),
            Box::new(m20261203_000015_partial_indexes_for_hot_rows::Migration),
            Box::new(m20261203_000016_seat_changes_per_batch::Migration),
        ]
    }
}
