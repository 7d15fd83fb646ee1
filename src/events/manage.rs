//! Organizer operations on events: create, update, publish, cancel, delete, and tiers.
//!
//! Every function takes the acting [`Viewer`] and checks ownership itself (FORBIDDEN otherwise); the
//! GraphQL guards only check the role. Each runs in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::enums::{
    EventCategory, EventStatus, HoldStatus, OrderStatus, SeatStatus, SectionKind, TicketStatus,
    TierKind,
};
use entity::prelude::*;
use entity::{event, event_seat, event_section, hold, order, seat, section, ticket, ticket_tier};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::booking::service::free_seats;
use crate::error::{AppError, AppResult, ConstraintRule};
use crate::events::changelog;
use crate::notifications;

/// An event to create as a draft, with its tiers.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub venue_id: Uuid,
    pub organizer_id: Uuid,
    pub title: String,
    pub performer: String,
    pub category: EventCategory,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub sale_starts_at: DateTime<Utc>,
    pub waiting_room_required: bool,
    pub admission_rate_per_minute: i32,
    pub max_active_shoppers: i32,
    pub max_tickets_per_user: i32,
    pub tiers: Vec<NewTier>,
}

/// A tier and the sections it sells. A general-admission tier's capacity is its stock; a reserved
/// tier's capacity becomes its seat count when the event is published.
#[derive(Debug, Clone)]
pub struct NewTier {
    pub name: String,
    pub kind: TierKind,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i32,
    pub section_ids: Vec<Uuid>,
}

/// Changes to an event; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EventChanges {
    pub title: Option<String>,
    pub performer: Option<String>,
    pub category: Option<EventCategory>,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub waiting_room_required: Option<bool>,
    pub admission_rate_per_minute: Option<i32>,
    pub max_active_shoppers: Option<i32>,
    pub max_tickets_per_user: Option<i32>,
}

/// Changes to a tier; capacity applies to general-admission tiers only.
#[derive(Debug, Clone, Default)]
pub struct TierChanges {
    pub name: Option<String>,
    pub price_cents: Option<i64>,
    pub capacity: Option<i32>,
}

const TIER_NAME_TAKEN: ConstraintRule = ConstraintRule {
    name: "ticket_tiers_event_name_key",
    sqlite_columns: "ticket_tiers.event_id, ticket_tiers.name",
    error: || AppError::Conflict("the event already has a tier with this name".into()),
};

const SECTION_ALREADY_SOLD: ConstraintRule = ConstraintRule {
    name: "event_sections_pkey",
    sqlite_columns: "event_sections.event_id, event_sections.section_id",
    error: || AppError::Conflict("a section is already sold by another tier of this event".into()),
};

const CAPACITY_BELOW_SOLD: ConstraintRule = ConstraintRule {
    name: "ticket_tiers_available_within_capacity",
    sqlite_columns: "ticket_tiers_available_within_capacity",
    error: || AppError::Conflict("capacity cannot drop below what is sold or held".into()),
};

/// Loads an event the viewer manages (its organizer, or an admin).
pub async fn find_managed_event(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<event::Model> {
    let event = Event::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))?;
    viewer.ensure_owner(event.organizer_id, "event")?;
    Ok(event)
}

fn check_text(value: &str, field: &str, max_chars: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max_chars {
        return Err(AppError::bad_input(format!(
            "{field} must be 1 to {max_chars} characters"
        )));
    }
    Ok(value.to_owned())
}

fn check_schedule(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    sale_starts_at: DateTime<Utc>,
) -> AppResult<()> {
    if ends_at <= starts_at {
        return Err(AppError::bad_input("endsAt must be after startsAt"));
    }
    if sale_starts_at >= ends_at {
        return Err(AppError::bad_input("saleStartsAt must be before endsAt"));
    }
    Ok(())
}

fn check_limits(admission_rate: i32, max_active: i32, max_per_user: i32) -> AppResult<()> {
    if !(1..=100_000).contains(&admission_rate) {
        return Err(AppError::bad_input(
            "admissionRatePerMinute must be 1 to 100000",
        ));
    }
    if !(1..=1_000_000).contains(&max_active) {
        return Err(AppError::bad_input(
            "maxActiveShoppers must be 1 to 1000000",
        ));
    }
    if !(1..=100).contains(&max_per_user) {
        return Err(AppError::bad_input("maxTicketsPerUser must be 1 to 100"));
    }
    Ok(())
}

fn check_price(price_cents: i64, currency: &str) -> AppResult<()> {
    if !(0..=10_000_000).contains(&price_cents) {
        return Err(AppError::bad_input("priceCents must be 0 to 10000000"));
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AppError::bad_input(
            "currency must be a three-letter ISO 4217 code",
        ));
    }
    Ok(())
}

/// Checks a tier against the venue's sections and the sections other tiers already sell.
fn check_tier(
    tier: &NewTier,
    sections: &HashMap<Uuid, section::Model>,
    taken: &mut HashSet<Uuid>,
) -> AppResult<()> {
    check_text(&tier.name, "tier name", 100)?;
    check_price(tier.price_cents, &tier.currency)?;
    let wanted_kind = match tier.kind {
        TierKind::GeneralAdmission => SectionKind::GeneralAdmission,
        TierKind::Reserved => SectionKind::Reserved,
    };
    for section_id in &tier.section_ids {
        let section = sections.get(section_id).ok_or_else(|| {
            AppError::bad_input("sectionIds must be sections of the event's venue")
        })?;
        if section.kind != wanted_kind {
            return Err(AppError::bad_input(
                "reserved tiers sell reserved sections; general-admission tiers sell standing sections",
            ));
        }
        if !taken.insert(*section_id) {
            return Err(AppError::bad_input(
                "a section can be sold by one tier only",
            ));
        }
    }
    match tier.kind {
        TierKind::GeneralAdmission => {
            if !(1..=1_000_000).contains(&tier.capacity) {
                return Err(AppError::bad_input(
                    "a general-admission tier needs a capacity of 1 to 1000000",
                ));
            }
            let standing: i64 = tier
                .section_ids
                .iter()
                .filter_map(|id| sections.get(id))
                .map(|s| i64::from(s.capacity))
                .sum();
            if !tier.section_ids.is_empty() && i64::from(tier.capacity) > standing {
                return Err(AppError::bad_input(
                    "capacity exceeds the standing room of the tier's sections",
                ));
            }
        }
        TierKind::Reserved => {
            if tier.section_ids.is_empty() {
                return Err(AppError::bad_input(
                    "a reserved tier needs at least one reserved section",
                ));
            }
        }
    }
    Ok(())
}

async fn venue_sections(
    db: &impl ConnectionTrait,
    venue_id: Uuid,
) -> AppResult<HashMap<Uuid, section::Model>> {
    Ok(Section::find()
        .filter(section::Column::VenueId.eq(venue_id))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect())
}

async fn sold_sections(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<HashSet<Uuid>> {
    Ok(EventSection::find()
        .filter(event_section::Column::EventId.eq(event_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.section_id)
        .collect())
}

/// Creates a draft event with its tiers and section mappings. Runs in the caller's transaction.
pub async fn create_event(
    db: &impl ConnectionTrait,
    new: NewEvent,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    let title = check_text(&new.title, "title", 200)?;
    let performer = check_text(&new.performer, "performer", 200)?;
    if new.description.chars().count() > 5000 {
        return Err(AppError::bad_input(
            "description must be at most 5000 characters",
        ));
    }
    check_schedule(new.starts_at, new.ends_at, new.sale_starts_at)?;
    check_limits(
        new.admission_rate_per_minute,
        new.max_active_shoppers,
        new.max_tickets_per_user,
    )?;
    Venue::find_by_id(new.venue_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("venue"))?;
    let sections = venue_sections(db, new.venue_id).await?;
    let mut taken = HashSet::new();
    let mut names = HashSet::new();
    for tier in &new.tiers {
        check_tier(tier, &sections, &mut taken)?;
        if !names.insert(tier.name.trim().to_lowercase()) {
            return Err(AppError::bad_input(
                "tier names must be unique within the event",
            ));
        }
    }
    let event = event::ActiveModel {
        id: Set(Uuid::now_v7()),
        venue_id: Set(new.venue_id),
        organizer_id: Set(new.organizer_id),
        title: Set(title),
        performer: Set(performer),
        category: Set(new.category),
        description: Set(new.description),
        starts_at: Set(new.starts_at),
        ends_at: Set(new.ends_at),
        sale_starts_at: Set(new.sale_starts_at),
        status: Set(EventStatus::Draft),
        waiting_room_required: Set(new.waiting_room_required),
        admission_rate_per_minute: Set(new.admission_rate_per_minute),
        max_active_shoppers: Set(new.max_active_shoppers),
        max_tickets_per_user: Set(new.max_tickets_per_user),
        published_at: Set(None),
        cancelled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    changelog::start(db, event.id).await?;
    for (sort_order, tier) in new.tiers.into_iter().enumerate() {
        insert_tier(db, event.id, tier, sort_order as i32, now).await?;
    }
    Ok(event)
}

async fn insert_tier(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    tier: NewTier,
    sort_order: i32,
    now: DateTime<Utc>,
) -> AppResult<ticket_tier::Model> {
    let capacity = match tier.kind {
        TierKind::GeneralAdmission => tier.capacity,
        // A reserved tier's stock is its seats, counted when its inventory is created.
        TierKind::Reserved => 0,
    };
    let model = ticket_tier::ActiveModel {
        id: Set(Uuid::now_v7()),
        event_id: Set(event_id),
        name: Set(tier.name.trim().to_owned()),
        kind: Set(tier.kind),
        price_cents: Set(tier.price_cents),
        currency: Set(tier.currency),
        capacity: Set(capacity),
        available: Set(capacity),
        sort_order: Set(sort_order),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|err| AppError::on_constraint(err, &[TIER_NAME_TAKEN]))?;
    for section_id in tier.section_ids {
        EventSection::insert(event_section::ActiveModel {
            event_id: Set(event_id),
            section_id: Set(section_id),
            tier_id: Set(model.id),
        })
        .exec_without_returning(db)
        .await
        .map_err(|err| AppError::on_constraint(err, &[SECTION_ALREADY_SOLD]))?;
    }
    Ok(model)
}

/// Creates the per-seat inventory of `tier`: one `event_seats` row for every seat of its reserved
/// sections, and sets the tier's capacity and availability to that seat count.
async fn create_tier_inventory(
    db: &impl ConnectionTrait,
    tier: ticket_tier::Model,
    now: DateTime<Utc>,
) -> AppResult<Vec<(Uuid, SeatStatus, Uuid)>> {
    if tier.kind != TierKind::Reserved {
        return Ok(Vec::new());
    }
    let section_ids: Vec<Uuid> = EventSection::find()
        .filter(event_section::Column::TierId.eq(tier.id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.section_id)
        .collect();
    let seats = Seat::find()
        .filter(seat::Column::SectionId.is_in(section_ids))
        .all(db)
        .await?;
    let rows: Vec<event_seat::ActiveModel> = seats
        .iter()
        .map(|seat| event_seat::ActiveModel {
            event_id: Set(tier.event_id),
            seat_id: Set(seat.id),
            section_id: Set(seat.section_id),
            tier_id: Set(tier.id),
            status: Set(SeatStatus::Available),
            hold_id: Set(None),
            order_id: Set(None),
            version: Set(0),
            updated_at: Set(now),
        })
        .collect();
    // Bounded batches keep every INSERT under SQLite's bound-parameter limit.
    for chunk in rows.chunks(2000) {
        EventSeat::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    let created: Vec<(Uuid, SeatStatus, Uuid)> = seats
        .iter()
        .map(|seat| (seat.id, SeatStatus::Available, tier.id))
        .collect();
    let seat_count =
        i32::try_from(rows.len()).map_err(|_| AppError::bad_input("a tier has too many seats"))?;
    let mut active: ticket_tier::ActiveModel = tier.into();
    active.capacity = Set(seat_count);
    active.available = Set(seat_count);
    active.updated_at = Set(now);
    active.update(db).await?;
    Ok(created)
}

/// Puts a draft on sale: creates its seat inventory and flips the status in the caller's transaction.
pub async fn publish_event(
    db: &impl ConnectionTrait,
    event: event::Model,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    if event.status != EventStatus::Draft {
        return Err(AppError::Conflict(
            "only a draft event can be published".into(),
        ));
    }
    let tiers = TicketTier::find()
        .filter(ticket_tier::Column::EventId.eq(event.id))
        .all(db)
        .await?;
    if tiers.is_empty() {
        return Err(AppError::bad_input(
            "add at least one ticket tier before publishing",
        ));
    }
    for tier in tiers {
        create_tier_inventory(db, tier, now).await?;
    }
    // The public had no map before: subscribers start from a snapshot, so only the number moves.
    changelog::record(db, event.id, &[], now).await?;
    let mut active: event::ActiveModel = event.into();
    active.status = Set(EventStatus::OnSale);
    active.published_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// Publishes an event the viewer manages.
pub async fn publish_managed_event(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<event::Model> {
    let txn = db.begin().await?;
    let event = find_managed_event(&txn, viewer, id).await?;
    let published = publish_event(&txn, event, Utc::now()).await?;
    txn.commit().await?;
    Ok(published)
}

/// Applies changes to an event that is not cancelled.
pub async fn update_event(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    changes: EventChanges,
) -> AppResult<event::Model> {
    let txn = db.begin().await?;
    let event = find_managed_event(&txn, viewer, id).await?;
    if event.status == EventStatus::Cancelled {
        return Err(AppError::Conflict(
            "a cancelled event cannot be changed".into(),
        ));
    }
    let starts_at = changes.starts_at.unwrap_or(event.starts_at);
    let ends_at = changes.ends_at.unwrap_or(event.ends_at);
    let sale_starts_at = changes.sale_starts_at.unwrap_or(event.sale_starts_at);
    check_schedule(starts_at, ends_at, sale_starts_at)?;
    check_limits(
        changes
            .admission_rate_per_minute
            .unwrap_or(event.admission_rate_per_minute),
        changes
            .max_active_shoppers
            .unwrap_or(event.max_active_shoppers),
        changes
            .max_tickets_per_user
            .unwrap_or(event.max_tickets_per_user),
    )?;
    let mut active: event::ActiveModel = event.into();
    if let Some(title) = changes.title {
        active.title = Set(check_text(&title, "title", 200)?);
    }
    if let Some(performer) = changes.performer {
        active.performer = Set(check_text(&performer, "performer", 200)?);
    }
    if let Some(description) = changes.description {
        if description.chars().count() > 5000 {
            return Err(AppError::bad_input(
                "description must be at most 5000 characters",
            ));
        }
        active.description = Set(description);
    }
    if let Some(category) = changes.category {
        active.category = Set(category);
    }
    active.starts_at = Set(starts_at);
    active.ends_at = Set(ends_at);
    active.sale_starts_at = Set(sale_starts_at);
    if let Some(value) = changes.waiting_room_required {
        active.waiting_room_required = Set(value);
    }
    if let Some(value) = changes.admission_rate_per_minute {
        active.admission_rate_per_minute = Set(value);
    }
    if let Some(value) = changes.max_active_shoppers {
        active.max_active_shoppers = Set(value);
    }
    if let Some(value) = changes.max_tickets_per_user {
        active.max_tickets_per_user = Set(value);
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// What cancelling an event did, for refunds after the commit.
pub struct Cancellation {
    pub event: event::Model,
    /// Paid orders that were cancelled and now need refunds.
    pub cancelled_orders: Vec<order::Model>,
    /// Holds that were live and are now released.
    pub released_holds: Vec<hold::Model>,
}

/// Cancels an event: releases every active hold, cancels every paid order and its tickets, frees their
/// stock, and notifies each buyer, all in one transaction. Refunds happen after the commit (see
/// `orders::refund_cancelled_orders`) so no lock is held while the payment provider is called.
pub async fn cancel_event(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    reason: Option<String>,
) -> AppResult<Cancellation> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let event = find_managed_event(&txn, viewer, id).await?;
    if event.status == EventStatus::Cancelled {
        return Err(AppError::Conflict("the event is already cancelled".into()));
    }
    // Lock order matches booking (event row, then inventory) so cancellation cannot deadlock with it.
    lock_event(&txn, event.id).await?;

    let released_holds = Hold::update_many()
        .col_expr(
            hold::Column::Status,
            Expr::value(HoldStatus::Released.as_str()),
        )
        .col_expr(hold::Column::UpdatedAt, Expr::value(now))
        .filter(hold::Column::EventId.eq(event.id))
        .filter(crate::booking::service::hold_is_active())
        .exec_with_returning(&txn)
        .await?;
    let cancelled_orders = Order::find()
        .filter(order::Column::EventId.eq(event.id))
        .filter(order::Column::Status.eq(OrderStatus::Paid))
        .all(&txn)
        .await?;
    Order::update_many()
        .col_expr(
            order::Column::Status,
            Expr::value(OrderStatus::Cancelled.as_str()),
        )
        .col_expr(order::Column::CancelledAt, Expr::value(now))
        .col_expr(order::Column::UpdatedAt, Expr::value(now))
        .filter(order::Column::EventId.eq(event.id))
        .filter(order::Column::Status.eq(OrderStatus::Paid))
        .exec(&txn)
        .await?;
    Ticket::update_many()
        .col_expr(
            ticket::Column::Status,
            Expr::value(TicketStatus::Cancelled.as_str()),
        )
        .col_expr(ticket::Column::CancelledAt, Expr::value(now))
        .filter(ticket::Column::EventId.eq(event.id))
        .filter(ticket::Column::Status.eq(TicketStatus::Valid))
        .exec(&txn)
        .await?;
    // Nothing can be bought any more, but the books still balance: all stock returns to available.
    let freed: Vec<(Uuid, SeatStatus, Uuid)> = EventSeat::find()
        .filter(event_seat::Column::EventId.eq(event.id))
        .filter(event_seat::Column::Status.ne(SeatStatus::Available))
        .all(&txn)
        .await?
        .into_iter()
        .map(|seat| (seat.seat_id, SeatStatus::Available, seat.tier_id))
        .collect();
    free_seats(
        &txn,
        Condition::all()
            .add(event_seat::Column::EventId.eq(event.id))
            .add(event_seat::Column::Status.ne(SeatStatus::Available)),
        now,
    )
    .await?;
    TicketTier::update_many()
        .col_expr(
            ticket_tier::Column::Available,
            Expr::col(ticket_tier::Column::Capacity),
        )
        .col_expr(ticket_tier::Column::UpdatedAt, Expr::value(now))
        .filter(ticket_tier::Column::EventId.eq(event.id))
        .exec(&txn)
        .await?;
    crate::waitlist::service::cancel_for_event(&txn, &event, now).await?;
    changelog::record(&txn, event.id, &freed, now).await?;

    let buyers: HashSet<Uuid> = cancelled_orders.iter().map(|o| o.user_id).collect();
    let body = match reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => format!(
            "{} is cancelled: {reason}. Your order will be refunded in full.",
            event.title
        ),
        None => format!(
            "{} is cancelled. Your order will be refunded in full.",
            event.title
        ),
    };
    for user_id in buyers {
        notifications::service::notify(
            &txn,
            user_id,
            "event_cancelled",
            "Event cancelled",
            &body,
            serde_json::json!({ "eventId": event.id }),
            now,
        )
        .await?;
    }

    let mut active: event::ActiveModel = event.into();
    active.status = Set(EventStatus::Cancelled);
    active.cancelled_at = Set(Some(now));
    active.updated_at = Set(now);
    let event = active.update(&txn).await?;
    txn.commit().await?;
    Ok(Cancellation {
        event,
        cancelled_orders,
        released_holds,
    })
}

/// Takes the event row lock on PostgreSQL (SQLite serialises writers anyway).
async fn lock_event(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<()> {
    if crate::db::is_postgres(db) {
        use sea_orm::QuerySelect;
        Event::find_by_id(event_id).lock_exclusive().one(db).await?;
    }
    Ok(())
}

/// Deletes an event on which nothing was ever sold.
pub async fn delete_event(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<()> {
    let txn = db.begin().await?;
    let event = find_managed_event(&txn, viewer, id).await?;
    lock_event(&txn, event.id).await?;
    let orders = Order::find()
        .filter(order::Column::EventId.eq(event.id))
        .count(&txn)
        .await?;
    if orders > 0 {
        return Err(AppError::Conflict(
            "tickets were sold for this event: cancel it instead of deleting it".into(),
        ));
    }
    Event::delete_by_id(event.id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Adds a tier to an event that is not cancelled. On a published event, a reserved tier gets its seat
/// inventory at once.
pub async fn create_tier(
    db: &DatabaseConnection,
    viewer: &Viewer,
    event_id: Uuid,
    tier: NewTier,
) -> AppResult<ticket_tier::Model> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let event = find_managed_event(&txn, viewer, event_id).await?;
    if event.status == EventStatus::Cancelled {
        return Err(AppError::Conflict(
            "a cancelled event cannot get new tiers".into(),
        ));
    }
    let sections = venue_sections(&txn, event.venue_id).await?;
    let mut taken = sold_sections(&txn, event.id).await?;
    check_tier(&tier, &sections, &mut taken)?;
    let sort_order = TicketTier::find()
        .filter(ticket_tier::Column::EventId.eq(event.id))
        .count(&txn)
        .await? as i32;
    let created = insert_tier(&txn, event.id, tier, sort_order, now).await?;
    let created = if event.status == EventStatus::OnSale {
        let id = created.id;
        let seats = create_tier_inventory(&txn, created, now).await?;
        changelog::record(&txn, event.id, &seats, now).await?;
        TicketTier::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("tier"))?
    } else {
        created
    };
    txn.commit().await?;
    Ok(created)
}

/// Renames, reprices or resizes a tier. Capacity (general admission only) can never drop below what
/// is sold or held: a conditional update checks it atomically against concurrent bookings, and the
/// tier's CHECK constraint is the last guard. Added capacity goes to the tier's waitlist first.
pub async fn update_tier(
    db: &DatabaseConnection,
    claim_window: chrono::Duration,
    viewer: &Viewer,
    tier_id: Uuid,
    changes: TierChanges,
) -> AppResult<ticket_tier::Model> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let tier = TicketTier::find_by_id(tier_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("tier"))?;
    let event = find_managed_event(&txn, viewer, tier.event_id).await?;
    if event.status == EventStatus::Cancelled {
        return Err(AppError::Conflict(
            "a cancelled event cannot be changed".into(),
        ));
    }
    if let Some(price_cents) = changes.price_cents {
        check_price(price_cents, &tier.currency)?;
    }
    let name = changes
        .name
        .as_deref()
        .map(|name| check_text(name, "tier name", 100))
        .transpose()?;
    if let Some(capacity) = changes.capacity {
        if tier.kind != TierKind::GeneralAdmission {
            return Err(AppError::bad_input(
                "a reserved tier's capacity is its seats; change its sections instead",
            ));
        }
        if !(1..=1_000_000).contains(&capacity) {
            return Err(AppError::bad_input("capacity must be 1 to 1000000"));
        }
        // available moves by the same amount as capacity; sold + held (capacity - available) stays.
        let resized = TicketTier::update_many()
            .col_expr(
                ticket_tier::Column::Available,
                Expr::col(ticket_tier::Column::Available)
                    .add(capacity)
                    .sub(Expr::col(ticket_tier::Column::Capacity)),
            )
            .col_expr(ticket_tier::Column::Capacity, Expr::value(capacity))
            .filter(ticket_tier::Column::Id.eq(tier.id))
            .filter(
                Expr::col(ticket_tier::Column::Capacity)
                    .sub(Expr::col(ticket_tier::Column::Available))
                    .lte(capacity),
            )
            .exec(&txn)
            .await
            .map_err(|err| AppError::on_constraint(err, &[CAPACITY_BELOW_SOLD]))?;
        if resized.rows_affected == 0 {
            return Err((CAPACITY_BELOW_SOLD.error)());
        }
        if event.status == EventStatus::OnSale {
            crate::waitlist::promotion::offer_freed_stock(
                &txn,
                event.id,
                &std::collections::BTreeSet::from([tier.id]),
                &[],
                claim_window,
                now,
            )
            .await?;
        }
        changelog::record(&txn, event.id, &[], now).await?;
    }
    let tier = TicketTier::find_by_id(tier.id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("tier"))?;
    let mut active: ticket_tier::ActiveModel = tier.into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(price_cents) = changes.price_cents {
        active.price_cents = Set(price_cents);
    }
    active.updated_at = Set(now);
    let updated = active
        .update(&txn)
        .await
        .map_err(|err| AppError::on_constraint(err, &[TIER_NAME_TAKEN]))?;
    txn.commit().await?;
    Ok(updated)
}

/// Creates a draft event in a transaction of its own.
pub async fn create_event_in_transaction(
    db: &DatabaseConnection,
    new: NewEvent,
) -> AppResult<event::Model> {
    let txn = db.begin().await?;
    let event = create_event(&txn, new, Utc::now()).await?;
    txn.commit().await?;
    Ok(event)
}
