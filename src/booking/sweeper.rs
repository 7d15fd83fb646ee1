//! Ending holds (released by the buyer, expired by time) and the background sweeper that expires them.
//!
//! Several instances can sweep at once: each takes a batch of due holds with
//! `FOR UPDATE SKIP LOCKED`, so no hold is released twice and no sweeper waits for another.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::enums::{HoldSource, HoldStatus, SeatStatus};
use entity::prelude::*;
use entity::{event_seat, hold};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::booking::service::{adjust_tiers, free_seats, hold_is_active};
use crate::db::is_postgres;
use crate::error::AppResult;
use crate::events::changelog;
use crate::live::{LiveMessage, OrderUpdateKind};
use crate::notifications::service as notifications;
use crate::state::AppState;
use crate::waitlist;
use crate::waitlist::promotion::{offer_freed_stock, promote_waiting};

/// How long the live change log keeps entries: clients resuming from older ones get a snapshot.
const CHANGELOG_HOURS: i64 = 24;

/// Holds expired per transaction.
const BATCH: u64 = 200;

/// Ends the given holds if they are still active (waiting for their locks).
pub async fn end_holds(
    db: &DatabaseConnection,
    ids: &[Uuid],
    status: HoldStatus,
    claim_window: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<Vec<hold::Model>> {
    let txn = db.begin().await?;
    let mut query = Hold::find()
        .filter(hold::Column::Id.is_in(ids.iter().copied()))
        .filter(hold::Column::Status.eq(HoldStatus::Active))
        .order_by_asc(hold::Column::Id);
    if is_postgres(&txn) {
        query = query.lock_exclusive();
    }
    let holds = query.all(&txn).await?;
    end_locked_holds(&txn, &holds, status, claim_window, now).await?;
    txn.commit().await?;
    Ok(holds)
}

/// Expires one batch of holds due at `now`; returns the holds expired and whether the batch was full.
pub async fn expire_due(
    db: &DatabaseConnection,
    claim_window: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<(Vec<hold::Model>, bool)> {
    let txn = db.begin().await?;
    let mut query = Hold::find()
        .filter(hold_is_active())
        .filter(hold::Column::ExpiresAt.lte(now))
        .order_by_asc(hold::Column::ExpiresAt)
        .limit(BATCH);
    if is_postgres(&txn) {
        query = query.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        );
    }
    let holds = query.all(&txn).await?;
    let full = holds.len() as u64 == BATCH;
    end_locked_holds(&txn, &holds, HoldStatus::Expired, claim_window, now).await?;
    txn.commit().await?;
    Ok((holds, full))
}

/// Gives locked, active holds their final status, returns their stock, and offers it to the waitlist.
async fn end_locked_holds(
    txn: &DatabaseTransaction,
    holds: &[hold::Model],
    status: HoldStatus,
    claim_window: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if holds.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = holds.iter().map(|h| h.id).collect();
    // The status goes first: the buyers are no longer holding when their stock is offered, so one of
    // them may be the next on the waitlist.
    Hold::update_many()
        .col_expr(hold::Column::Status, Expr::value(status.as_str()))
        .col_expr(hold::Column::UpdatedAt, Expr::value(now))
        .filter(hold::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    let mut per_tier: BTreeMap<Uuid, i32> = BTreeMap::new();
    for hold in holds {
        if let Some(tier_id) = hold.tier_id {
            *per_tier.entry(tier_id).or_default() += hold.quantity;
        }
    }
    let seats = EventSeat::find()
        .filter(event_seat::Column::HoldId.is_in(ids.iter().copied()))
        .order_by_asc(event_seat::Column::SeatId)
        .all(txn)
        .await?;
    for seat in &seats {
        *per_tier.entry(seat.tier_id).or_default() += 1;
    }
    if !seats.is_empty() {
        free_seats(
            txn,
            Condition::all().add(event_seat::Column::HoldId.is_in(ids.iter().copied())),
            now,
        )
        .await?;
    }
    adjust_tiers(txn, &per_tier, 1, now).await?;
    let offer_holds: Vec<Uuid> = holds
        .iter()
        .filter(|h| h.source == HoldSource::Waitlist)
        .map(|h| h.id)
        .collect();
    waitlist::service::close_offers(txn, &offer_holds, status, now).await?;

    let events: BTreeSet<Uuid> = holds.iter().map(|h| h.event_id).collect();
    for event_id in &events {
        let tiers: BTreeSet<Uuid> = holds
            .iter()
            .filter(|h| h.event_id == *event_id)
            .filter_map(|h| h.tier_id)
            .collect();
        let event_seats: Vec<&event_seat::Model> =
            seats.iter().filter(|s| s.event_id == *event_id).collect();
        let seat_ids: Vec<Uuid> = event_seats.iter().map(|s| s.seat_id).collect();
        let promotion =
            offer_freed_stock(txn, *event_id, &tiers, &seat_ids, claim_window, now).await?;
        let changed: Vec<(Uuid, SeatStatus, Uuid)> = event_seats
            .iter()
            .map(|seat| {
                let status = promotion.status_of_freed(seat.seat_id);
                (seat.seat_id, status, seat.tier_id)
            })
            .collect();
        changelog::record(txn, *event_id, &changed, now).await?;
    }
    Ok(())
}

/// Tells each buyer whose hold expires within `warn_before` (once per expiry): a notification in the
/// same transaction that claims the warning. Returns the holds warned.
pub async fn warn_expiring(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    warn_before: chrono::Duration,
) -> AppResult<Vec<hold::Model>> {
    let txn = db.begin().await?;
    // The conditional UPDATE is the claim: a concurrent sweeper's update of the same row waits for
    // this one and then no longer matches `expiry_warned_at IS NULL`.
    let warned = Hold::update_many()
        .col_expr(hold::Column::ExpiryWarnedAt, Expr::value(now))
        .filter(hold_is_active())
        .filter(hold::Column::ExpiryWarnedAt.is_null())
        .filter(hold::Column::ExpiresAt.gt(now))
        .filter(hold::Column::ExpiresAt.lte(now + warn_before))
        .exec_with_returning(&txn)
        .await?;
    let titles: BTreeMap<Uuid, String> = Event::find()
        .filter(entity::event::Column::Id.is_in(warned.iter().map(|h| h.event_id)))
        .select_only()
        .column(entity::event::Column::Id)
        .column(entity::event::Column::Title)
        .into_tuple::<(Uuid, String)>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    for hold in &warned {
        let title = titles
            .get(&hold.event_id)
            .map_or("your event", String::as_str);
        let minutes_left = ((hold.expires_at - now).num_seconds().max(0) as u64).div_ceil(60);
        notifications::notify(
            &txn,
            hold.user_id,
            "hold_expiring",
            &format!("Your hold for {title} is about to expire"),
            &format!(
                "Check out within {minutes_left} minute{} or the tickets go back on sale.",
                if minutes_left == 1 { "" } else { "s" }
            ),
            serde_json::json!({
                "holdId": hold.id,
                "eventId": hold.event_id,
                "expiresAt": hold.expires_at,
            }),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(warned)
}

/// Publishes what ending holds changed: the events' stock and each buyer's hold.
pub async fn publish_ended(state: &AppState, holds: &[hold::Model], kind: OrderUpdateKind) {
    let events: BTreeSet<Uuid> = holds.iter().map(|h| h.event_id).collect();
    for event_id in events {
        state
            .bus
            .publish(LiveMessage::InventoryChanged { event_id })
            .await;
    }
    for hold in holds {
        publish_hold_update(state, hold, kind).await;
    }
}

/// Tells the hold's buyer, live, what happened to it.
pub async fn publish_hold_update(state: &AppState, hold: &hold::Model, kind: OrderUpdateKind) {
    state
        .bus
        .publish(LiveMessage::OrderUpdated {
            user_id: hold.user_id,
            event_id: hold.event_id,
            kind,
            hold_id: Some(hold.id),
            order_id: None,
        })
        .await;
}

/// One pass of the sweeper: expire due holds (batch after batch), offer stock free while entries
/// wait, admit shoppers from waiting rooms, warn holds about to expire, refund cancellations whose undo
/// window closed, forget old idempotency keys. Publishes freed stock after each commit.
pub async fn sweep_once(state: &AppState, now: DateTime<Utc>) -> AppResult<()> {
    let claim_window = state.config.hold_policy().waitlist_claim;
    loop {
        let (expired, full) = expire_due(&state.db, claim_window, now).await?;
        publish_ended(state, &expired, OrderUpdateKind::HoldExpired).await;
        if !full {
            break;
        }
    }
    for event_id in promote_waiting(&state.db, claim_window, now).await? {
        state
            .bus
            .publish(LiveMessage::InventoryChanged { event_id })
            .await;
    }
    waitlist::service::announce_offers(state, now).await?;
    let queue_policy = state.config.queue_policy();
    for event in crate::queue::service::admitting_events(&state.db, now).await? {
        if let Some(queue) =
            crate::queue::service::admit(&state.db, &queue_policy, &event, now).await?
        {
            crate::queue::graphql::announce(state, event.id, queue.admitted_through).await;
        }
    }
    let warn_before = chrono::Duration::seconds(state.config.hold_warning_seconds);
    if warn_before > chrono::Duration::zero() {
        for hold in warn_expiring(&state.db, now, warn_before).await? {
            state
                .bus
                .publish(LiveMessage::NotificationsChanged {
                    user_id: hold.user_id,
                })
                .await;
            publish_hold_update(state, &hold, OrderUpdateKind::HoldExpiringSoon).await;
        }
    }
    crate::orders::service::refund_closed_cancellations(&state.db, state.payments.as_ref(), now)
        .await?;
    crate::booking::idempotency::delete_expired(&state.db, now).await?;
    changelog::prune(&state.db, now - chrono::Duration::hours(CHANGELOG_HOURS)).await?;
    Ok(())
}

/// Runs the sweeper every `interval`, starting one interval after start-up, until the process stops.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = sweep_once(&state, Utc::now()).await {
                tracing::warn!(error = %err, "sweeper pass failed; retrying next tick");
            }
        }
    })
}
