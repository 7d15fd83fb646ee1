use chrono::{DateTime, Utc};
use entity::enums::{EventCategory, EventStatus, SeatStatus};
use entity::prelude::*;
use entity::{event, event_seat, ticket_tier};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::auth::Viewer;
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

/// An event the caller may see: published ones for everybody, drafts for their organizer and admins.
/// Anything else is NOT_FOUND, so drafts do not leak even their existence.
pub async fn find_visible_event(
    db: &impl ConnectionTrait,
    viewer: Option<&Viewer>,
    id: Uuid,
) -> AppResult<event::Model> {
    visible_event(Event::find_by_id(id).one(db).await?, viewer)
}

/// The rule of [`find_visible_event`] applied to a row already read (`None`: no such event), for
/// callers that share one read among many viewers.
pub fn visible_event(
    event: Option<event::Model>,
    viewer: Option<&Viewer>,
) -> AppResult<event::Model> {
    let event = event.ok_or(AppError::NotFound("event"))?;
    let visible = PUBLIC_STATUSES.contains(&event.status)
        || viewer.is_some_and(|viewer| viewer.ensure_owner(event.organizer_id, "event").is_ok());
    if visible {
        Ok(event)
    } else {
        Err(AppError::NotFound("event"))
    }
}

/// Events the viewer organizes (every event for an admin), drafts included, by start time.
pub async fn list_managed_events(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    after: Option<&Cursor>,
    limit: usize,
) -> AppResult<Vec<event::Model>> {
    let mut condition = Condition::all();
    if !viewer.is_admin() {
        condition = condition.add(event::Column::OrganizerId.eq(viewer.user_id));
    }
    if let Some(cursor) = after {
        condition = condition.add(after_cursor(cursor)?);
    }
    Ok(Event::find()
        .filter(condition)
        .order_by_asc(event::Column::StartsAt)
        .order_by_asc(event::Column::Id)
        .limit(limit as u64)
        .all(db)
        .await?)
}

/// Rows after `cursor` in the (starts_at, id) ordering.
fn after_cursor(cursor: &Cursor) -> AppResult<Condition> {
    let starts_at = DateTime::parse_from_rfc3339(&cursor.key)
        .map_err(|_| AppError::bad_input("after is not a valid cursor"))?
        .with_timezone(&Utc);
    Ok(Condition::any()
        .add(event::Column::StartsAt.gt(starts_at))
        .add(
            Condition::all()
                .add(event::Column::StartsAt.eq(starts_at))
                .add(event::Column::Id.gt(cursor.id)),
        ))
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
