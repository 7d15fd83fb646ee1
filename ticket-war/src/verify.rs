//! The audit after the storm: the books must balance, through the API and in the database.

use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;

use crate::api::Api;
use crate::setup::Battlefield;
use crate::storm::Confirmed;

/// What the audit found.
#[derive(Default)]
pub struct Audit {
    pub sold_per_api: u64,
    pub available_per_api: u64,
    /// Confirmed answers read back: orders, or holds with `--hold-only`.
    pub answers_checked: u64,
    pub database_checked: bool,
    pub violations: Vec<String>,
}

pub async fn audit(
    api: &Api,
    field: &Battlefield,
    buyers: &[String],
    confirmed: &[Confirmed],
    hold_only: bool,
    seats_held_twice: u64,
    database_url: Option<&str>,
) -> anyhow::Result<Audit> {
    let mut audit = Audit::default();
    let confirmed_tickets: u64 = confirmed.iter().map(|c| c.tickets).sum();

    // Stock as the public sees it.
    let event = api
        .must(
            None,
            "query($e: ID!) { event(id: $e) { tiers { capacity available } } }",
            json!({ "e": field.event_id }),
        )
        .await?;
    let (capacity, available) = event["event"]["tiers"]
        .as_array()
        .into_iter()
        .flatten()
        .fold((0, 0), |(c, a), tier| {
            (
                c + tier["capacity"].as_u64().unwrap_or(0),
                a + tier["available"].as_u64().unwrap_or(0),
            )
        });
    audit.available_per_api = available;
    audit.sold_per_api = capacity.saturating_sub(available);
    if capacity != field.capacity {
        audit.violations.push(format!(
            "capacity is {capacity}, the event was made with {}",
            field.capacity
        ));
    }
    if confirmed_tickets > capacity.saturating_sub(available) {
        audit.violations.push(format!(
            "{confirmed_tickets} tickets confirmed but only {} gone from stock: oversold",
            capacity.saturating_sub(available)
        ));
    }

    if seats_held_twice > 0 {
        audit.violations.push(format!(
            "{seats_held_twice} seats were answered to two holds"
        ));
    }
    // Every confirmed answer has its paid order (or active hold), with as many tickets as confirmed.
    let checks = futures::stream::iter(confirmed.iter())
        .map(|booking| async move {
            if hold_only {
                return check_hold(api, &buyers[booking.buyer], booking).await;
            }
            let order = api
                .must(
                    Some(&buyers[booking.buyer]),
                    "query($id: ID!) { order(id: $id) { status tickets { id status } } }",
                    json!({ "id": booking.id }),
                )
                .await;
            match order {
                Ok(order) => {
                    let tickets = order["order"]["tickets"].as_array().map_or(0, Vec::len) as u64;
                    if order["order"]["status"] != "PAID" || tickets != booking.tickets {
                        Some(format!(
                            "order {} is {} with {tickets} tickets, confirmed with {}",
                            booking.id, order["order"]["status"], booking.tickets
                        ))
                    } else {
                        None
                    }
                }
                Err(err) => Some(format!(
                    "confirmed order {} cannot be read: {err}",
                    booking.id
                )),
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<Option<String>>>()
        .await;
    audit.answers_checked = checks.len() as u64;
    audit.violations.extend(checks.into_iter().flatten());

    if let Some(url) = database_url {
        audit
            .violations
            .extend(database_books(url, &field.event_id).await?);
        audit.database_checked = true;
    }
    Ok(audit)
}

/// A confirmed hold is among its buyer's active holds, with as many seats as answered.
async fn check_hold(api: &Api, buyer: &str, hold: &Confirmed) -> Option<String> {
    match api
        .must(Some(buyer), "{ myHolds { id quantity } }", json!({}))
        .await
    {
        Ok(holds) => {
            let found = holds["myHolds"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["id"].as_str() == Some(hold.id.as_str()));
            match found.and_then(|h| h["quantity"].as_u64()) {
                Some(quantity) if quantity == hold.tickets => None,
                Some(quantity) => Some(format!(
                    "hold {} has {quantity} seats, answered with {}",
                    hold.id, hold.tickets
                )),
                None => Some(format!("hold {} is not among its buyer's holds", hold.id)),
            }
        }
        Err(err) => Some(format!("confirmed hold {} cannot be read: {err}", hold.id)),
    }
}

/// The books in the database: per tier sold + held + available = capacity, no seat ticketed twice,
/// every sold seat ticketed.
async fn database_books(url: &str, event_id: &str) -> anyhow::Result<Vec<String>> {
    let db = Database::connect(url).await?;
    let backend = db.get_database_backend();
    let param = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?1"
    };
    let cast = if backend == DbBackend::Postgres {
        "::uuid"
    } else {
        ""
    };
    let query = |sql: String| Statement::from_sql_and_values(backend, sql, [event_id.into()]);
    let mut violations = Vec::new();
    let unbalanced = db
        .query_all_raw(query(format!(
            "SELECT t.name, t.capacity, t.available,
                (SELECT COUNT(*) FROM tickets k WHERE k.tier_id = t.id AND k.status = 'valid') AS sold,
                (SELECT COALESCE(SUM(h.quantity), 0) FROM holds h WHERE h.tier_id = t.id AND h.status = 'active')
                  + (SELECT COUNT(*) FROM event_seats s
                     WHERE s.event_id = t.event_id AND s.tier_id = t.id AND s.status = 'held') AS held
             FROM ticket_tiers t WHERE t.event_id = {param}{cast}"
        )))
        .await?;
    for row in unbalanced {
        let (name, capacity, available, sold, held): (String, i64, i64, i64, i64) = (
            row.try_get("", "name")?,
            i64::from(row.try_get::<i32>("", "capacity")?),
            i64::from(row.try_get::<i32>("", "available")?),
            row.try_get("", "sold")?,
            row.try_get("", "held")?,
        );
        if sold + held + available != capacity {
            violations.push(format!(
                "tier {name}: sold {sold} + held {held} + available {available} != capacity {capacity}"
            ));
        }
    }
    let doubles = db
        .query_all_raw(query(format!(
            "SELECT seat_id FROM tickets WHERE event_id = {param}{cast} AND status = 'valid' AND seat_id IS NOT NULL
             GROUP BY seat_id HAVING COUNT(*) > 1"
        )))
        .await?;
    if !doubles.is_empty() {
        violations.push(format!("{} seats have two valid tickets", doubles.len()));
    }
    let unticketed = db
        .query_all_raw(query(format!(
            "SELECT s.seat_id FROM event_seats s WHERE s.event_id = {param}{cast} AND s.status = 'sold'
             AND NOT EXISTS (SELECT 1 FROM tickets k WHERE k.event_id = s.event_id AND k.seat_id = s.seat_id AND k.status = 'valid')"
        )))
        .await?;
    if !unticketed.is_empty() {
        violations.push(format!(
            "{} sold seats have no valid ticket",
            unticketed.len()
        ));
    }
    let mismatched = db
        .query_all_raw(query(format!(
            "SELECT h.id FROM holds h WHERE h.event_id = {param}{cast} AND h.status = 'active' AND h.tier_id IS NULL
             AND h.quantity <> (SELECT COUNT(*) FROM event_seats s WHERE s.hold_id = h.id AND s.status = 'held')"
        )))
        .await?;
    if !mismatched.is_empty() {
        violations.push(format!(
            "{} seat holds do not hold as many seats as they say",
            mismatched.len()
        ));
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use migration::MigratorTrait;
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};
    use uuid::Uuid;

    use super::database_books;

    /// A database with the real schema, foreign keys off so the rows can be made up directly.
    async fn books(rows: &str) -> Vec<String> {
        let path = std::env::temp_dir().join(format!("ticket-war-audit-{}.db", Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut options = ConnectOptions::new(url.clone());
        options.max_connections(1);
        let db = Database::connect(options).await.expect("a database");
        migration::Migrator::up(&db, None)
            .await
            .expect("the schema");
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .expect("pragma");
        db.execute_unprepared(rows).await.expect("the rows");
        db.close().await.expect("closed");
        let violations = database_books(&url, EVENT).await.expect("an audit");
        let _ = std::fs::remove_file(path);
        violations
    }

    const EVENT: &str = "0195f6a0-0000-7000-8000-000000000001";

    fn tier(capacity: i32, available: i32) -> String {
        format!(
            "INSERT INTO ticket_tiers (id, event_id, name, kind, price_cents, currency, capacity, available, sort_order, created_at, updated_at)
             VALUES ('0195f6a0-0000-7000-8000-0000000000aa', '{EVENT}', 'Floor', 'general_admission', 100, 'USD', {capacity}, {available}, 0, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');"
        )
    }

    fn tickets(n: usize) -> String {
        (0..n)
            .map(|i| format!(
                "INSERT INTO tickets (id, order_id, order_line_id, event_id, tier_id, seat_id, status, nonce, created_at)
                 VALUES ('{}', '{}', '{}', '{EVENT}', '0195f6a0-0000-7000-8000-0000000000aa', NULL, 'valid', 'n{i}', '2026-01-01T00:00:00Z');",
                Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()
            ))
            .collect()
    }

    #[tokio::test]
    async fn balanced_books_pass() {
        assert_eq!(
            books(&(tier(10, 7) + &tickets(3))).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn missing_stock_and_unticketed_seats_are_violations() {
        let sold_seat = format!(
            "INSERT INTO event_seats (event_id, seat_id, section_id, tier_id, status, hold_id, order_id, version, updated_at)
             VALUES ('{EVENT}', '{}', '{}', '0195f6a0-0000-7000-8000-0000000000aa', 'sold', NULL, '{}', 1, '2026-01-01T00:00:00Z');",
            Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()
        );
        let violations = books(&(tier(10, 5) + &tickets(3) + &sold_seat)).await;
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(
            violations[0].contains("sold 3 + held 0 + available 5 != capacity 10"),
            "{violations:?}"
        );
        assert!(
            violations[1].contains("1 sold seats have no valid ticket"),
            "{violations:?}"
        );
    }

    #[tokio::test]
    async fn a_seat_hold_short_of_its_seats_is_a_violation() {
        let hold = "0195f6a0-0000-7000-8000-0000000000bb";
        let rows = format!(
            "INSERT INTO holds (id, user_id, event_id, tier_id, quantity, status, source, expires_at, max_expires_at, created_at, updated_at)
             VALUES ('{hold}', '{}', '{EVENT}', NULL, 2, 'active', 'direct', '2026-01-01T00:10:00Z', '2026-01-01T00:20:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO event_seats (event_id, seat_id, section_id, tier_id, status, hold_id, order_id, version, updated_at)
             VALUES ('{EVENT}', '{}', '{}', '0195f6a0-0000-7000-8000-0000000000aa', 'held', '{hold}', NULL, 1, '2026-01-01T00:00:00Z');",
            Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()
        );
        let violations = books(&(tier(10, 9) + &rows)).await;
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("1 seat holds do not hold as many seats as they say"),
            "{violations:?}"
        );
    }
}
