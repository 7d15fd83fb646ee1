//! Holds, checkout and direct booking. See the module docs for the invariants and the lock order.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use entity::enums::{
    EventStatus, HoldSource, HoldStatus, OrderStatus, PaymentKind, PaymentStatus, SeatStatus,
    TicketStatus, TierKind,
};
use entity::prelude::*;
use entity::{
    buyer_ticket_count, event, event_seat, hold, order, order_line, payment, seat, section, ticket,
    ticket_tier,
};
use rand::RngCore;
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, LockBehavior, LockType, Query, SimpleExpr, TableRef, ValueTuple,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::booking::best_available::{self, Candidate};
use crate::booking::idempotency::{self, ClaimedKey};
use crate::db::is_postgres;
use crate::error::{AppError, AppResult, ConstraintRule};
use crate::events::changelog;
use crate::payments::{ChargeOutcome, PaymentProvider};

/// Hold timing and size limits, from Config.
#[derive(Debug, Clone, Copy)]
pub struct HoldPolicy {
    /// How long a new hold lasts.
    pub ttl: Duration,
    /// The longest a hold may live in all, extensions included.
    pub max_lifetime: Duration,
    /// Most tickets or seats in one request.
    pub max_per_request: u32,
    /// How long a waitlist offer is held for its buyer to claim.
    pub waitlist_claim: Duration,
}

/// Who is buying, and what their queue pass (checked before any transaction) says.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub user_id: Uuid,
    pub admission: Admission,
}

/// The outcome of checking a buyer's queue pass; it matters only on events with a waiting room.
#[derive(Debug, Clone)]
pub enum Admission {
    NoPass,
    /// A valid pass of this buyer for this event.
    Admitted(Uuid),
    /// Forged, expired or someone else's, and why.
    Refused(String),
}

impl Buyer {
    /// A buyer without a queue pass.
    pub fn without_pass(user_id: Uuid) -> Self {
        Self {
            user_id,
            admission: Admission::NoPass,
        }
    }

    pub(crate) fn check_admission(&self, event: &event::Model) -> AppResult<()> {
        if !event.waiting_room_required {
            return Ok(());
        }
        match &self.admission {
            Admission::Admitted(event_id) if *event_id == event.id => Ok(()),
            Admission::Admitted(_) => Err(AppError::QueueRequired(
                "this queue pass is for another event".into(),
            )),
            Admission::Refused(reason) => Err(AppError::QueueRequired(reason.clone())),
            Admission::NoPass => Err(AppError::QueueRequired(
                "this event sells through its waiting room: joinQueue, then send the queuePass you \
                 get when admitted"
                    .into(),
            )),
        }
    }
}

/// A validated number of tickets for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(raw: i32, policy: &HoldPolicy) -> AppResult<Self> {
        u32::try_from(raw)
            .ok()
            .filter(|n| (1..=policy.max_per_request).contains(n))
            .map(Self)
            .ok_or_else(|| {
                AppError::bad_input(format!("quantity must be 1 to {}", policy.max_per_request))
            })
    }

    pub fn get(self) -> u32 {
        self.0
    }

    fn as_i32(self) -> i32 {
        self.0 as i32
    }
}

/// What a best-available request asks for.
#[derive(Debug, Clone, Serialize)]
pub struct BestAvailable {
    pub event_id: Uuid,
    pub section_id: Option<Uuid>,
    pub tier_id: Option<Uuid>,
    pub quantity: Quantity,
    pub adjacent: bool,
}

pub(crate) const ONE_ACTIVE_HOLD: ConstraintRule = ConstraintRule {
    name: "holds_one_active_per_user_event",
    sqlite_columns: "holds.user_id, holds.event_id",
    error: || {
        AppError::Conflict(
            "you already hold tickets for this event: check out or release that hold first".into(),
        )
    },
};

pub(crate) const TIER_SOLD_OUT: ConstraintRule = ConstraintRule {
    name: "ticket_tiers_available_within_capacity",
    sqlite_columns: "ticket_tiers_available_within_capacity",
    error: || AppError::SoldOut("not enough tickets left".into()),
};

pub(crate) const HOLD_ALREADY_ORDERED: ConstraintRule = ConstraintRule {
    name: "orders_hold_key",
    sqlite_columns: "orders.hold_id",
    error: || AppError::Conflict("this hold was already checked out".into()),
};

pub(crate) const SEAT_ALREADY_TICKETED: ConstraintRule = ConstraintRule {
    name: "tickets_one_valid_per_seat",
    sqlite_columns: "tickets.event_id, tickets.seat_id",
    error: || AppError::SoldOut("a seat was sold to someone else".into()),
};

/// An event that sells now to this buyer: on sale (see [`event_selling`]) and, for an event with a
/// waiting room, the buyer admitted by a queue pass.
async fn event_on_sale(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    buyer: &Buyer,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    let event = event_selling(db, event_id, now).await?;
    buyer.check_admission(&event)?;
    Ok(event)
}

/// An event that sells now: published, not cancelled, sale started, not over.
pub(crate) async fn event_selling(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    let event = Event::find_by_id(event_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))?;
    match event.status {
        EventStatus::Draft => return Err(AppError::NotFound("event")),
        EventStatus::Cancelled => return Err(AppError::Conflict("the event is cancelled".into())),
        EventStatus::OnSale => {}
    }
    if event.sale_starts_at > now {
        return Err(AppError::Conflict(format!(
            "tickets go on sale at {}",
            event.sale_starts_at.to_rfc3339()
        )));
    }
    if event.ends_at <= now {
        return Err(AppError::Conflict("the event is over".into()));
    }
    Ok(event)
}

/// Refuses a request that would take the user past the event's per-user cap (valid tickets already
/// owned plus this request). Call it after inserting the request's hold: the one-active-hold index made
/// that insert wait for any booking of the same user still in flight, so its tickets are counted.
async fn check_user_cap(
    db: &impl ConnectionTrait,
    event: &event::Model,
    user_id: Uuid,
    wanted: u32,
) -> AppResult<()> {
    let owned = owned_tickets(db, event.id, &[user_id]).await?;
    within_cap(event, owned.get(&user_id).copied().unwrap_or(0), wanted)
}

/// LIMIT_EXCEEDED if `owned` tickets plus `wanted` more pass the event's per-user cap.
pub(crate) fn within_cap(event: &event::Model, owned: i64, wanted: u32) -> AppResult<()> {
    if owned + i64::from(wanted) > i64::from(event.max_tickets_per_user) {
        return Err(AppError::LimitExceeded(format!(
            "at most {} tickets per person for this event; you have {owned}",
            event.max_tickets_per_user
        )));
    }
    Ok(())
}

/// Valid tickets each of `users` owns for the event (users with none are absent), from the counts the
/// ticket triggers keep in the same transactions that change tickets.
pub(crate) async fn owned_tickets(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    users: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    Ok(BuyerTicketCount::find()
        .filter(buyer_ticket_count::Column::EventId.eq(event_id))
        .filter(crate::db::any_of(
            db,
            buyer_ticket_count::Column::UserId,
            users,
        ))
        .all(db)
        .await?
        .into_iter()
        .map(|count| (count.user_id, i64::from(count.valid_tickets)))
        .collect())
}

/// Expires these users' own active holds on this event whose time is up, so a new hold is not
/// refused because the sweeper has not come round yet.
pub(crate) async fn expire_stale_holds(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    event_id: Uuid,
    users: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let stale: Vec<Uuid> = Hold::find()
        .select_only()
        .column(hold::Column::Id)
        .filter(hold::Column::EventId.eq(event_id))
        .filter(crate::db::any_of(db, hold::Column::UserId, users))
        .filter(hold_is_active())
        .filter(hold::Column::ExpiresAt.lte(now))
        .into_tuple()
        .all(db)
        .await?;
    if !stale.is_empty() {
        crate::booking::sweeper::end_holds(
            db,
            &stale,
            HoldStatus::Expired,
            policy.waitlist_claim,
            now,
        )
        .await?;
    }
    Ok(())
}

pub(crate) fn new_hold(
    user_id: Uuid,
    event_id: Uuid,
    tier_id: Option<Uuid>,
    quantity: i32,
    policy: &HoldPolicy,
    now: DateTime<Utc>,
) -> hold::ActiveModel {
    hold::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        event_id: Set(event_id),
        tier_id: Set(tier_id),
        quantity: Set(quantity),
        status: Set(HoldStatus::Active),
        source: Set(HoldSource::Direct),
        expires_at: Set(now + policy.ttl),
        max_expires_at: Set(now + policy.max_lifetime.max(policy.ttl)),
        expiry_warned_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The tier, if it sells general admission (reserved tiers sell seats, not units).
pub(crate) async fn general_admission_tier(
    db: &impl ConnectionTrait,
    tier_id: Uuid,
) -> AppResult<ticket_tier::Model> {
    let tier = TicketTier::find_by_id(tier_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("tier"))?;
    if tier.kind != TierKind::GeneralAdmission {
        return Err(AppError::bad_input(
            "this tier sells reserved seats: use holdSeats or holdBestAvailable",
        ));
    }
    Ok(tier)
}

/// Holds `quantity` general-admission tickets of a tier: one conditional decrement of the tier, so the
/// stock can never go below zero however many buyers race.
pub async fn hold_tickets(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    buyer: Buyer,
    tier_id: Uuid,
    quantity: Quantity,
) -> AppResult<hold::Model> {
    let user_id = buyer.user_id;
    let now = Utc::now();
    let tier = general_admission_tier(db, tier_id).await?;
    expire_stale_holds(db, policy, tier.event_id, &[user_id], now).await?;
    let txn = db.begin().await?;
    let event = event_on_sale(&txn, tier.event_id, &buyer, now).await?;
    let hold = new_hold(
        user_id,
        event.id,
        Some(tier.id),
        quantity.as_i32(),
        policy,
        now,
    )
    .insert(&txn)
    .await
    .map_err(|err| AppError::on_constraint(err, &[ONE_ACTIVE_HOLD]))?;
    check_user_cap(&txn, &event, user_id, quantity.get()).await?;
    let taken = TicketTier::update_many()
        .col_expr(
            ticket_tier::Column::Available,
            Expr::col(ticket_tier::Column::Available).sub(quantity.as_i32()),
        )
        .col_expr(ticket_tier::Column::UpdatedAt, Expr::value(now))
        .filter(ticket_tier::Column::Id.eq(tier.id))
        .filter(ticket_tier::Column::Available.gte(quantity.as_i32()))
        .exec(&txn)
        .await
        .map_err(|err| AppError::on_constraint(err, &[TIER_SOLD_OUT]))?;
    if taken.rows_affected == 0 {
        return Err(AppError::SoldOut(format!(
            "fewer than {} tickets left in {}",
            quantity.get(),
            tier.name
        )));
    }
    changelog::record(&txn, event.id, &[], now).await?;
    txn.commit().await?;
    Ok(hold)
}

#[derive(Debug, FromQueryResult)]
struct LockedSeat {
    seat_id: Uuid,
    tier_id: Uuid,
    status: SeatStatus,
}

/// The seats a `holdSeats` request names, sorted and without repeats: BAD_USER_INPUT unless there
/// are 1 to `max_per_request` of them.
pub(crate) fn seat_selection(policy: &HoldPolicy, seat_ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    let mut seat_ids = seat_ids.to_vec();
    seat_ids.sort();
    seat_ids.dedup();
    if seat_ids.is_empty() || seat_ids.len() > policy.max_per_request as usize {
        return Err(AppError::bad_input(format!(
            "pick 1 to {} seats",
            policy.max_per_request
        )));
    }
    Ok(seat_ids)
}

/// SOLD_OUT if any of the seats is sold, CONFLICT if any is held; the error lists the unavailable
/// seats (the held ones too, for SOLD_OUT).
pub(crate) fn all_available(seats: impl IntoIterator<Item = (Uuid, SeatStatus)>) -> AppResult<()> {
    let mut sold = Vec::new();
    let mut held = Vec::new();
    for (seat_id, status) in seats {
        match status {
            SeatStatus::Sold => sold.push(seat_id),
            SeatStatus::Held => held.push(seat_id),
            SeatStatus::Available => {}
        }
    }
    if !sold.is_empty() {
        return Err(AppError::SeatsSold([sold, held].concat()));
    }
    if !held.is_empty() {
        return Err(AppError::SeatsHeld(held));
    }
    Ok(())
}

/// Holds exactly these seats or none of them. Sold seats make it SOLD_OUT, seats in someone else's
/// hold CONFLICT; either way the error lists the unavailable seats.
pub async fn hold_seats(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    buyer: Buyer,
    event_id: Uuid,
    seat_ids: &[Uuid],
) -> AppResult<hold::Model> {
    let user_id = buyer.user_id;
    let seat_ids = seat_selection(policy, seat_ids)?;
    let now = Utc::now();
    expire_stale_holds(db, policy, event_id, &[user_id], now).await?;
    let txn = db.begin().await?;
    let event = event_on_sale(&txn, event_id, &buyer, now).await?;

    // Lock the requested seats in seat_id order: the same order everywhere, so no deadlock.
    let mut select = Query::select();
    select
        .columns([
            event_seat::Column::SeatId,
            event_seat::Column::TierId,
            event_seat::Column::Status,
        ])
        .from(EventSeat)
        .and_where(Expr::col(event_seat::Column::EventId).eq(event_id))
        .and_where(Expr::col(event_seat::Column::SeatId).is_in(seat_ids.iter().copied()))
        .order_by(event_seat::Column::SeatId, sea_orm::Order::Asc);
    if is_postgres(&txn) {
        select.lock(LockType::Update);
    }
    let locked = LockedSeat::find_by_statement(txn.get_database_backend().build(&select))
        .all(&txn)
        .await?;
    if locked.len() != seat_ids.len() {
        return Err(AppError::bad_input(
            "some seats do not exist for this event",
        ));
    }
    all_available(locked.iter().map(|seat| (seat.seat_id, seat.status)))?;
    let hold = new_hold(user_id, event_id, None, seat_ids.len() as i32, policy, now)
        .insert(&txn)
        .await
        .map_err(|err| AppError::on_constraint(err, &[ONE_ACTIVE_HOLD]))?;
    check_user_cap(&txn, &event, user_id, seat_ids.len() as u32).await?;
    take_seats(
        &txn,
        event_id,
        hold.id,
        &locked
            .iter()
            .map(|s| (s.seat_id, s.tier_id))
            .collect::<Vec<_>>(),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(hold)
}

/// Marks locked, available seats as held by `hold_id`, moves their tiers' counters and logs the change.
async fn take_seats(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    hold_id: Uuid,
    seats: &[(Uuid, Uuid)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    hold_seat_rows(txn, event_id, hold_id, seats, now).await?;
    let changed: Vec<(Uuid, SeatStatus, Uuid)> = seats
        .iter()
        .map(|(seat, tier)| (*seat, SeatStatus::Held, *tier))
        .collect();
    changelog::record(txn, event_id, &changed, now).await?;
    Ok(())
}

/// Marks locked, available `(seat, tier)` rows as held by `hold_id` and takes them off their tiers'
/// counters, without logging (callers that hold many seats log once).
pub(crate) async fn hold_seat_rows(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    hold_id: Uuid,
    seats: &[(Uuid, Uuid)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let updated = EventSeat::update_many()
        .col_expr(
            event_seat::Column::Status,
            Expr::value(SeatStatus::Held.as_str()),
        )
        .col_expr(event_seat::Column::HoldId, Expr::value(hold_id))
        .col_expr(
            event_seat::Column::Version,
            Expr::col(event_seat::Column::Version).add(1),
        )
        .col_expr(event_seat::Column::UpdatedAt, Expr::value(now))
        .filter(event_seat::Column::EventId.eq(event_id))
        .filter(event_seat::Column::SeatId.is_in(seats.iter().map(|(seat, _)| *seat)))
        .filter(event_seat::Column::Status.eq(SeatStatus::Available))
        .exec(txn)
        .await?;
    if updated.rows_affected != seats.len() as u64 {
        // Only possible if a seat changed under us; the transaction rolls back on return.
        return Err(AppError::Conflict(
            "the seats changed while being held; try again".into(),
        ));
    }
    let mut per_tier: BTreeMap<Uuid, i32> = BTreeMap::new();
    for (_, tier_id) in seats {
        *per_tier.entry(*tier_id).or_default() += 1;
    }
    adjust_tiers(txn, &per_tier, -1, now).await
}

/// Returns the seats matching `condition` to `available`, clearing their hold or order and bumping
/// their version, in the caller's transaction.
pub(crate) async fn free_seats(
    db: &impl ConnectionTrait,
    condition: sea_orm::Condition,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(EventSeat::update_many()
        .col_expr(
            event_seat::Column::Status,
            Expr::value(SeatStatus::Available.as_str()),
        )
        .col_expr(
            event_seat::Column::HoldId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            event_seat::Column::OrderId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            event_seat::Column::Version,
            Expr::col(event_seat::Column::Version).add(1),
        )
        .col_expr(event_seat::Column::UpdatedAt, Expr::value(now))
        .filter(condition)
        .exec(db)
        .await?
        .rows_affected)
}

/// Adds `sign * count` to each tier's availability, in tier-id order (the lock order).
pub(crate) async fn adjust_tiers(
    db: &impl ConnectionTrait,
    per_tier: &BTreeMap<Uuid, i32>,
    sign: i32,
    now: DateTime<Utc>,
) -> AppResult<()> {
    for (tier_id, count) in per_tier {
        TicketTier::update_many()
            .col_expr(
                ticket_tier::Column::Available,
                Expr::col(ticket_tier::Column::Available).add(sign * count),
            )
            .col_expr(ticket_tier::Column::UpdatedAt, Expr::value(now))
            .filter(ticket_tier::Column::Id.eq(*tier_id))
            .exec(db)
            .await
            .map_err(|err| AppError::on_constraint(err, &[TIER_SOLD_OUT]))?;
    }
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct CandidateRow {
    seat_id: Uuid,
    section_id: Uuid,
    sort_order: i32,
    row_index: i32,
    number: i32,
}

/// How many free seats one best-available attempt looks at, front to back.
pub(crate) const CANDIDATE_WINDOW: u64 = 2000;
/// Attempts before a best-available request gives up under contention.
const BEST_AVAILABLE_ATTEMPTS: u32 = 12;

/// Holds the best `quantity` free seats.
///
/// Candidates are read without locks, the best block is chosen, and exactly those seats are then
/// locked with `FOR UPDATE SKIP LOCKED` inside a savepoint (PostgreSQL). If another buyer got one of
/// them first, the savepoint is rolled back (releasing our locks), those seats are avoided and another
/// block is tried, spreading later attempts over more of the best blocks so concurrent buyers stop
/// colliding. No buyer waits on another's seats, no seat is held twice, and only seats actually taken
/// are locked, so nobody is told SOLD_OUT while seats remain.
pub async fn hold_best_available(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    buyer: Buyer,
    request: &BestAvailable,
) -> AppResult<hold::Model> {
    let user_id = buyer.user_id;
    let now = Utc::now();
    expire_stale_holds(db, policy, request.event_id, &[user_id], now).await?;
    let txn = db.begin().await?;
    let event = event_on_sale(&txn, request.event_id, &buyer, now).await?;
    let quantity = request.quantity.get() as usize;
    let hold = new_hold(user_id, event.id, None, quantity as i32, policy, now)
        .insert(&txn)
        .await
        .map_err(|err| AppError::on_constraint(err, &[ONE_ACTIVE_HOLD]))?;
    check_user_cap(&txn, &event, user_id, request.quantity.get()).await?;
    let mut contended: Vec<Uuid> = Vec::new();
    for attempt in 0..BEST_AVAILABLE_ATTEMPTS {
        let candidates = candidate_seats(&txn, request, &contended, CANDIDATE_WINDOW).await?;
        let spread = 4usize.pow(std::cmp::min(attempt, 6));
        let Some(mut chosen) = ({
            let mut rng = rand::rng();
            best_available::choose(&candidates, quantity, request.adjacent, spread, &mut rng)
        }) else {
            break;
        };
        chosen.sort();
        let savepoint = txn.begin().await?;
        let locked = lock_free_seats(&savepoint, event.id, &chosen).await?;
        if locked.len() == chosen.len() {
            take_seats(&savepoint, event.id, hold.id, &locked, now).await?;
            savepoint.commit().await?;
            txn.commit().await?;
            return Ok(hold);
        }
        savepoint.rollback().await?;
        contended.extend(
            chosen
                .iter()
                .filter(|id| !locked.iter().any(|(seat, _)| seat == *id)),
        );
    }
    if contended.is_empty() {
        Err(no_fit(quantity, request.adjacent))
    } else {
        Err(AppError::Conflict(
            "seats are being taken faster than they can be held; try again".into(),
        ))
    }
}

/// The refusal for a best-available request that no set of free seats fits.
pub(crate) fn no_fit(quantity: usize, adjacent: bool) -> AppError {
    AppError::SoldOut(if adjacent {
        format!("no {quantity} adjacent seats are free")
    } else {
        format!("fewer than {quantity} seats are free")
    })
}

/// `holds.status = 'active'`, written so that the partial indexes on active holds serve it in any
/// plan (see [`crate::db::equals_constant`]).
pub(crate) fn hold_is_active() -> SimpleExpr {
    crate::db::equals_constant((Hold, hold::Column::Status), HoldStatus::Active.as_str())
}

/// `event_seats.status = 'available'`, likewise for the partial index on free seats.
pub(crate) fn seat_is_free() -> SimpleExpr {
    crate::db::equals_constant(
        (EventSeat, event_seat::Column::Status),
        SeatStatus::Available.as_str(),
    )
}

/// Locks those of `seat_ids` that are free and not locked by anyone else (PostgreSQL), in seat order.
/// Returns (seat, tier) for each seat locked.
pub(crate) async fn lock_free_seats(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    seat_ids: &[Uuid],
) -> AppResult<Vec<(Uuid, Uuid)>> {
    let mut select = Query::select();
    select
        .columns([
            event_seat::Column::SeatId,
            event_seat::Column::TierId,
            event_seat::Column::Status,
        ])
        .from(EventSeat)
        .and_where(Expr::col(event_seat::Column::EventId).eq(event_id))
        .and_where(crate::db::any_of(txn, event_seat::Column::SeatId, seat_ids))
        .and_where(Expr::col(event_seat::Column::Status).eq(SeatStatus::Available.as_str()))
        .order_by(event_seat::Column::SeatId, sea_orm::Order::Asc);
    if is_postgres(txn) {
        select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(
        LockedSeat::find_by_statement(txn.get_database_backend().build(&select))
            .all(txn)
            .await?
            .into_iter()
            .map(|seat| (seat.seat_id, seat.tier_id))
            .collect(),
    )
}

/// Up to `limit` free seats matching the request's event, section and tier, front to back, read
/// without locking.
pub(crate) async fn candidate_seats(
    db: &impl ConnectionTrait,
    request: &BestAvailable,
    exclude: &[Uuid],
    limit: u64,
) -> AppResult<Vec<Candidate>> {
    let mut select = Query::select();
    select
        .column((EventSeat, event_seat::Column::SeatId))
        .column((EventSeat, event_seat::Column::SectionId))
        .column((Section, section::Column::SortOrder))
        .column((Seat, seat::Column::RowIndex))
        .column((Seat, seat::Column::Number))
        .from(EventSeat)
        .inner_join(
            Seat,
            Expr::col((Seat, seat::Column::Id)).equals((EventSeat, event_seat::Column::SeatId)),
        )
        .inner_join(
            Section,
            Expr::col((Section, section::Column::Id))
                .equals((EventSeat, event_seat::Column::SectionId)),
        )
        .and_where(Expr::col((EventSeat, event_seat::Column::EventId)).eq(request.event_id))
        .and_where(seat_is_free())
        .order_by((Section, section::Column::SortOrder), sea_orm::Order::Asc)
        .order_by((Seat, seat::Column::RowIndex), sea_orm::Order::Asc)
        .order_by((Seat, seat::Column::Number), sea_orm::Order::Asc)
        .limit(limit);
    if !exclude.is_empty() {
        select.and_where(
            Expr::col((EventSeat, event_seat::Column::SeatId)).is_not_in(exclude.iter().copied()),
        );
    }
    if let Some(section_id) = request.section_id {
        select.and_where(Expr::col((EventSeat, event_seat::Column::SectionId)).eq(section_id));
    }
    if let Some(tier_id) = request.tier_id {
        select.and_where(Expr::col((EventSeat, event_seat::Column::TierId)).eq(tier_id));
    }
    Ok(
        CandidateRow::find_by_statement(db.get_database_backend().build(&select))
            .all(db)
            .await?
            .into_iter()
            .map(|row| Candidate {
                seat_id: row.seat_id,
                section_rank: row.sort_order,
                section_id: row.section_id,
                row_index: row.row_index,
                number: row.number,
            })
            .collect(),
    )
}

/// Loads the viewer's hold; another user's hold is NOT_FOUND.
pub async fn find_own_hold(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hold_id: Uuid,
) -> AppResult<hold::Model> {
    Hold::find_by_id(hold_id)
        .filter(hold::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("hold"))
}

fn ensure_live(hold: &hold::Model, now: DateTime<Utc>) -> AppResult<()> {
    match hold.status {
        HoldStatus::Active if hold.expires_at > now => Ok(()),
        HoldStatus::Active | HoldStatus::Expired => Err(AppError::HoldExpired),
        HoldStatus::Released => Err(AppError::Conflict("the hold was released".into())),
        HoldStatus::Converted => Err(AppError::Conflict(
            "the hold was already checked out".into(),
        )),
    }
}

/// Extends a live hold by the hold time, up to its maximum lifetime.
pub async fn extend_hold(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    user_id: Uuid,
    hold_id: Uuid,
) -> AppResult<hold::Model> {
    let now = Utc::now();
    let hold = find_own_hold(db, user_id, hold_id).await?;
    ensure_live(&hold, now)?;
    let new_expiry = std::cmp::min(now + policy.ttl, hold.max_expires_at);
    if new_expiry <= hold.expires_at {
        return Err(AppError::LimitExceeded(
            "the hold cannot be extended any further".into(),
        ));
    }
    // Conditional on still being active, so it cannot revive a hold the sweeper just expired.
    let extended = Hold::update_many()
        .col_expr(hold::Column::ExpiresAt, Expr::value(new_expiry))
        .col_expr(
            hold::Column::ExpiryWarnedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(hold::Column::UpdatedAt, Expr::value(now))
        .filter(hold::Column::Id.eq(hold.id))
        .filter(hold::Column::Status.eq(HoldStatus::Active))
        .exec(db)
        .await?;
    if extended.rows_affected == 0 {
        return Err(AppError::HoldExpired);
    }
    find_own_hold(db, user_id, hold_id).await
}

/// Gives a live hold's stock back.
pub async fn release_hold(
    db: &DatabaseConnection,
    policy: &HoldPolicy,
    user_id: Uuid,
    hold_id: Uuid,
) -> AppResult<hold::Model> {
    let now = Utc::now();
    let hold = find_own_hold(db, user_id, hold_id).await?;
    if hold.status != HoldStatus::Active {
        return Err(AppError::Conflict("the hold is no longer active".into()));
    }
    let released = crate::booking::sweeper::end_holds(
        db,
        &[hold.id],
        HoldStatus::Released,
        policy.waitlist_claim,
        now,
    )
    .await?;
    if released.is_empty() {
        return Err(AppError::Conflict("the hold is no longer active".into()));
    }
    find_own_hold(db, user_id, hold_id).await
}

/// What a hold costs, in its currency: its tier's price times its quantity for a GA hold, the sum of
/// its seats' tier prices for a reserved one. `ga_tier` is a GA hold's tier, `seat_tiers` the tiers
/// of a reserved hold's seats, `tiers` its event's tiers.
pub fn price_hold(
    ga_tier: Option<Uuid>,
    quantity: i32,
    seat_tiers: impl IntoIterator<Item = Uuid>,
    tiers: &[ticket_tier::Model],
) -> AppResult<(i64, String)> {
    let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
    match ga_tier {
        Some(tier_id) => {
            counts.insert(tier_id, i64::from(quantity));
        }
        None => {
            for tier_id in seat_tiers {
                *counts.entry(tier_id).or_default() += 1;
            }
        }
    }
    let mut total = 0;
    let mut currency = None;
    for (tier_id, count) in counts {
        let tier = tiers
            .iter()
            .find(|tier| tier.id == tier_id)
            .ok_or(AppError::NotFound("tier"))?;
        total += tier.price_cents * count;
        currency.get_or_insert_with(|| tier.currency.clone());
    }
    Ok((total, currency.unwrap_or_else(|| "USD".to_owned())))
}

/// What a hold costs, read from the database (see [`price_hold`]).
pub async fn hold_total(db: &impl ConnectionTrait, hold: &hold::Model) -> AppResult<(i64, String)> {
    let seat_tiers = if hold.tier_id.is_some() {
        Vec::new()
    } else {
        EventSeat::find()
            .filter(event_seat::Column::HoldId.eq(hold.id))
            .all(db)
            .await?
            .into_iter()
            .map(|seat| seat.tier_id)
            .collect()
    };
    let tiers = TicketTier::find()
        .filter(ticket_tier::Column::EventId.eq(hold.event_id))
        .all(db)
        .await?;
    price_hold(hold.tier_id, hold.quantity, seat_tiers, &tiers)
}

/// A paid hold, to be turned into an order.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The hold as read before the payment; it is locked and checked again when converted.
    pub hold: hold::Model,
    pub total_cents: i64,
    pub currency: String,
    pub payment_reference: String,
    pub provider: &'static str,
    /// The checkout's idempotency key, completed with the order in the converting transaction.
    pub key: Option<ClaimedKey>,
}

/// Turns a live hold into a paid order with one ticket per seat or unit.
///
/// The payment provider is called with no transaction open. Afterwards `convert` locks the hold and,
/// if it is still active, converts it (see [`convert_hold`]); if the sweeper expired it meanwhile (its
/// seats may already be someone else's), the charge is refunded and the checkout fails with
/// HOLD_EXPIRED. A declined payment keeps the hold so the buyer can retry.
pub async fn checkout(
    db: &DatabaseConnection,
    payments: &dyn PaymentProvider,
    user_id: Uuid,
    hold_id: Uuid,
    payment_token: &str,
    key: Option<ClaimedKey>,
    convert: impl AsyncFnOnce(Conversion) -> AppResult<order::Model>,
) -> AppResult<order::Model> {
    let hold = find_own_hold(db, user_id, hold_id).await?;
    ensure_live(&hold, Utc::now())?;
    let (total, currency) = hold_total(db, &hold).await?;
    let attempt = Uuid::new_v4();
    let charge = payments
        .charge(payment_token, total, &currency, attempt)
        .await
        .map_err(AppError::Internal)?;
    let reference = match charge {
        ChargeOutcome::Succeeded { reference } => reference,
        ChargeOutcome::Declined { reason } => {
            payment_row(
                None,
                user_id,
                PaymentKind::Charge,
                total,
                &currency,
                payments.name(),
                None,
                PaymentStatus::Declined,
            )
            .insert(db)
            .await?;
            return Err(AppError::PaymentDeclined(reason));
        }
    };
    let conversion = Conversion {
        hold,
        total_cents: total,
        currency,
        payment_reference: reference.clone(),
        provider: payments.name(),
        key,
    };
    let hold_id = conversion.hold.id;
    match convert(conversion).await {
        Ok(order) => Ok(order),
        Err(err) => {
            // The stock is gone or the order could not be written: give the money back.
            if let Err(refund_err) = payments.refund(&reference, total).await {
                tracing::error!(hold.id = %hold_id, error = %refund_err, "refunding a failed checkout failed");
            }
            Err(err)
        }
    }
}

/// A row of the payments table, written in the caller's transaction or on its own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn payment_row(
    order_id: Option<Uuid>,
    user_id: Uuid,
    kind: PaymentKind,
    amount_cents: i64,
    currency: &str,
    provider: &str,
    reference: Option<String>,
    status: PaymentStatus,
) -> payment::ActiveModel {
    payment::ActiveModel {
        id: Set(Uuid::now_v7()),
        order_id: Set(order_id),
        user_id: Set(user_id),
        kind: Set(kind),
        amount_cents: Set(amount_cents),
        currency: Set(currency.to_owned()),
        provider: Set(provider.to_owned()),
        provider_reference: Set(reference),
        status: Set(status),
        created_at: Set(Utc::now()),
    }
}

/// A random nonce for a ticket's QR payload.
pub fn new_ticket_nonce() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Converts a still-active hold into an order in one transaction, the hold row locked first.
pub(crate) async fn convert_hold(
    db: &DatabaseConnection,
    conversion: &Conversion,
) -> AppResult<order::Model> {
    convert_holds(db, std::slice::from_ref(conversion))
        .await?
        .pop()
        .unwrap_or(Err(AppError::NotFound("hold")))
}

/// Converts the still-active holds among `conversions` (all of one event) in one transaction, the
/// hold rows locked first, in id order; each request's order, or HOLD_EXPIRED (a hold no longer
/// active, or converted by an earlier request of the same call).
pub(crate) async fn convert_holds(
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
        .filter(crate::db::any_of(&txn, hold::Column::Id, &hold_ids))
        .order_by_asc(hold::Column::Id);
    if is_postgres(&txn) {
        query = query.lock_exclusive();
    }
    let locked: HashMap<Uuid, hold::Model> = query
        .all(&txn)
        .await?
        .into_iter()
        .map(|hold| (hold.id, hold))
        .collect();
    let active: HashMap<Uuid, &hold::Model> = locked
        .iter()
        .filter(|(_, hold)| hold.status == HoldStatus::Active)
        .map(|(id, hold)| (*id, hold))
        .collect();
    let seat_holds: Vec<Uuid> = active
        .values()
        .filter(|hold| hold.tier_id.is_none())
        .map(|hold| hold.id)
        .collect();
    let mut seats_of: HashMap<Uuid, Vec<(Uuid, Uuid)>> = HashMap::new();
    if !seat_holds.is_empty() {
        for seat in EventSeat::find()
            .filter(crate::db::any_of(
                &txn,
                event_seat::Column::HoldId,
                &seat_holds,
            ))
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
        .filter(crate::db::any_of(&txn, ticket_tier::Column::Id, &tier_ids))
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
    let mut sold_to = Vec::new();
    let mut sold = Vec::new();
    let mut from_waitlist = Vec::new();
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut completed_keys = Vec::new();
    for conversion in conversions {
        // The first request for a hold converts it; a later one finds it converted, as it would
        // one at a time.
        let Some(hold) = active
            .get(&conversion.hold.id)
            .copied()
            .filter(|hold| taken.insert(hold.id))
        else {
            outcomes.push(Err(if locked.contains_key(&conversion.hold.id) {
                AppError::HoldExpired
            } else {
                AppError::NotFound("hold")
            }));
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
            sold_to.push((hold.id, order.id));
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
    crate::db::insert_all(&txn, order_rows)
        .await
        .map_err(|err| AppError::on_constraint(err, &[HOLD_ALREADY_ORDERED]))?;
    crate::db::insert_all(&txn, lines).await?;
    crate::db::insert_all(&txn, tickets)
        .await
        .map_err(|err| AppError::on_constraint(err, &[SEAT_ALREADY_TICKETED]))?;
    if !sold_to.is_empty() {
        sell_seats(&txn, sold_to, sold.len() as u64, now).await?;
    }
    crate::waitlist::service::close_offers(&txn, &from_waitlist, HoldStatus::Converted, now)
        .await?;
    mark_converted(&txn, &converted, now).await?;
    crate::db::insert_all(&txn, payments).await?;
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
    sold_to: Vec<(Uuid, Uuid)>,
    expected: u64,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let (holds, orders): (Vec<Uuid>, Vec<Uuid>) = sold_to.into_iter().unzip();
    let update = if is_postgres(txn) {
        // Two arrays keep the text the same whatever the batch's size (one prepared statement per
        // connection); the `ANY` lets the planner find the holds' seats through their index.
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE event_seats SET status = $1, order_id = sold.order_id, hold_id = NULL, \
             version = event_seats.version + 1, updated_at = $2 \
             FROM unnest($3::uuid[], $4::uuid[]) AS sold (hold_id, order_id) \
             WHERE event_seats.hold_id = sold.hold_id AND event_seats.hold_id = ANY($3::uuid[])",
            [
                SeatStatus::Sold.as_str().into(),
                now.into(),
                holds.into(),
                orders.into(),
            ],
        )
    } else {
        let pairs: Vec<ValueTuple> = holds
            .into_iter()
            .zip(orders)
            .map(|(hold, order)| ValueTuple::Two(hold.into(), order.into()))
            .collect();
        let sold = Alias::new("sold");
        let update = Query::update()
            .table(EventSeat)
            .value(event_seat::Column::Status, SeatStatus::Sold.as_str())
            .value(
                event_seat::Column::OrderId,
                Expr::col((sold.clone(), Alias::new("column2"))),
            )
            .value(event_seat::Column::HoldId, Option::<Uuid>::None)
            .value(
                event_seat::Column::Version,
                Expr::col((EventSeat, event_seat::Column::Version)).add(1),
            )
            .value(event_seat::Column::UpdatedAt, now)
            .from(TableRef::ValuesList(pairs, sold.clone().into()))
            .and_where(
                Expr::col((EventSeat, event_seat::Column::HoldId))
                    .equals((sold, Alias::new("column1"))),
            )
            .to_owned();
        DbBackend::Sqlite.build(&update)
    };
    update_seats_exactly(txn, update, expected, "sold").await
}

/// Runs a batch's seat update, which must touch exactly `expected` seats: any other count means a
/// seat changed under the batch, and the batch rolls back as CONFLICT.
pub(crate) async fn update_seats_exactly(
    txn: &impl ConnectionTrait,
    update: Statement,
    expected: u64,
    doing: &str,
) -> AppResult<()> {
    let updated = txn.execute_raw(update).await?.rows_affected();
    if updated != expected {
        return Err(AppError::Conflict(format!(
            "the seats changed while being {doing}; try again"
        )));
    }
    Ok(())
}

/// Marks locked, active holds converted, in the transaction that writes their orders.
pub(crate) async fn mark_converted(
    txn: &DatabaseTransaction,
    hold_ids: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    Hold::update_many()
        .col_expr(
            hold::Column::Status,
            Expr::value(HoldStatus::Converted.as_str()),
        )
        .col_expr(hold::Column::UpdatedAt, Expr::value(now))
        .filter(crate::db::any_of(txn, hold::Column::Id, hold_ids))
        .exec(txn)
        .await?;
    Ok(())
}

/// The order a paid, still-active hold becomes.
pub(crate) fn paid_order(
    hold: &hold::Model,
    total_cents: i64,
    currency: &str,
    payment_reference: &str,
    now: DateTime<Utc>,
) -> order::Model {
    order::Model {
        id: Uuid::now_v7(),
        user_id: hold.user_id,
        event_id: hold.event_id,
        hold_id: Some(hold.id),
        status: OrderStatus::Paid,
        total_cents,
        refunded_cents: 0,
        currency: currency.to_owned(),
        payment_reference: Some(payment_reference.to_owned()),
        created_at: now,
        updated_at: now,
        cancelled_at: None,
    }
}

/// A fresh valid ticket of `order`, for a seat or (with `seat_id` None) a general-admission unit.
pub(crate) fn valid_ticket(
    order: &order::Model,
    order_line_id: Uuid,
    tier_id: Uuid,
    seat_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> ticket::ActiveModel {
    ticket::ActiveModel {
        id: Set(Uuid::now_v7()),
        order_id: Set(order.id),
        order_line_id: Set(order_line_id),
        event_id: Set(order.event_id),
        tier_id: Set(tier_id),
        seat_id: Set(seat_id),
        status: Set(TicketStatus::Valid),
        nonce: Set(new_ticket_nonce()),
        checked_in_at: Set(None),
        checked_in_gate: Set(None),
        checked_in_by: Set(None),
        created_at: Set(now),
        cancelled_at: Set(None),
    }
}

/// Holds and pays for general-admission tickets in one call. A declined payment releases the hold at
/// once, so the tickets go straight back on sale.
pub async fn book_tickets(
    db: &DatabaseConnection,
    payments: &dyn PaymentProvider,
    policy: &HoldPolicy,
    buyer: Buyer,
    tier_id: Uuid,
    quantity: Quantity,
    payment_token: &str,
) -> AppResult<order::Model> {
    let user_id = buyer.user_id;
    let hold = hold_tickets(db, policy, buyer, tier_id, quantity).await?;
    let convert = async |conversion| convert_hold(db, &conversion).await;
    match checkout(db, payments, user_id, hold.id, payment_token, None, convert).await {
        Ok(order) => Ok(order),
        Err(err) => {
            let _ = crate::booking::sweeper::end_holds(
                db,
                &[hold.id],
                HoldStatus::Released,
                policy.waitlist_claim,
                Utc::now(),
            )
            .await;
            Err(err)
        }
    }
}

/// The viewer's active holds, newest first.
pub async fn active_holds(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<hold::Model>> {
    use sea_orm::QueryOrder;
    Ok(Hold::find()
        .filter(hold::Column::UserId.eq(user_id))
        .filter(hold_is_active())
        .order_by_desc(hold::Column::CreatedAt)
        .all(db)
        .await?)
}

/// The seats of each of `hold_ids` with their tiers, in row and seat order.
pub async fn seats_of_holds(
    db: &impl ConnectionTrait,
    hold_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<(seat::Model, Uuid)>>> {
    let held = EventSeat::find()
        .filter(crate::db::any_of(db, event_seat::Column::HoldId, hold_ids))
        .all(db)
        .await?;
    let seat_ids: Vec<Uuid> = held.iter().map(|row| row.seat_id).collect();
    let mut labels: HashMap<Uuid, seat::Model> = Seat::find()
        .filter(crate::db::any_of(db, seat::Column::Id, &seat_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|seat| (seat.id, seat))
        .collect();
    let mut by_hold: HashMap<Uuid, Vec<(seat::Model, Uuid)>> = HashMap::new();
    for row in held {
        if let (Some(hold_id), Some(seat)) = (row.hold_id, labels.remove(&row.seat_id)) {
            by_hold
                .entry(hold_id)
                .or_default()
                .push((seat, row.tier_id));
        }
    }
    for seats in by_hold.values_mut() {
        seats.sort_by(|(a, _), (b, _)| {
            (a.section_id, a.row_index, a.number).cmp(&(b.section_id, b.row_index, b.number))
        });
    }
    Ok(by_hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(price_cents: i64, currency: &str) -> ticket_tier::Model {
        ticket_tier::Model {
            id: Uuid::new_v4(),
            event_id: Uuid::nil(),
            name: "tier".into(),
            kind: TierKind::Reserved,
            price_cents,
            currency: currency.into(),
            capacity: 10,
            available: 10,
            sort_order: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_ga_hold_costs_its_tier_price_times_its_quantity() {
        let (cheap, dear) = (tier(2_500, "EUR"), tier(9_000, "EUR"));
        let tiers = [cheap.clone(), dear];
        let priced = price_hold(Some(cheap.id), 3, [], &tiers).expect("priced");
        assert_eq!(priced, (7_500, "EUR".to_owned()));
    }

    #[test]
    fn a_seat_hold_costs_the_sum_of_its_seats_tiers() {
        let (cheap, dear) = (tier(2_500, "EUR"), tier(9_000, "EUR"));
        let tiers = [cheap.clone(), dear.clone()];
        let priced = price_hold(None, 3, [cheap.id, dear.id, dear.id], &tiers).expect("priced");
        assert_eq!(priced.0, 20_500);
        assert_eq!(price_hold(None, 0, [], &tiers).expect("empty").0, 0);
    }

    #[test]
    fn a_seat_of_an_unknown_tier_is_not_priced() {
        let tiers = [tier(2_500, "EUR")];
        let missing = price_hold(None, 1, [Uuid::new_v4()], &tiers);
        assert!(matches!(missing, Err(AppError::NotFound("tier"))));
    }
}
