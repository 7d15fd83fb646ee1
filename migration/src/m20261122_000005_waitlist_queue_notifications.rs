use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- A waitlist entry waits for a GA tier or for a reserved section. When stock frees up the promotion
-- worker makes it an offer: a hold (source = 'waitlist') that expires at offer_expires_at.
CREATE TABLE waitlist_entries (
    id               {uuid} PRIMARY KEY,
    user_id          {uuid} NOT NULL REFERENCES users (id),
    event_id         {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tier_id          {uuid} NULL REFERENCES ticket_tiers (id),
    section_id       {uuid} NULL REFERENCES sections (id),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 10),
    status           TEXT NOT NULL CHECK (status IN ('waiting', 'offered', 'claimed', 'expired', 'left', 'cancelled')),
    offered_hold_id  {uuid} NULL REFERENCES holds (id),
    offer_expires_at {ts} NULL,
    created_at       {ts} NOT NULL,
    updated_at       {ts} NOT NULL,
    CONSTRAINT waitlist_entries_has_target CHECK (tier_id IS NOT NULL OR section_id IS NOT NULL),
    CONSTRAINT waitlist_entries_offer_has_hold CHECK (status <> 'offered' OR offered_hold_id IS NOT NULL)
);
CREATE UNIQUE INDEX waitlist_entries_one_open_per_tier ON waitlist_entries (user_id, tier_id)
    WHERE tier_id IS NOT NULL AND status IN ('waiting', 'offered');
CREATE UNIQUE INDEX waitlist_entries_one_open_per_section ON waitlist_entries (user_id, section_id)
    WHERE section_id IS NOT NULL AND status IN ('waiting', 'offered');
CREATE INDEX waitlist_entries_tier_order_idx ON waitlist_entries (tier_id, status, created_at);
CREATE INDEX waitlist_entries_section_order_idx ON waitlist_entries (section_id, status, created_at);

-- Virtual waiting room. Arrivals before the on-sale get a random shuffle_key and are ordered by it at
-- the on-sale; later arrivals are ordered by arrival. position is assigned once and never reused.
CREATE TABLE queue_entries (
    id              {uuid} PRIMARY KEY,
    event_id        {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id         {uuid} NOT NULL REFERENCES users (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'admitted', 'left', 'expired')),
    joined_at       {ts} NOT NULL,
    shuffle_key     BIGINT NOT NULL,
    position        BIGINT NULL,
    admitted_at     {ts} NULL,
    pass_expires_at {ts} NULL,
    CONSTRAINT queue_entries_event_user_key UNIQUE (event_id, user_id),
    CONSTRAINT queue_entries_event_position_key UNIQUE (event_id, position)
);
CREATE INDEX queue_entries_event_status_idx ON queue_entries (event_id, status, position);

CREATE TABLE notifications (
    id         {uuid} PRIMARY KEY,
    user_id    {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    data       {json} NULL,
    read_at    {ts} NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(
            manager,
            &["notifications", "queue_entries", "waitlist_entries"],
        )
        .await
    }
}
