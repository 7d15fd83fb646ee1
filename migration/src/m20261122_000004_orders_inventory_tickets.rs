use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE orders (
    id                {uuid} PRIMARY KEY,
    user_id           {uuid} NOT NULL REFERENCES users (id),
    event_id          {uuid} NOT NULL REFERENCES events (id),
    hold_id           {uuid} NULL REFERENCES holds (id),
    status            TEXT NOT NULL CHECK (status IN ('paid', 'cancelled')),
    total_cents       BIGINT NOT NULL CHECK (total_cents >= 0),
    refunded_cents    BIGINT NOT NULL CHECK (refunded_cents >= 0),
    currency          TEXT NOT NULL CHECK (length(currency) = 3),
    payment_reference TEXT NULL,
    created_at        {ts} NOT NULL,
    updated_at        {ts} NOT NULL,
    cancelled_at      {ts} NULL,
    CONSTRAINT orders_refund_within_total CHECK (refunded_cents <= total_cents)
);
-- A hold turns into at most one order, whatever retries or races happen at checkout.
CREATE UNIQUE INDEX orders_hold_key ON orders (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX orders_user_idx ON orders (user_id, created_at);
CREATE INDEX orders_event_idx ON orders (event_id);

CREATE TABLE order_lines (
    id               {uuid} PRIMARY KEY,
    order_id         {uuid} NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    tier_id          {uuid} NOT NULL REFERENCES ticket_tiers (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0)
);
CREATE INDEX order_lines_order_idx ON order_lines (order_id);

-- Per-event seat inventory: one row per seat per event. The primary key makes a seat one row, and the
-- CHECK ties its status to exactly one owner, so a seat belongs to at most one live hold or order.
CREATE TABLE event_seats (
    event_id   {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seat_id    {uuid} NOT NULL REFERENCES seats (id),
    section_id {uuid} NOT NULL REFERENCES sections (id),
    tier_id    {uuid} NOT NULL REFERENCES ticket_tiers (id),
    status     TEXT NOT NULL CHECK (status IN ('available', 'held', 'sold')),
    hold_id    {uuid} NULL REFERENCES holds (id),
    order_id   {uuid} NULL REFERENCES orders (id),
    version    BIGINT NOT NULL,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (event_id, seat_id),
    CONSTRAINT event_seats_owner_matches_status CHECK (
        (status = 'available' AND hold_id IS NULL AND order_id IS NULL) OR
        (status = 'held' AND hold_id IS NOT NULL AND order_id IS NULL) OR
        (status = 'sold' AND hold_id IS NULL AND order_id IS NOT NULL)
    )
);
CREATE INDEX event_seats_section_status_idx ON event_seats (event_id, section_id, status);
CREATE INDEX event_seats_tier_status_idx ON event_seats (event_id, tier_id, status);
CREATE INDEX event_seats_hold_idx ON event_seats (hold_id);
CREATE INDEX event_seats_order_idx ON event_seats (order_id);

-- One ticket per seat or GA unit. The nonce goes into the signed QR payload; reissuing changes it.
CREATE TABLE tickets (
    id              {uuid} PRIMARY KEY,
    order_id        {uuid} NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    order_line_id   {uuid} NOT NULL REFERENCES order_lines (id) ON DELETE CASCADE,
    event_id        {uuid} NOT NULL REFERENCES events (id),
    tier_id         {uuid} NOT NULL REFERENCES ticket_tiers (id),
    seat_id         {uuid} NULL REFERENCES seats (id),
    status          TEXT NOT NULL CHECK (status IN ('valid', 'cancelled')),
    nonce           TEXT NOT NULL,
    checked_in_at   {ts} NULL,
    checked_in_gate TEXT NULL,
    checked_in_by   {uuid} NULL REFERENCES users (id),
    created_at      {ts} NOT NULL,
    cancelled_at    {ts} NULL
);
-- The last guard against selling a seat twice: one valid ticket per seat per event.
CREATE UNIQUE INDEX tickets_one_valid_per_seat ON tickets (event_id, seat_id)
    WHERE status = 'valid' AND seat_id IS NOT NULL;
CREATE INDEX tickets_order_idx ON tickets (order_id);
CREATE INDEX tickets_event_idx ON tickets (event_id);

CREATE TABLE payments (
    id                 {uuid} PRIMARY KEY,
    order_id           {uuid} NULL REFERENCES orders (id),
    user_id            {uuid} NOT NULL REFERENCES users (id),
    kind               TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_cents       BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency           TEXT NOT NULL CHECK (length(currency) = 3),
    provider           TEXT NOT NULL,
    provider_reference TEXT NULL,
    status             TEXT NOT NULL CHECK (status IN ('succeeded', 'declined', 'failed')),
    created_at         {ts} NOT NULL
);
CREATE INDEX payments_order_idx ON payments (order_id);

-- Idempotency keys are scoped to the user. The first request inserts the row (in_flight); a retry
-- finds it and waits for or returns the stored response; the same key with another request hash conflicts.
CREATE TABLE idempotency_keys (
    id           {uuid} PRIMARY KEY,
    user_id      {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation    TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('in_flight', 'completed')),
    response     {json} NULL,
    created_at   {ts} NOT NULL,
    expires_at   {ts} NOT NULL,
    CONSTRAINT idempotency_keys_user_key UNIQUE (user_id, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_tables(
            manager,
            &[
                "idempotency_keys",
                "payments",
                "tickets",
                "event_seats",
                "order_lines",
                "orders",
            ],
        )
        .await
    }
}
