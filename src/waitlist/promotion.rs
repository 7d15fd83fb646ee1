//! Handing freed stock to the waitlist.
//!
//! Promotion runs inside the transaction that frees the stock (a hold ending, tickets cancelled), after
//! the seats and tiers are locked and counted back: the freed stock becomes offers before any other
//! buyer can see it, and because stock is freed exactly once it is offered exactly once, however many
//! instances run. A periodic pass ([`promote_waiting`]) covers stock that was free when an entry joined.
//!
//! Policy, first fit in order: entries are served oldest first; an entry asking for more than is free
//! keeps its place and is passed over this time, so smaller entries behind it are served. Offers are
//! never partial. Lock order: seats, then tiers (both already locked by the caller), then entries.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use entity::enums::{HoldSource, HoldStatus, SeatStatus, TierKind, WaitlistStatus};
use entity::prelude::*;
use entity::{event_seat, hold, seat, ticket_tier, waitlist_entry};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::booking::best_available::{self, Candidate};
use crate::booking::service::{ONE_ACTIVE_HOLD, adjust_tiers, hold_seat_rows};
use crate::db::is_postgres;
use crate::error::{AppError, AppResult};
use crate::events::changelog;
use crate::notifications::service as notifications;

/// What a promotion did in the caller's transaction. The offers themselves are announced to their
/// buyers after commit by `service::announce_offers`, whoever made them.
#[derive(Debug, Default)]
pub struct Promotion {
    /// Entries offered a hold.
    pub offered: usize,
    /// Freed seats that went straight into offers: (seat, tier), now held.
    pub seats_held: Vec<(Uuid, Uuid)>,
}

impl Promotion {
    /// Where a seat freed in the same transaction ended up: held by an offer, or available.
    pub fn status_of_freed(&self, seat_id: Uuid) -> SeatStatus {
        if self.seats_held.iter().any(|(held, _)| *held == seat_id) {
            SeatStatus::Held
        } else {
            SeatStatus::Available
        }
    }
}

/// The stock an entry can be served from.
struct Supply {
    /// General-admission units free per tier.
    units: BTreeMap<Uuid, i32>,
    /// Free, locked seats.
    seats: Vec<event_seat::Model>,
    /// (row index, number) of each seat, so an offer of several seats keeps them together.
    places: HashMap<Uuid, (i32, i32)>,
}

/// Offers the stock free in the caller's transaction to the event's waiting entries: all free units of
/// the general-admission `tiers` (their rows are locked by the caller) and the locked, free
/// `seat_ids`.
pub async fn offer_freed_stock(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    tiers: &BTreeSet<Uuid>,
    seat_ids: &[Uuid],
    claim_window: Duration,
    now: DateTime<Utc>,
) -> AppResult<Promotion> {
    if tiers.is_empty() && seat_ids.is_empty() {
        return Ok(Promotion::default());
    }
    let seats = if seat_ids.is_empty() {
        Vec::new()
    } else {
        EventSeat::find()
            .filter(event_seat::Column::EventId.eq(event_id))
            .filter(event_seat::Column::SeatId.is_in(seat_ids.iter().copied()))
            .filter(event_seat::Column::Status.eq(SeatStatus::Available))
            .order_by_asc(event_seat::Column::SeatId)
            .all(txn)
            .await?
    };
    let units: BTreeMap<Uuid, i32> = if tiers.is_empty() {
        BTreeMap::new()
    } else {
        TicketTier::find()
            .filter(ticket_tier::Column::Id.is_in(tiers.iter().copied()))
            .filter(ticket_tier::Column::Kind.eq(TierKind::GeneralAdmission))
            .all(txn)
            .await?
            .into_iter()
            .map(|tier| (tier.id, tier.available))
            .collect()
    };
    let places = places_of(txn, &seats).await?;
    promote(
        txn,
        event_id,
        Supply {
            units,
            seats,
            places,
        },
        claim_window,
        now,
    )
    .await
}

async fn places_of(
    db: &impl ConnectionTrait,
    seats: &[event_seat::Model],
) -> AppResult<HashMap<Uuid, (i32, i32)>> {
    if seats.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(Seat::find()
        .filter(seat::Column::Id.is_in(seats.iter().map(|s| s.seat_id)))
        .select_only()
        .column(seat::Column::Id)
        .column(seat::Column::RowIndex)
        .column(seat::Column::Number)
        .into_tuple::<(Uuid, i32, i32)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, row, number)| (id, (row, number)))
        .collect())
}

async fn promote(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    mut supply: Supply,
    claim_window: Duration,
    now: DateTime<Utc>,
) -> AppResult<Promotion> {
    let mut promotion = Promotion::default();
    let tier_targets: BTreeSet<Uuid> = supply
        .units
        .iter()
        .filter(|(_, free)| **free > 0)
        .map(|(tier, _)| *tier)
        .chain(supply.seats.iter().map(|seat| seat.tier_id))
        .collect();
    let section_targets: BTreeSet<Uuid> = supply.seats.iter().map(|s| s.section_id).collect();
    if tier_targets.is_empty() && section_targets.is_empty() {
        return Ok(promotion);
    }
    let mut query = WaitlistEntry::find()
        .filter(waitlist_entry::Column::EventId.eq(event_id))
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Waiting))
        .filter(
            Condition::any()
                .add(waitlist_entry::Column::TierId.is_in(tier_targets))
                .add(waitlist_entry::Column::SectionId.is_in(section_targets)),
        )
        .order_by_asc(waitlist_entry::Column::CreatedAt)
        .order_by_asc(waitlist_entry::Column::Id);
    if is_postgres(txn) {
        query = query.lock_exclusive();
    }
    let entries = query.all(txn).await?;
    if entries.is_empty() {
        return Ok(promotion);
    }
    // One live hold per buyer per event: someone shopping right now is passed over this time.
    let busy: HashSet<Uuid> = Hold::find()
        .filter(hold::Column::EventId.eq(event_id))
        .filter(crate::booking::service::hold_is_active())
        .filter(hold::Column::UserId.is_in(entries.iter().map(|e| e.user_id)))
        .all(txn)
        .await?
        .into_iter()
        .map(|h| h.user_id)
        .collect();
    let mut served: HashSet<Uuid> = HashSet::new();
    for entry in entries {
        if busy.contains(&entry.user_id) || served.contains(&entry.user_id) {
            continue;
        }
        let Some(stock) = take_stock(&mut supply, &entry) else {
            continue;
        };
        let expires_at = now + claim_window;
        let offer_hold = hold::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(entry.user_id),
            event_id: Set(event_id),
            tier_id: Set(match &stock {
                Stock::Units { tier, .. } => Some(*tier),
                Stock::Seats(_) => None,
            }),
            quantity: Set(entry.quantity),
            status: Set(HoldStatus::Active),
            source: Set(HoldSource::Waitlist),
            expires_at: Set(expires_at),
            max_expires_at: Set(expires_at),
            expiry_warned_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // A hold the buyer made a moment ago (after `busy` was read) would collide with the offer on
        // the one-active-hold index: the savepoint keeps that from failing the freeing transaction.
        let savepoint = txn.begin().await?;
        let offer_hold = match offer_hold.insert(&savepoint).await {
            Ok(offer_hold) => offer_hold,
            Err(err) => match AppError::on_constraint(err, &[ONE_ACTIVE_HOLD]) {
                AppError::Conflict(_) => {
                    savepoint.rollback().await?;
                    give_back(&mut supply, stock);
                    continue;
                }
                other => return Err(other),
            },
        };
        savepoint.commit().await?;
        take_for_hold(txn, &stock, &offer_hold, now).await?;
        if let Stock::Seats(seats) = &stock {
            promotion
                .seats_held
                .extend(seats.iter().map(|s| (s.seat_id, s.tier_id)));
        }
        let mut offered: waitlist_entry::ActiveModel = entry.clone().into();
        offered.status = Set(WaitlistStatus::Offered);
        offered.offered_hold_id = Set(Some(offer_hold.id));
        offered.offer_expires_at = Set(Some(expires_at));
        offered.updated_at = Set(now);
        offered.update(txn).await?;
        notifications::notify(
            txn,
            entry.user_id,
            "waitlist_offer",
            "Tickets are waiting for you",
            &format!(
                "{} ticket{} from the waitlist are held for you until {}. Check out to claim them.",
                entry.quantity,
                if entry.quantity == 1 { "" } else { "s" },
                expires_at.format("%H:%M UTC")
            ),
            serde_json::json!({
                "entryId": entry.id,
                "holdId": offer_hold.id,
                "eventId": event_id,
                "expiresAt": expires_at,
            }),
            now,
        )
        .await?;
        served.insert(entry.user_id);
        promotion.offered += 1;
    }
    Ok(promotion)
}

/// Stock set aside for one entry.
enum Stock {
    Units { tier: Uuid, quantity: i32 },
    Seats(Vec<event_seat::Model>),
}

/// Sets aside what `entry` asks for, if the supply has it all.
fn take_stock(supply: &mut Supply, entry: &waitlist_entry::Model) -> Option<Stock> {
    let wanted = usize::try_from(entry.quantity).ok()?;
    if let Some(tier) = entry.tier_id
        && let Some(free) = supply.units.get_mut(&tier)
    {
        if *free < entry.quantity {
            return None;
        }
        *free -= entry.quantity;
        return Some(Stock::Units {
            tier,
            quantity: entry.quantity,
        });
    }
    let fits = |seat: &event_seat::Model| {
        entry.tier_id.is_some_and(|tier| seat.tier_id == tier)
            || entry
                .section_id
                .is_some_and(|section| seat.section_id == section)
    };
    let candidates: Vec<Candidate> = supply
        .seats
        .iter()
        .filter(|seat| fits(seat))
        .map(|seat| {
            let (row_index, number) = supply
                .places
                .get(&seat.seat_id)
                .copied()
                .unwrap_or_default();
            Candidate {
                seat_id: seat.seat_id,
                section_rank: 0,
                section_id: seat.section_id,
                row_index,
                number,
            }
        })
        .collect();
    let chosen: HashSet<Uuid> =
        best_available::choose(&candidates, wanted, false, 1, &mut rand::rng())?
            .into_iter()
            .collect();
    let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut supply.seats)
        .into_iter()
        .partition(|seat| chosen.contains(&seat.seat_id));
    supply.seats = rest;
    Some(Stock::Seats(taken))
}

fn give_back(supply: &mut Supply, stock: Stock) {
    match stock {
        Stock::Units { tier, quantity } => {
            *supply.units.entry(tier).or_default() += quantity;
        }
        Stock::Seats(seats) => supply.seats.extend(seats),
    }
}

/// Moves the set-aside stock into the offer hold: GA units off the tier, seats held.
async fn take_for_hold(
    txn: &DatabaseTransaction,
    stock: &Stock,
    offer: &hold::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    match stock {
        Stock::Units { tier, quantity } => {
            adjust_tiers(txn, &BTreeMap::from([(*tier, *quantity)]), -1, now).await
        }
        Stock::Seats(seats) => {
            let rows: Vec<(Uuid, Uuid)> = seats.iter().map(|s| (s.seat_id, s.tier_id)).collect();
            hold_seat_rows(txn, offer.event_id, offer.id, &rows, now).await
        }
    }
}

/// How many events one pass of [`promote_waiting`] looks at.
const EVENTS_PER_PASS: u64 = 100;
/// How many free seats of one event one pass offers at most.
const SEATS_PER_PASS: u64 = 500;

/// Offers stock that is free while entries wait for it: stock that was already free when they joined,
/// or added by a capacity increase; returns the events whose stock moved. Run by the sweeper; one transaction per event, with the seats
/// locked (skipping any another transaction holds) before the tiers, as everywhere.
pub async fn promote_waiting(
    db: &DatabaseConnection,
    claim_window: Duration,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let events: Vec<Uuid> = WaitlistEntry::find()
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Waiting))
        .select_only()
        .column(waitlist_entry::Column::EventId)
        .distinct()
        .limit(EVENTS_PER_PASS)
        .into_tuple()
        .all(db)
        .await?;
    let mut promoted = Vec::new();
    for event_id in events {
        if promote_event(db, event_id, claim_window, now).await? {
            promoted.push(event_id);
        }
    }
    Ok(promoted)
}

async fn promote_event(
    db: &DatabaseConnection,
    event_id: Uuid,
    claim_window: Duration,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let waiting: Vec<(Option<Uuid>, Option<Uuid>)> = WaitlistEntry::find()
        .filter(waitlist_entry::Column::EventId.eq(event_id))
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Waiting))
        .select_only()
        .column(waitlist_entry::Column::TierId)
        .column(waitlist_entry::Column::SectionId)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let tiers: BTreeSet<Uuid> = waiting.iter().filter_map(|(tier, _)| *tier).collect();
    let sections: BTreeSet<Uuid> = waiting.iter().filter_map(|(_, section)| *section).collect();

    let txn = db.begin().await?;
    let postgres = is_postgres(&txn);
    let mut seats = EventSeat::find()
        .filter(event_seat::Column::EventId.eq(event_id))
        .filter(crate::booking::service::seat_is_free())
        .filter(
            Condition::any()
                .add(event_seat::Column::TierId.is_in(tiers.iter().copied()))
                .add(event_seat::Column::SectionId.is_in(sections.iter().copied())),
        )
        .order_by_asc(event_seat::Column::SeatId)
        .limit(SEATS_PER_PASS);
    if postgres {
        seats = seats.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let seat_ids: Vec<Uuid> = seats.all(&txn).await?.iter().map(|s| s.seat_id).collect();
    let mut ga_tiers = TicketTier::find()
        .filter(ticket_tier::Column::Id.is_in(tiers.iter().copied()))
        .filter(ticket_tier::Column::Kind.eq(TierKind::GeneralAdmission))
        .filter(ticket_tier::Column::Available.gt(0))
        .order_by_asc(ticket_tier::Column::Id);
    if postgres {
        // Not `FOR UPDATE`: that would also wait for every booking inserting rows that point at the tier.
        ga_tiers = ga_tiers.lock(LockType::NoKeyUpdate);
    }
    let ga_tiers: BTreeSet<Uuid> = ga_tiers.all(&txn).await?.iter().map(|t| t.id).collect();
    let promotion =
        offer_freed_stock(&txn, event_id, &ga_tiers, &seat_ids, claim_window, now).await?;
    if promotion.offered == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let held: Vec<(Uuid, SeatStatus, Uuid)> = promotion
        .seats_held
        .iter()
        .map(|(seat, tier)| (*seat, SeatStatus::Held, *tier))
        .collect();
    changelog::record(&txn, event_id, &held, now).await?;
    txn.commit().await?;
    Ok(true)
}
