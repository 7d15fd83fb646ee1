use chrono::{DateTime, Utc};
use entity::enums::{EventCategory, EventStatus, SeatStatus, SectionKind, TierKind};
use entity::prelude::*;
use entity::{event, event_seat, event_section, seat, ticket_tier};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::gql::Cursor;

/// Filters of the public event listing. Empty filters match everything that is published.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub category: Option<EventCategory>,
    pub starts_after: Option<DateTime<Utc>>,
    pub starts_before: Option<DateTime<Utc>>,
    pub venue_id: Option<Uuid>,
    /// Case-insensitive text matched against title and performer.
    pub text: Option<String>,
    pub statuses: Vec<EventStatus>,
}

/// The statuses the public may see.
pub const PUBLIC_STATUSES: [EventStatus; 2] = [EventStatus::OnSale, EventStatus::Cancelled];

/// Published events matching `filter`, ordered by start time, `limit` of them after `after`.
pub async fn list_events(
    db: &impl ConnectionTrait,
    filter: &EventFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> AppResult<Vec<event::Model>> {
    let statuses: Vec<EventStatus> = if filter.statuses.is_empty() {
        PUBLIC_STATUSES.to_vec()
    } else {
        filter
            .statuses
            .iter()
            .copied()
            .filter(|status| PUBLIC_STATUSES.contains(status))
            .collect()
    };
    let mut condition = Condition::all().add(event::Column::Status.is_in(statuses));
    if let Some(category) = filter.category {
        condition = condition.add(event::Column::Category.eq(category));
    }
    if let Some(from) = filter.starts_after {
        condition = condition.add(event::Column::StartsAt.gte(from));
    }
    if let Some(to) = filter.starts_before {
        condition = condition.add(event::Column::StartsAt.lt(to));
    }
    if let Some(venue_id) = filter.venue_id {
        condition = condition.add(event::Column::VenueId.eq(venue_id));
    }
    if let Some(text) = filter.text.as_deref() {
        let pattern = like_pattern(text);
        condition = condition.add(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(event::Column::Title))).like(pattern.clone()))
                .add(Expr::expr(Func::lower(Expr::col(event::Column::Performer))).like(pattern)),
        );
    }
    if let Some(cursor) = after {
        let starts_at = DateTime::parse_from_rfc3339(&cursor.key)
            .map_err(|_| AppError::bad_input("after is not a valid cursor"))?
            .with_timezone(&Utc);
        condition = condition.add(
            Condition::any()
                .add(event::Column::StartsAt.gt(starts_at))
                .add(
                    Condition::all()
                        .add(event::Column::StartsAt.eq(starts_at))
                        .add(event::Column::Id.gt(cursor.id)),
                ),
        );
    }
    Ok(Event::find()
        .filter(condition)
        .order_by_asc(event::Column::StartsAt)
        .order_by_asc(event::Column::Id)
        .limit(limit as u64)
        .all(db)
        .await?)
}

/// A `LIKE` pattern matching `text` anywhere, with the wildcards in `text` taken literally.
fn like_pattern(text: &str) -> sea_orm::sea_query::LikeExpr {
    let escaped: String = text
        .trim()
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    sea_orm::sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// The cursor of an event in the start-time ordering.
pub fn event_cursor(event: &event::Model) -> Cursor {
    Cursor::new(event.starts_at.to_rfc3339(), event.id)
}

/// A published event; drafts are NOT_FOUND to the public.
pub async fn find_public_event(db: &impl ConnectionTrait, id: Uuid) -> AppResult<event::Model> {
    Event::find_by_id(id)
        .filter(event::Column::Status.is_in(PUBLIC_STATUSES))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))
}

pub async fn tiers_of_events(
    db: &impl ConnectionTrait,
    event_ids: &[Uuid],
) -> AppResult<Vec<ticket_tier::Model>> {
    Ok(TicketTier::find()
        .filter(ticket_tier::Column::EventId.is_in(event_ids.iter().copied()))
        .order_by_asc(ticket_tier::Column::SortOrder)
        .all(db)
        .await?)
}

/// Seats of one section of one event, by status.
#[derive(Debug, Clone, FromQueryResult)]
pub struct SectionAvailability {
    pub event_id: Uuid,
    pub section_id: Uuid,
    pub status: SeatStatus,
    pub seats: i64,
}

/// Seat counts per event, section and status for reserved sections.
pub async fn section_availability(
    db: &impl ConnectionTrait,
    event_ids: &[Uuid],
) -> AppResult<Vec<SectionAvailability>> {
    Ok(EventSeat::find()
        .select_only()
        .column(event_seat::Column::EventId)
        .column(event_seat::Column::SectionId)
        .column(event_seat::Column::Status)
        .column_as(event_seat::Column::SeatId.count(), "seats")
        .filter(event_seat::Column::EventId.is_in(event_ids.iter().copied()))
        .group_by(event_seat::Column::EventId)
        .group_by(event_seat::Column::SectionId)
        .group_by(event_seat::Column::Status)
        .into_model::<SectionAvailability>()
        .all(db)
        .await?)
}

/// Creates the per-seat inventory of an event: one `event_seats` row for every seat of every reserved
/// section the event sells, priced at that section's tier, and sets each reserved tier's capacity to its
/// seat count. Runs inside the caller's transaction (publishing).
pub async fn create_inventory(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let mappings = EventSection::find()
        .filter(event_section::Column::EventId.eq(event_id))
        .all(db)
        .await?;
    let mut created = 0u64;
    for mapping in mappings {
        let Some(section) = Section::find_by_id(mapping.section_id).one(db).await? else {
            return Err(AppError::NotFound("section"));
        };
        if section.kind != SectionKind::Reserved {
            continue;
        }
        let seats = Seat::find()
            .filter(seat::Column::SectionId.eq(section.id))
            .all(db)
            .await?;
        let rows: Vec<event_seat::ActiveModel> = seats
            .iter()
            .map(|seat| event_seat::ActiveModel {
                event_id: Set(event_id),
                seat_id: Set(seat.id),
                section_id: Set(section.id),
                tier_id: Set(mapping.tier_id),
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
        created += rows.len() as u64;
    }
    let reserved_tiers = TicketTier::find()
        .filter(ticket_tier::Column::EventId.eq(event_id))
        .filter(ticket_tier::Column::Kind.eq(TierKind::Reserved))
        .all(db)
        .await?;
    for tier in reserved_tiers {
        let seats = EventSeat::find()
            .filter(event_seat::Column::EventId.eq(event_id))
            .filter(event_seat::Column::TierId.eq(tier.id))
            .count(db)
            .await?;
        let seats =
            i32::try_from(seats).map_err(|_| AppError::bad_input("tier has too many seats"))?;
        let mut tier: ticket_tier::ActiveModel = tier.into();
        tier.capacity = Set(seats);
        tier.available = Set(seats);
        tier.updated_at = Set(now);
        tier.update(db).await?;
    }
    Ok(created)
}

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

/// Creates a draft event with its tiers and section mappings. Runs in the caller's transaction.
pub async fn create_event(
    db: &impl ConnectionTrait,
    new: NewEvent,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    let event = event::ActiveModel {
        id: Set(Uuid::now_v7()),
        venue_id: Set(new.venue_id),
        organizer_id: Set(new.organizer_id),
        title: Set(new.title),
        performer: Set(new.performer),
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
    for (sort_order, tier) in new.tiers.into_iter().enumerate() {
        let tier_id = Uuid::now_v7();
        ticket_tier::ActiveModel {
            id: Set(tier_id),
            event_id: Set(event.id),
            name: Set(tier.name),
            kind: Set(tier.kind),
            price_cents: Set(tier.price_cents),
            currency: Set(tier.currency),
            capacity: Set(tier.capacity),
            available: Set(tier.capacity),
            sort_order: Set(sort_order as i32),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await?;
        for section_id in tier.section_ids {
            EventSection::insert(event_section::ActiveModel {
                event_id: Set(event.id),
                section_id: Set(section_id),
                tier_id: Set(tier_id),
            })
            .exec_without_returning(db)
            .await?;
        }
    }
    Ok(event)
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
    create_inventory(db, event.id, now).await?;
    let mut active: event::ActiveModel = event.into();
    active.status = Set(EventStatus::OnSale);
    active.published_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}
