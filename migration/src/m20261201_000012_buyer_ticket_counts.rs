use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

// How many valid tickets each buyer holds for each event, for the per-person cap. Counting them from
// tickets joined to orders costs O(that buyer's orders) per check and its plan swings with the
// planner's statistics (hundreds of milliseconds per batch on a young database); this is one row per
// buyer. Triggers on `tickets` keep it, in the transaction that changes the tickets, so no code path
// can forget it and a cap check that waits for a buyer's booking to commit sees its count.
const TABLE: &str = r#"
CREATE TABLE buyer_ticket_counts (
    event_id      {uuid} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id       {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    valid_tickets INTEGER NOT NULL CHECK (valid_tickets >= 0),
    PRIMARY KEY (event_id, user_id)
);
INSERT INTO buyer_ticket_counts (event_id, user_id, valid_tickets)
    SELECT t.event_id, o.user_id, COUNT(*)
    FROM tickets t JOIN orders o ON o.id = t.order_id
    WHERE t.status = 'valid'
    GROUP BY t.event_id, o.user_id;
"#;

// One statement-level trigger per operation, over the transition tables: a batch of a hundred tickets
// costs one grouped upsert, not a hundred. Rows are upserted in key order so two transactions counting
// for the same buyers cannot deadlock. A count that would go below zero, or start negative, breaks the
// CHECK: the books are wrong somewhere and the change is refused.
const POSTGRES_TRIGGERS: &[&str] = &[
    r#"
CREATE FUNCTION count_buyer_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO buyer_ticket_counts AS c (event_id, user_id, valid_tickets)
            SELECT t.event_id, o.user_id, COUNT(*)
            FROM new_tickets t JOIN orders o ON o.id = t.order_id
            WHERE t.status = 'valid'
            GROUP BY t.event_id, o.user_id
            ORDER BY t.event_id, o.user_id
            ON CONFLICT (event_id, user_id) DO UPDATE SET valid_tickets = c.valid_tickets + excluded.valid_tickets;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Gains are upserted, losses applied as updates: an upsert's proposed row must pass the CHECK
        -- before its conflict is found, and a negative one cannot.
        WITH changes AS (
            SELECT t.event_id, o.user_id,
                   SUM((t.status = 'valid')::int - (before.status = 'valid')::int) AS delta
            FROM new_tickets t
            JOIN old_tickets before ON before.id = t.id
            JOIN orders o ON o.id = t.order_id
            WHERE (t.status = 'valid') <> (before.status = 'valid')
            GROUP BY t.event_id, o.user_id
        ), losses AS (
            UPDATE buyer_ticket_counts c SET valid_tickets = c.valid_tickets + changes.delta
            FROM changes
            WHERE changes.delta < 0 AND c.event_id = changes.event_id AND c.user_id = changes.user_id
        )
        INSERT INTO buyer_ticket_counts AS c (event_id, user_id, valid_tickets)
            SELECT event_id, user_id, delta FROM changes WHERE delta > 0
            ORDER BY event_id, user_id
            ON CONFLICT (event_id, user_id) DO UPDATE SET valid_tickets = c.valid_tickets + excluded.valid_tickets;
    ELSE
        UPDATE buyer_ticket_counts c SET valid_tickets = c.valid_tickets - gone.tickets
            FROM (SELECT t.event_id, o.user_id, COUNT(*) AS tickets
                  FROM old_tickets t JOIN orders o ON o.id = t.order_id
                  WHERE t.status = 'valid'
                  GROUP BY t.event_id, o.user_id) gone
            WHERE c.event_id = gone.event_id AND c.user_id = gone.user_id;
    END IF;
    RETURN NULL;
END
$$"#,
    "CREATE TRIGGER tickets_counted_on_insert AFTER INSERT ON tickets
        REFERENCING NEW TABLE AS new_tickets
        FOR EACH STATEMENT EXECUTE FUNCTION count_buyer_tickets()",
    "CREATE TRIGGER tickets_counted_on_update AFTER UPDATE ON tickets
        REFERENCING OLD TABLE AS old_tickets NEW TABLE AS new_tickets
        FOR EACH STATEMENT EXECUTE FUNCTION count_buyer_tickets()",
    "CREATE TRIGGER tickets_counted_on_delete AFTER DELETE ON tickets
        REFERENCING OLD TABLE AS old_tickets
        FOR EACH STATEMENT EXECUTE FUNCTION count_buyer_tickets()",
];

// SQLite has row-level triggers only; it has one writer, so there is no ordering to care about.
const SQLITE_TRIGGERS: &[&str] = &[
    "CREATE TRIGGER tickets_counted_on_insert AFTER INSERT ON tickets WHEN NEW.status = 'valid'
    BEGIN
        INSERT INTO buyer_ticket_counts (event_id, user_id, valid_tickets)
            SELECT NEW.event_id, user_id, 1 FROM orders WHERE id = NEW.order_id
            ON CONFLICT (event_id, user_id) DO UPDATE SET valid_tickets = valid_tickets + 1;
    END",
    "CREATE TRIGGER tickets_counted_on_validate AFTER UPDATE OF status ON tickets
        WHEN OLD.status <> 'valid' AND NEW.status = 'valid'
    BEGIN
        INSERT INTO buyer_ticket_counts (event_id, user_id, valid_tickets)
            SELECT NEW.event_id, user_id, 1 FROM orders WHERE id = NEW.order_id
            ON CONFLICT (event_id, user_id) DO UPDATE SET valid_tickets = valid_tickets + 1;
    END",
    "CREATE TRIGGER tickets_counted_on_invalidate AFTER UPDATE OF status ON tickets
        WHEN OLD.status = 'valid' AND NEW.status <> 'valid'
    BEGIN
        UPDATE buyer_ticket_counts SET valid_tickets = valid_tickets - 1
            WHERE event_id = NEW.event_id
              AND user_id = (SELECT user_id FROM orders WHERE id = NEW.order_id);
    END",
    "CREATE TRIGGER tickets_counted_on_delete AFTER DELETE ON tickets WHEN OLD.status = 'valid'
    BEGIN
        UPDATE buyer_ticket_counts SET valid_tickets = valid_tickets - 1
            WHERE event_id = OLD.event_id
              AND user_id = (SELECT user_id FROM orders WHERE id = OLD.order_id);
    END",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::run(manager, TABLE).await?;
        let triggers = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_TRIGGERS,
            _ => SQLITE_TRIGGERS,
        };
        // Trigger bodies hold semicolons, so they are run whole rather than through `ddl::run`.
        for statement in triggers {
            manager
                .get_connection()
                .execute_unprepared(statement)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drops = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "DROP FUNCTION count_buyer_tickets() CASCADE" // and its triggers
            }
            _ => {
                "DROP TRIGGER tickets_counted_on_insert; DROP TRIGGER tickets_counted_on_validate;
                 DROP TRIGGER tickets_counted_on_invalidate; DROP TRIGGER tickets_counted_on_delete"
            }
        };
        ddl::run(manager, drops).await?;
        ddl::drop_tables(manager, &["buyer_ticket_counts"]).await
    }
}
