//! Checkouts (`checkout`) converted per event in shared transactions.
//!
//! Turning a paid hold into an order sells its seats, so it takes the event's next change-log number,
//! and the sequence row stays locked until the conversion commits (see `events::changelog`): one at a
//! time, an event's checkouts, and the seat holds behind them, commit one durable flush after another.
//! Here the conversions of one event queue on a lane (see [`crate::lanes`]) and a batch converts them
//! in one transaction:
//!
//! 1. the holds are locked (`FOR UPDATE`, in id order) and each still active one becomes an order, in
//!    arrival order; a hold the sweeper expired meanwhile, or converted already by an earlier request
//!    (two checkouts of one hold with different keys), answers HOLD_EXPIRED and its charge is refunded
//!    by the caller, as on the one-at-a-time path;
//! 2. multi-row inserts of orders, lines, tickets and payments; one update sells every seat to its
//!    order, one update marks the holds converted, waitlist offers are closed, one change-log entry.
//!
//! The payments are made before a request joins the lane, with no transaction open. The database
//! stays the last guard (the one-order-per-hold key, one valid ticket per seat): a batch that breaks
//! one fails as a whole, and each of its requests is then converted on its own by the one-at-a-time
//! path, so one bad request cannot fail the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use entity::enums::{HoldSource, HoldStatus, PaymentKind, PaymentStatus, SeatStatus};
use entity::prelude::*;
use entity::{event_seat, hold, order, order_line, ticket_tier};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, TableRef, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::booking::coalesce::BookingPath;
use crate::booking::idempotency;
use crate::booking::lanes::answer_all;
use crate::booking::service::{
    self, Conversion, HOLD_ALREADY_ORDERED, SEAT_ALREADY_TICKETED, paid_order, payment_row,
    valid_ticket,
};
use crate::db::{any_of, insert_all, is_postgres};
use crate::error::{AppError, AppResult};
use crate::events::changelog;
use crate::lanes::{CoalescingStats, Lanes, Tail};

/// What the lane answers: the order, HOLD_EXPIRED, or `Ok(None)`: the batch failed as a whole, so
/// convert this one on its own.
type Answer = AppResult<Option<order::Model>>;

struct Request {
    conversion: Conversion,
    reply: oneshot::Sender<Answer>,
}

/// Converts paid holds into orders by the configured path (`BOOKING_PATH`). Cheap to clone.
#[derive(Clone)]
pub struct Checkouts {
    inner: Arc<Inner>,
}

struct Inner {
    path: BookingPath,
    db: DatabaseConnection,
    lanes: Arc<Lanes<Request>>,
}

impl Checkouts {
    pub fn new(path: BookingPath, db: DatabaseConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                db,
                lanes: Lanes::new(),
            }),
        }
    }

    /// The order the paid hold became, or HOLD_EXPIRED if it is no longer active.
    pub async fn convert(&self, conversion: Conversion) -> AppResult<order::Model> {
        let inner = &self.inner;
        if inner.path == BookingPath::Simple {
            return service::convert_hold(&inner.db, &conversion).await;
        }
        let checkouts = self.clone();
        let answer = inner
            .lanes
            .ask(
                conversion.hold.event_id,
                |reply| Request {
                    conversion: conversion.clone(),
                    reply,
                },
                move |batch| {
                    let checkouts = checkouts.clone();
                    async move { convert_batch(&checkouts.inner, batch).await }
                },
            )
            .await?;
        match answer {
            Some(order) => Ok(order),
            None => service::convert_hold(&inner.db, &conversion).await,
        }
    }

    /// Batches run and the requests they served, since start.
    pub fn stats(&self) -> CoalescingStats {
        self.inner.lanes.stats()
    }
}

async fn convert_batch(inner: &Inner, batch: Vec<Request>) -> Option<Tail> {
    let (conversions, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|request| (request.conversion, request.reply))
        .unzip();
    let outcomes = match convert_all(&inner.db, &conversions).await {
        Ok(orders) => orders
            .into_iter()
            .map(|order| Some(order.map(Some)))
            .collect(),
        Err(err) => {
            tracing::warn!(size = conversions.len(), error = %err, "a checkout batch failed; converting its holds one at a time");
            (0..conversions.len()).map(|_| Some(Ok(None))).collect()
        }
    };
    let event_id = conversions
        .first()
        .map_or(Uuid::nil(), |conversion| conversion.hold.event_id);
    answer_all(replies, Ok(outcomes), "checkout", event_id);
    None
}

/// Converts the still-active holds among `conversions` (all of one event) in one transaction; each
/// request's order, or HOLD_EXPIRED.
async fn convert_all(
    db: &DatabaseConnection,
    conversions: &[Conversion],
) -> AppResult<Vec<AppResult<order::Model>>> {
    let Some(event_id) = conversions.first().map(|c| c.hold.event_id) else {
        return Ok(Vec::new());
    };
    let now = Utc::now();
    let txn = db.begin().await?;
    let mut hold_ids: Vec<Uuid> = conversions.iter().map(|c| c.hold.id).collect();
    hold_ids.sort();
    hold_ids.dedup();
    let mut query = Hold::find()
        .filter(any_of(&txn, hold::Column::Id, &hold_ids))
        .order_by_asc(hold::Column::Id);
    if is_postgres(&txn) {
        query = query.lock_exclusive();
    }
    let active: HashMap<Uuid, hold::Model> = query
        .all(&txn)
        .await?
        .into_iter()
        .filter(|hold| hold.status == HoldStatus::Active)
        .map(|hold| (hold.id, hold))
        .collect();
    let seat_holds: Vec<Uuid> = active
        .values()
        .filter(|hold| hold.tier_id.is_none())
        .map(|hold| hold.id)
        .collect();
    let mut seats_of: HashMap<Uuid, Vec<(Uuid, Uuid)>> = HashMap::new();
    if !seat_holds.is_empty() {
        for seat in EventSeat::find()
            .filter(any_of(&txn, event_seat::Column::HoldId, &seat_holds))
            .order_by_asc(event_seat::Column::SeatId)
            .all(&txn)
            .await?
        {
            if let Some(hold_id) = seat.hold_id {
                seats_of
                    .entry(hold_id)
                    .or_default()
                    .push((seat.seat_id, seat.tier_id));
            }
        }
    }
    let tier_ids: Vec<Uuid> = active
        .values()
        .filter_map(|hold| hold.tier_id)
        .chain(seats_of.values().flatten().map(|(_, tier)| *tier))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let tiers: HashMap<Uuid, ticket_tier::Model> = TicketTier::find()
        .filter(any_of(&txn, ticket_tier::Column::Id, &tier_ids))
        .all(&txn)
        .await?
        .into_iter()
        .map(|tier| (tier.id, tier))
        .collect();

    let mut outcomes = Vec::with_capacity(conversions.len());
    let mut converted = Vec::new();
    let mut orders = Vec::new();
    let mut lines = Vec::new();
    let mut tickets = Vec::new();
    let mut payments = Vec::new();
    let mut sold_to: Vec<ValueTuple> = Vec::new();
    let mut sold = Vec::new();
    let mut from_waitlist = Vec::new();
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut completed_keys = Vec::new();
    for conversion in conversions {
        // The first request for a hold converts it; a later one finds it converted, as it would
        // one at a time.
        let Some(hold) = active
            .get(&conversion.hold.id)
            .filter(|hold| taken.insert(hold.id))
        else {
            outcomes.push(Err(AppError::HoldExpired));
            continue;
        };
        let seats = seats_of.get(&hold.id).map_or(&[][..], Vec::as_slice);
        let mut per_tier: BTreeMap<Uuid, Vec<Option<Uuid>>> = BTreeMap::new();
        match hold.tier_id {
            Some(tier_id) => {
                per_tier.insert(
                    tier_id,
                    vec![None; usize::try_from(hold.quantity).unwrap_or(0)],
                );
            }
            None => {
                for (seat_id, tier_id) in seats {
                    per_tier.entry(*tier_id).or_default().push(Some(*seat_id));
                }
            }
        }
        let order = paid_order(
            hold,
            conversion.total_cents,
            &conversion.currency,
            &conversion.payment_reference,
            now,
        );
        for (tier_id, seat_ids) in per_tier {
            let tier = tiers.get(&tier_id).ok_or(AppError::NotFound("tier"))?;
            let line_id = Uuid::now_v7();
            lines.push(order_line::ActiveModel {
                id: Set(line_id),
                order_id: Set(order.id),
                tier_id: Set(tier_id),
                quantity: Set(seat_ids.len() as i32),
                unit_price_cents: Set(tier.price_cents),
            });
            tickets.extend(
                seat_ids
                    .into_iter()
                    .map(|seat_id| valid_ticket(&order, line_id, tier_id, seat_id, now)),
            );
        }
        if !seats.is_empty() {
            sold_to.push(ValueTuple::Two(hold.id.into(), order.id.into()));
        }
        sold.extend(
            seats
                .iter()
                .map(|(seat_id, tier_id)| (*seat_id, SeatStatus::Sold, *tier_id)),
        );
        if hold.source == HoldSource::Waitlist {
            from_waitlist.push(hold.id);
        }
        payments.push(payment_row(
            Some(order.id),
            hold.user_id,
            PaymentKind::Charge,
            conversion.total_cents,
            &conversion.currency,
            conversion.provider,
            Some(conversion.payment_reference.clone()),
            PaymentStatus::Succeeded,
        ));
        if let Some(key) = &conversion.key {
            completed_keys.push((key, serde_json::json!(order.id)));
        }
        converted.push(hold.id);
        orders.push(order.clone());
        outcomes.push(Ok(order));
    }
    if converted.is_empty() {
        return Ok(outcomes);
    }
    let order_rows = orders
        .into_iter()
        .map(|order| order.into_active_model().reset_all())
        .collect();
    insert_all(&txn, order_rows)
        .await
        .map_err(|err| AppError::on_constraint(err, &[HOLD_ALREADY_ORDERED]))?;
    insert_all(&txn, lines).await?;
    insert_all(&txn, tickets)
        .await
        .map_err(|err| AppError::on_constraint(err, &[SEAT_ALREADY_TICKETED]))?;
    if !sold_to.is_empty() {
        sell_seats(&txn, sold_to, sold.len() as u64, now).await?;
    }
    crate::waitlist::service::close_offers(&txn, &from_waitlist, HoldStatus::Converted, now)
        .await?;
    service::mark_converted(&txn, &converted, now).await?;
    insert_all(&txn, payments).await?;
    idempotency::complete_claimed(&txn, &completed_keys).await?;
    // Last: the sequence row stays locked until commit.
    changelog::record(&txn, event_id, &sold, now).await?;
    txn.commit().await?;
    Ok(outcomes)
}

/// Sells every seat of each `(hold, order)` pair to the order, in one statement; a count short of
/// `expected` rolls the batch back.
async fn sell_seats(
    txn: &impl ConnectionTrait,
    sold_to: Vec<ValueTuple>,
    expected: u64,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let pairs = Alias::new("sold_to");
    let update = Query::update()
        .table(EventSeat)
        .value(event_seat::Column::Status, SeatStatus::Sold.as_str())
        .value(
            event_seat::Column::OrderId,
            Expr::col((pairs.clone(), Alias::new("column2"))),
        )
        .value(event_seat::Column::HoldId, Option::<Uuid>::None)
        .value(
            event_seat::Column::Version,
            Expr::col((EventSeat, event_seat::Column::Version)).add(1),
        )
        .value(event_seat::Column::UpdatedAt, now)
        .from(TableRef::ValuesList(sold_to, pairs.clone().into()))
        .and_where(
            Expr::col((EventSeat, event_seat::Column::HoldId))
                .equals((pairs, Alias::new("column1"))),
        )
        .to_owned();
    let updated = txn.execute(&update).await?.rows_affected();
    if updated != expected {
        return Err(AppError::Conflict(
            "the seats changed while being sold; try again".into(),
        ));
    }
    Ok(())
}
