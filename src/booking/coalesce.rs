//! Direct booking (`bookTickets`) of general-admission tickets, coalesced per tier.
//!
//! With one transaction per booking, an on-sale is capped by the tier's row lock: every buyer waits
//! for the previous commit. Here each tier has a *lane*: buyers queue on it and the lane takes
//! everything waiting as one batch, so one pair of transactions serves the whole batch:
//!
//! 1. **reserve**: one multi-row insert of holds, the per-person cap counted for the buyers whose hold
//!    went in, then the tier row locked, stock allocated in arrival order (each buyer gets all they
//!    asked for or SOLD_OUT; a smaller later request may still fit), one update of the tier; the holds
//!    that got nothing are deleted before commit;
//! 2. the payments, with no transaction open;
//! 3. **convert**: one conditional update turns the paid holds into `converted` (a hold the sweeper
//!    expired meanwhile is refunded, HOLD_EXPIRED), then multi-row inserts of orders, lines, tickets
//!    and payments. Declined payments release their holds at once.
//!
//! Only the reserve goes in arrival order: steps 2 and 3 are the batch's tail, which runs while the
//! lane reserves for the next batches (a few tails at once, see `lanes`). A buyer with a booking still
//! converting cannot slip past the cap: their next hold insert waits on the one-active-hold index
//! until that conversion commits, and the cap is counted after it.
//!
//! Every guarantee of the one-transaction path holds: the CHECK on the tier and the one-active-hold
//! index stay the last guard; a crash between the steps leaves holds that expire and give the stock
//! back; fairness is arrival order within a batch (the lane is FIFO) and across batches (the row lock
//! queue, also across instances). Idempotency keys are written by the batch too: claimed (`in_flight`)
//! in the reserve transaction, before any stock is taken, and completed in the convert transaction, so
//! a booking costs no commit of its own. A key that is already taken sends its request down the
//! ordinary idempotency path (wait for the first, return its order).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::enums::{HoldStatus, PaymentKind, PaymentStatus};
use entity::prelude::*;
use entity::{event, hold, idempotency_key, order, order_line, ticket_tier};
use futures::future::join_all;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter, Set, TransactionTrait,
    TryIntoModel,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::booking::idempotency::{self, IdempotencyKey};
use crate::booking::lanes::{
    self, Pending, answer_all, expire_their_stale_holds, forget_keys, insert_skipping_conflicts,
    within_user_caps,
};
use crate::booking::service::{
    self, Buyer, HoldPolicy, ONE_ACTIVE_HOLD, Quantity, TIER_SOLD_OUT, event_selling,
    general_admission_tier, new_hold, paid_order, payment_row, valid_ticket,
};
use crate::db::{insert_all, is_postgres};
use crate::error::{AppError, AppResult};
use crate::events::changelog;
use crate::lanes::{CoalescingStats, Lanes, Tail};
use crate::live::{Bus, LiveMessage};
use crate::payments::{ChargeOutcome, Payments};

/// Which implementation serves `bookTickets`, seat holds and checkouts (config `BOOKING_PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingPath {
    /// One transaction per request (a hold and a checkout transaction per booking).
    Simple,
    /// Concurrent bookings of one tier, and seat holds and checkouts of one event, share their
    /// transactions.
    Coalesced,
}

impl std::str::FromStr for BookingPath {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "simple" => Ok(Self::Simple),
            "coalesced" => Ok(Self::Coalesced),
            other => Err(format!("`{other}` is not `simple` or `coalesced`")),
        }
    }
}

/// What a lane answers: the order, a refusal, or `Ok(None)` when the request's idempotency key was
/// already taken (by a retry in flight or done).
type Answer = AppResult<Option<order::Model>>;

struct Request {
    buyer: Buyer,
    quantity: Quantity,
    payment_token: String,
    key: IdempotencyKey,
    request_hash: String,
    reply: oneshot::Sender<Answer>,
}

/// The operation name idempotency keys of direct bookings are stored under.
const OPERATION: &str = "bookTickets";

/// Books general-admission tickets by the configured path. Cheap to clone.
#[derive(Clone)]
pub struct DirectBooking {
    inner: Arc<Inner>,
}

struct Inner {
    path: BookingPath,
    db: DatabaseConnection,
    payments: Payments,
    policy: HoldPolicy,
    bus: Bus,
    lanes: Arc<Lanes<Request>>,
}

impl DirectBooking {
    pub fn new(
        path: BookingPath,
        db: DatabaseConnection,
        payments: Payments,
        policy: HoldPolicy,
        bus: Bus,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                db,
                payments,
                policy,
                bus,
                lanes: Lanes::new(),
            }),
        }
    }

    /// Holds and pays for `quantity` tickets of a general-admission tier in one call, once per
    /// idempotency key: the buyer's order, or their own refusal (SOLD_OUT, PAYMENT_DECLINED,
    /// LIMIT_EXCEEDED, ...) with nothing held. Seat-map subscribers are told of the change.
    #[allow(clippy::too_many_arguments)]
    pub async fn book(
        &self,
        buyer: Buyer,
        tier_id: Uuid,
        quantity: Quantity,
        payment_token: &str,
        key: IdempotencyKey,
        request_hash: String,
    ) -> AppResult<order::Model> {
        let inner = &self.inner;
        let one_at_a_time = |buyer: Buyer, key: IdempotencyKey, request_hash: String| async move {
            let user_id = buyer.user_id;
            let order_id = idempotency::once(
                &inner.db,
                buyer.user_id,
                &key,
                OPERATION,
                request_hash,
                || async {
                    Ok(service::book_tickets(
                        &inner.db,
                        inner.payments.as_ref(),
                        &inner.policy,
                        buyer.clone(),
                        tier_id,
                        quantity,
                        payment_token,
                    )
                    .await?
                    .id)
                },
            )
            .await?;
            let order = Order::find_by_id(order_id)
                .filter(order::Column::UserId.eq(user_id))
                .one(&inner.db)
                .await?
                .ok_or(AppError::NotFound("order"))?;
            inner
                .bus
                .publish(LiveMessage::InventoryChanged {
                    event_id: order.event_id,
                })
                .await;
            Ok(order)
        };
        if inner.path == BookingPath::Simple {
            return one_at_a_time(buyer, key, request_hash).await;
        }
        let booking = self.clone();
        let answer = inner
            .lanes
            .ask(
                tier_id,
                |reply| Request {
                    buyer: buyer.clone(),
                    quantity,
                    payment_token: payment_token.to_owned(),
                    key: key.clone(),
                    request_hash: request_hash.clone(),
                    reply,
                },
                move |batch| {
                    let booking = booking.clone();
                    async move { book_batch(booking.inner, tier_id, batch).await }
                },
            )
            .await?;
        match answer {
            Some(order) => Ok(order),
            // The key is taken: wait for (or read) the first request's answer; if that one failed
            // meanwhile, this runs the booking on its own.
            None => one_at_a_time(buyer, key, request_hash).await,
        }
    }

    /// Batches run and the requests they served, since start.
    pub fn stats(&self) -> CoalescingStats {
        self.inner.lanes.stats()
    }
}

/// What a batch needs of each request besides its place.
struct Wanted {
    buyer: Buyer,
    quantity: Quantity,
    payment_token: String,
    key: IdempotencyKey,
    request_hash: String,
}

/// The part of a batch that goes in arrival order: stock allocated and committed (the reserve
/// transaction). Payments, orders and answers are the tail, which runs while the lane reserves for the
/// next batch.
async fn book_batch(inner: Arc<Inner>, tier_id: Uuid, batch: Vec<Request>) -> Option<Tail> {
    let started = Instant::now();
    let (requests, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|r| {
            (
                Wanted {
                    buyer: r.buyer,
                    quantity: r.quantity,
                    payment_token: r.payment_token,
                    key: r.key,
                    request_hash: r.request_hash,
                },
                r.reply,
            )
        })
        .unzip();
    let mut outcomes: Outcomes = (0..requests.len()).map(|_| None).collect();
    let reservation = match reserve_batch(&inner, tier_id, &requests, &mut outcomes).await {
        Ok(Some(reservation)) => reservation,
        Ok(None) => {
            answer_all(replies, Ok(outcomes), "booking", tier_id);
            return None;
        }
        Err(err) => {
            answer_all(replies, Err(err), "booking", tier_id);
            return None;
        }
    };
    let reserving = started.elapsed();
    Some(Box::pin(async move {
        let Reservation {
            tier,
            event,
            reserved,
        } = reservation;
        let reserved_count = reserved.len();
        let paid = pay(&inner, &tier, &requests, reserved, &mut outcomes).await;
        let converted = convert(&inner, &tier, paid, &mut outcomes)
            .await
            .map(|()| outcomes);
        // One message for the whole batch, after any declined payment gave its stock back:
        // subscribers re-read the changes anyway.
        inner
            .bus
            .publish(LiveMessage::InventoryChanged { event_id: event.id })
            .await;
        tracing::debug!(
            batch = requests.len(),
            reserved = reserved_count,
            reserve_ms = reserving.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "booking batch"
        );
        answer_all(replies, converted, "booking", tier_id);
    }))
}

type Outcomes = lanes::Outcomes<Option<order::Model>>;

/// Stock a batch holds, committed, for the tail to pay for and turn into orders.
struct Reservation {
    tier: ticket_tier::Model,
    event: event::Model,
    reserved: Vec<Reserved>,
}

/// Reads the tier and event, refuses what can be refused without a lock, and reserves stock for the
/// rest. `None` when nothing was reserved (every request has its outcome).
async fn reserve_batch(
    inner: &Inner,
    tier_id: Uuid,
    requests: &[Wanted],
    outcomes: &mut Outcomes,
) -> AppResult<Option<Reservation>> {
    let db = &inner.db;
    let now = Utc::now();
    let tier = general_admission_tier(db, tier_id).await?;
    let event = event_selling(db, tier.event_id, now).await?;
    let mut pending = Vec::new();
    for (index, wanted) in requests.iter().enumerate() {
        match wanted.buyer.check_admission(&event) {
            Ok(()) => pending.push(Pending {
                index,
                user_id: wanted.buyer.user_id,
                quantity: wanted.quantity.get() as i32,
            }),
            Err(refusal) => outcomes[index] = Some(Err(refusal)),
        }
    }
    if tier.available <= 0 {
        // After a sell-out every request finds nothing: answered from the unlocked read, at no cost.
        allocate(outcomes, pending, 0, &tier.name);
        return Ok(None);
    }
    expire_their_stale_holds(db, &inner.policy, &event, &pending, now).await?;
    let reserved = reserve(inner, &tier, &event, requests, pending, outcomes, now).await?;
    Ok((!reserved.is_empty()).then_some(Reservation {
        tier,
        event,
        reserved,
    }))
}

/// Gives each request, in arrival order, all it asks for while `available` lasts; the others are
/// SOLD_OUT. Returns (served, refused).
fn allocate<T: AsRef<Pending>>(
    outcomes: &mut Outcomes,
    requests: Vec<T>,
    available: i32,
    tier_name: &str,
) -> (Vec<T>, Vec<T>) {
    let mut left = available;
    let mut served = Vec::with_capacity(requests.len());
    let mut refused = Vec::new();
    for item in requests {
        let request = item.as_ref();
        if request.quantity <= left {
            left -= request.quantity;
            served.push(item);
        } else {
            outcomes[request.index] = Some(Err(AppError::SoldOut(format!(
                "fewer than {} tickets left in {tier_name}",
                request.quantity
            ))));
            refused.push(item);
        }
    }
    (served, refused)
}

impl AsRef<Pending> for Reserved {
    fn as_ref(&self) -> &Pending {
        &self.request
    }
}

/// A request whose tickets are held for it, and its idempotency key's row.
struct Reserved {
    request: Pending,
    hold: hold::Model,
    key: idempotency_key::Model,
}

/// The reserve transaction: the requests' idempotency keys claimed, holds for them, then the tier
/// locked and its stock allocated in arrival order; the holds and keys of requests that got nothing
/// are deleted before commit.
async fn reserve(
    inner: &Inner,
    tier: &ticket_tier::Model,
    event: &event::Model,
    requests: &[Wanted],
    pending: Vec<Pending>,
    outcomes: &mut Outcomes,
    now: DateTime<Utc>,
) -> AppResult<Vec<Reserved>> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let txn = inner.db.begin().await?;
    let keys: Vec<idempotency_key::Model> = pending
        .iter()
        .map(|request| {
            let wanted = &requests[request.index];
            idempotency::in_flight(
                request.user_id,
                &wanted.key,
                OPERATION,
                &wanted.request_hash,
                now,
            )
        })
        .collect();
    let claimed = insert_skipping_conflicts::<idempotency_key::Entity, _>(&txn, &keys).await?;
    let (pending, keys): (Vec<Pending>, Vec<idempotency_key::Model>) = pending
        .into_iter()
        .zip(keys)
        .filter(|(request, key)| {
            let fresh = claimed.contains(&key.id);
            if !fresh {
                outcomes[request.index] = Some(Ok(None));
            }
            fresh
        })
        .unzip();
    let holds: Vec<hold::Model> = pending
        .iter()
        .map(|request| {
            new_hold(
                request.user_id,
                event.id,
                Some(tier.id),
                request.quantity,
                &inner.policy,
                now,
            )
        })
        .map(|active| active.try_into_model().map_err(AppError::Database))
        .collect::<AppResult<_>>()?;
    // The owning rows before the tier, the lock order everywhere. A buyer who already holds tickets
    // for the event conflicts on the one-active-hold index; DO NOTHING skips just that row.
    let inserted = insert_skipping_conflicts::<hold::Entity, _>(&txn, &holds).await?;
    let mut candidates = Vec::new();
    let mut unused_keys = Vec::new();
    for ((request, hold), key) in pending.into_iter().zip(holds).zip(keys) {
        if inserted.contains(&hold.id) {
            candidates.push(Reserved { request, hold, key });
        } else {
            outcomes[request.index] = Some(Err((ONE_ACTIVE_HOLD.error)()));
            unused_keys.push(key.id);
        }
    }
    // Counted only now: a buyer's earlier booking still being converted kept the hold insert above
    // waiting on the one-active-hold index until it committed, so its tickets are counted here.
    let (candidates, over_cap) = within_user_caps(&txn, event, candidates, outcomes).await?;
    let available = lock_tier(&txn, tier.id).await?;
    let (reserved, sold_out) = allocate(outcomes, candidates, available, &tier.name);
    let refused: Vec<&Reserved> = over_cap.iter().chain(&sold_out).collect();
    if !refused.is_empty() {
        Hold::delete_many()
            .filter(crate::db::any_of(
                &txn,
                hold::Column::Id,
                &refused.iter().map(|r| r.hold.id).collect::<Vec<_>>(),
            ))
            .exec(&txn)
            .await?;
    }
    unused_keys.extend(refused.iter().map(|r| r.key.id));
    forget_keys(&txn, &unused_keys).await?;
    let taken: i32 = reserved.iter().map(|r| r.request.quantity).sum();
    if taken > 0 {
        TicketTier::update_many()
            .col_expr(
                ticket_tier::Column::Available,
                Expr::col(ticket_tier::Column::Available).sub(taken),
            )
            .col_expr(ticket_tier::Column::UpdatedAt, Expr::value(now))
            .filter(ticket_tier::Column::Id.eq(tier.id))
            .exec(&txn)
            .await
            .map_err(|err| AppError::on_constraint(err, &[TIER_SOLD_OUT]))?;
        changelog::record(&txn, event.id, &[], now).await?;
    }
    txn.commit().await?;
    Ok(reserved)
}

#[derive(FromQueryResult)]
struct TierStock {
    available: i32,
}

/// Locks the tier row (PostgreSQL; SQLite has one writer) and reads its stock. `FOR NO KEY UPDATE`,
/// not `FOR UPDATE`: every ticket, line and hold insert of a batch still converting takes a key-share
/// lock on this row through its foreign key, which `FOR UPDATE` would wait for.
async fn lock_tier(txn: &DatabaseTransaction, tier_id: Uuid) -> AppResult<i32> {
    let mut select = Query::select();
    select
        .column(ticket_tier::Column::Available)
        .from(TicketTier)
        .and_where(Expr::col(ticket_tier::Column::Id).eq(tier_id));
    if is_postgres(txn) {
        select.lock(sea_orm::sea_query::LockType::NoKeyUpdate);
    }
    Ok(
        TierStock::find_by_statement(txn.get_database_backend().build(&select))
            .one(txn)
            .await?
            .ok_or(AppError::NotFound("tier"))?
            .available,
    )
}

/// A reserved request that was charged.
struct Paid {
    reserved: Reserved,
    total_cents: i64,
    reference: String,
}

/// Charges every reserved request at once, no transaction open. Declined ones get PAYMENT_DECLINED,
/// their decline recorded and their holds released.
async fn pay(
    inner: &Inner,
    tier: &ticket_tier::Model,
    requests: &[Wanted],
    reserved: Vec<Reserved>,
    outcomes: &mut Outcomes,
) -> Vec<Paid> {
    let provider = inner.payments.as_ref();
    let charges = join_all(reserved.iter().map(|r| {
        let token = &requests[r.request.index].payment_token;
        let total = tier.price_cents * i64::from(r.request.quantity);
        async move {
            (
                total,
                provider
                    .charge(token, total, &tier.currency, Uuid::new_v4())
                    .await,
            )
        }
    }))
    .await;
    let mut paid = Vec::with_capacity(reserved.len());
    let mut declines = Vec::new();
    let mut released = Vec::new();
    let mut failed_keys = Vec::new();
    for (reserved, (total_cents, charge)) in reserved.into_iter().zip(charges) {
        let index = reserved.request.index;
        match charge {
            Ok(ChargeOutcome::Succeeded { reference }) => paid.push(Paid {
                reserved,
                total_cents,
                reference,
            }),
            Ok(ChargeOutcome::Declined { reason }) => {
                declines.push(payment_row(
                    None,
                    reserved.request.user_id,
                    PaymentKind::Charge,
                    total_cents,
                    &tier.currency,
                    provider.name(),
                    None,
                    PaymentStatus::Declined,
                ));
                released.push(reserved.hold.id);
                failed_keys.push(reserved.key.id);
                outcomes[index] = Some(Err(AppError::PaymentDeclined(reason)));
            }
            Err(err) => {
                released.push(reserved.hold.id);
                failed_keys.push(reserved.key.id);
                outcomes[index] = Some(Err(AppError::Internal(err)));
            }
        }
    }
    // The money has moved: tidying up after the failed charges must not keep the paid ones from
    // becoming orders (what is missed here, the sweeper and the key's time to live clear later).
    if let Err(err) = insert_all(&inner.db, declines).await {
        tracing::error!(error = %err, "recording declined payments failed");
    }
    if let Err(err) = forget_keys(&inner.db, &failed_keys).await {
        tracing::error!(error = %err, "forgetting the keys of failed payments failed");
    }
    if let Err(err) = release(inner, &released).await {
        tracing::error!(error = %err, "releasing the holds of failed payments failed; the sweeper will expire them");
    }
    paid
}

/// Gives the stock of these holds back at once (to the waitlist first, as every release does).
async fn release(inner: &Inner, holds: &[Uuid]) -> AppResult<()> {
    if !holds.is_empty() {
        crate::booking::sweeper::end_holds(
            &inner.db,
            holds,
            HoldStatus::Released,
            inner.policy.waitlist_claim,
            Utc::now(),
        )
        .await?;
    }
    Ok(())
}

/// The convert transaction: the paid holds that are still active become orders with their tickets.
/// Holds the sweeper expired meanwhile are refunded (HOLD_EXPIRED); if the transaction fails, every
/// charge is refunded and every hold released.
async fn convert(
    inner: &Inner,
    tier: &ticket_tier::Model,
    paid: Vec<Paid>,
    outcomes: &mut Outcomes,
) -> AppResult<()> {
    if paid.is_empty() {
        return Ok(());
    }
    match write_orders(inner, tier, &paid).await {
        Ok(mut orders) => {
            for charge in paid {
                let index = charge.reserved.request.index;
                match orders.remove(&charge.reserved.hold.id) {
                    Some(order) => outcomes[index] = Some(Ok(Some(order))),
                    None => {
                        refund(inner, &charge).await;
                        outcomes[index] = Some(Err(AppError::HoldExpired));
                    }
                }
            }
            Ok(())
        }
        Err(err) => {
            for charge in &paid {
                refund(inner, charge).await;
            }
            let holds: Vec<Uuid> = paid.iter().map(|p| p.reserved.hold.id).collect();
            let keys: Vec<Uuid> = paid.iter().map(|p| p.reserved.key.id).collect();
            if let Err(forget_err) = forget_keys(&inner.db, &keys).await {
                tracing::error!(error = %forget_err, "forgetting the idempotency keys of a failed batch failed");
            }
            if let Err(release_err) = release(inner, &holds).await {
                tracing::error!(error = %release_err, "releasing the holds of a failed batch failed; the sweeper will expire them");
            }
            Err(err)
        }
    }
}

async fn refund(inner: &Inner, charge: &Paid) {
    if let Err(err) = inner
        .payments
        .refund(&charge.reference, charge.total_cents)
        .await
    {
        tracing::error!(hold.id = %charge.reserved.hold.id, error = %err, "refunding a failed booking failed");
    }
}

#[derive(FromQueryResult)]
struct ConvertedHold {
    id: Uuid,
}

/// Writes the orders of the paid holds still active; returns them by hold id.
async fn write_orders(
    inner: &Inner,
    tier: &ticket_tier::Model,
    paid: &[Paid],
) -> AppResult<HashMap<Uuid, order::Model>> {
    let now = Utc::now();
    let txn = inner.db.begin().await?;
    let convert = Query::update()
        .table(Hold)
        .value(hold::Column::Status, HoldStatus::Converted.as_str())
        .value(hold::Column::UpdatedAt, now)
        .and_where(crate::db::any_of(
            &txn,
            hold::Column::Id,
            &paid.iter().map(|p| p.reserved.hold.id).collect::<Vec<_>>(),
        ))
        .and_where(Expr::col(hold::Column::Status).eq(HoldStatus::Active.as_str()))
        .returning_col(hold::Column::Id)
        .to_owned();
    let converted: HashSet<Uuid> =
        ConvertedHold::find_by_statement(txn.get_database_backend().build(&convert))
            .all(&txn)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
    let mut orders = HashMap::new();
    let mut completed_keys = Vec::new();
    let mut lines = Vec::new();
    let mut tickets = Vec::new();
    let mut payments = Vec::new();
    for charge in paid
        .iter()
        .filter(|p| converted.contains(&p.reserved.hold.id))
    {
        let hold = &charge.reserved.hold;
        let order = paid_order(
            hold,
            charge.total_cents,
            &tier.currency,
            &charge.reference,
            now,
        );
        let line_id = Uuid::now_v7();
        lines.push(order_line::ActiveModel {
            id: Set(line_id),
            order_id: Set(order.id),
            tier_id: Set(tier.id),
            quantity: Set(hold.quantity),
            unit_price_cents: Set(tier.price_cents),
        });
        tickets
            .extend((0..hold.quantity).map(|_| valid_ticket(&order, line_id, tier.id, None, now)));
        payments.push(payment_row(
            Some(order.id),
            hold.user_id,
            PaymentKind::Charge,
            charge.total_cents,
            &tier.currency,
            inner.payments.name(),
            Some(charge.reference.clone()),
            PaymentStatus::Succeeded,
        ));
        completed_keys.push((charge.reserved.key.id, serde_json::json!(order.id)));
        orders.insert(hold.id, order);
    }
    // Keys of converted holds complete with their order; those of holds that expired meanwhile go,
    // so a retry runs again.
    let expired_keys: Vec<Uuid> = paid
        .iter()
        .filter(|p| !converted.contains(&p.reserved.hold.id))
        .map(|p| p.reserved.key.id)
        .collect();
    forget_keys(&txn, &expired_keys).await?;
    if !orders.is_empty() {
        let order_rows = orders
            .values()
            .map(|order| order.clone().into_active_model().reset_all())
            .collect();
        insert_all(&txn, order_rows).await?;
        insert_all(&txn, lines).await?;
        insert_all(&txn, tickets).await?;
        insert_all(&txn, payments).await?;
        idempotency::complete_all(&txn, completed_keys).await?;
        // No change-log entry: the reserve logged the stock taken, and a general-admission hold
        // becoming an order changes nothing a subscriber sees. Taking the event's sequence row here
        // would also make the next batch's reserve wait for this commit.
    }
    txn.commit().await?;
    Ok(orders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(quantities: &[i32]) -> Vec<Pending> {
        quantities
            .iter()
            .enumerate()
            .map(|(index, quantity)| Pending {
                index,
                user_id: Uuid::new_v4(),
                quantity: *quantity,
            })
            .collect()
    }

    #[test]
    fn stock_goes_in_arrival_order_and_a_smaller_later_request_may_still_fit() {
        let mut outcomes: Outcomes = (0..4).map(|_| None).collect();
        let (served, refused) = allocate(&mut outcomes, pending(&[2, 3, 1, 1]), 4, "Floor");
        assert_eq!(refused.len(), 1);
        let served: Vec<usize> = served.iter().map(|p| p.index).collect();
        assert_eq!(
            served,
            vec![0, 2, 3],
            "2 + 1 + 1 = 4; the 3 did not fit after the 2"
        );
        assert!(matches!(outcomes[1], Some(Err(AppError::SoldOut(_)))));
        assert!(outcomes[0].is_none() && outcomes[2].is_none() && outcomes[3].is_none());
    }

    #[test]
    fn nothing_left_means_everyone_is_sold_out() {
        let mut outcomes: Outcomes = (0..3).map(|_| None).collect();
        let (served, refused) = allocate(&mut outcomes, pending(&[1, 1, 1]), 0, "Floor");
        assert!(served.is_empty());
        assert_eq!(refused.len(), 3);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Some(Err(AppError::SoldOut(_)))))
        );
    }
}
