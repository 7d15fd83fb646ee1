use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE events (
    id                        {uuid} PRIMARY KEY,
    venue_id                  {uuid} NOT NULL REFERENCES venues (id),
    organizer_id              {uuid} NOT NULL REFERENCES users (id),
    title                     TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    performer                 TEXT NOT NULL,
    category                  TEXT NOT NULL CHECK (category IN
                                  ('concert', 'sports', 'theatre', 'comedy', 'festival', 'family', 'conference')),
    description               TEXT NOT NULL,
    starts_at                 {ts} NOT NULL,
    ends_at                   {ts} NOT NULL,
    sale_starts_at            {ts} NOT NULL,
    status                    TEXT NOT NULL CHECK (status IN ('draft', 'on_sale', 'cancelled')),
    waiting_room_required     BOOLEAN NOT NULL,
    -- Waiting-room admission: new shoppers let in per minute, and how many may shop at once.
    admission_rate_per_minute INTEGER NOT NULL CHECK (admission_rate_per_minute > 0),
    max_active_shoppers       INTEGER NOT NULL CHECK (max_active_shoppers > 0),
    max_tickets_per_user      INTEGER NOT NULL CHECK (max_tickets_per_user BETWEEN 1 AND 100),
    published_at              {ts} NULL,
    cancelled_at              {ts} NULL,
    created_at                {ts} NOT NULL,
    updated_at                {ts} NOT NULL,
    CONSTRAINT events_ends_after_start CHECK (ends_at > starts_at),
    CONSTRAINT events_sale_before_end CHECK (sale_starts_at < ends_at)
);
CREATE INDEX events_starts_at_idx ON events (starts_at);
CREATE INDEX events_venue_idx ON events (venue_id);
CREATE INDEX events_organizer_idx ON events (organizer_id);
CREATE INDEX events_category_starts_at_idx ON events (category, starts_at);

-- A tier is a price level. General-admission tiers are sold by count: `available` is the stock, and the
-- CHECK makes overselling impossible however the application behaves. Reserved tiers price seats; their
-- counters move with the seat rows in the same transaction.
CREATE TABLE ticket_tiers (
    id          {uuid} PRIMARY KEY,
    event_id    {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind        TEXT NOT NULL CHECK (kind IN ('general_admission', 'reserved')),
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    capacity    INTEGER NOT NULL CHECK (capacity >= 0),
    available   INTEGER NOT NULL,
    sort_order  INTEGER NOT NULL,
    created_at  {ts} NOT NULL,
    updated_at  {ts} NOT NULL,
    CONSTRAINT ticket_tiers_available_within_capacity CHECK (available >= 0 AND available <= capacity),
    CONSTRAINT ticket_tiers_event_name_key UNIQUE (event_id, name)
);
CREATE INDEX ticket_tiers_event_idx ON ticket_tiers (event_id);

-- Which sections of the venue an event sells, and at which tier. A reserved section's seats get their
-- inventory rows (event_seats) at this tier when the event is published; a general-admission section
-- maps to a general-admission tier whose capacity is its stock.
CREATE TABLE event_sections (
    event_id   {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    section_id {uuid} NOT NULL REFERENCES sections (id),
    tier_id    {uuid} NOT NULL REFERENCES ticket_tiers (id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, section_id)
);
CREATE INDEX event_sections_tier_idx ON event_sections (tier_id);

-- A hold reserves stock for a short time: GA units (tier_id, quantity) or reserved seats (the event_seats
-- rows pointing at it). source = 'waitlist' marks an offer made to a waitlist entry.
CREATE TABLE holds (
    id              {uuid} PRIMARY KEY,
    user_id         {uuid} NOT NULL REFERENCES users (id),
    event_id        {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tier_id         {uuid} NULL REFERENCES ticket_tiers (id),
    quantity        INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    status          TEXT NOT NULL CHECK (status IN ('active', 'converted', 'released', 'expired')),
    source          TEXT NOT NULL CHECK (source IN ('direct', 'waitlist')),
    expires_at      {ts} NOT NULL,
    max_expires_at  {ts} NOT NULL,
    created_at      {ts} NOT NULL,
    updated_at      {ts} NOT NULL,
    CONSTRAINT holds_expiry_within_max CHECK (expires_at <= max_expires_at)
);
-- One live hold per buyer per event.
CREATE UNIQUE INDEX holds_one_active_per_user_event ON holds (user_id, event_id) WHERE status = 'active';
CREATE INDEX holds_sweep_idx ON holds (status, expires_at);
CREATE INDEX holds_event_idx ON holds (event_id);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(
            manager,
            &["holds", "event_sections", "ticket_tiers", "events"],
        )
        .await
    }
}
