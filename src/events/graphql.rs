use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, Object, Result, ResultExt,
    SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{event, ticket_tier};
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::events::loaders::{
    EventByIdLoader, SectionAvailabilityByEventLoader, TiersByEventLoader,
};
use crate::events::seat_map::{self, MapSeat, MapSection};
use crate::events::service::{self, EventFilter};
use crate::gql::{ContextExt, Cursor, load_one, page_size, parse_id};
use crate::venues::graphql::{Section, Venue};
use crate::venues::loaders::VenueByIdLoader;

/// The kind of show.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::EventCategory")]
pub enum EventCategory {
    Concert,
    Sports,
    Theatre,
    Comedy,
    Festival,
    Family,
    Conference,
}

/// Where an event is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::EventStatus")]
pub enum EventStatus {
    /// Being prepared by its organizer; invisible to the public.
    Draft,
    /// Published: tickets sell from `saleStartsAt`.
    OnSale,
    /// Called off; its orders were cancelled and refunded.
    Cancelled,
}

/// How a tier's tickets are sold.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::TierKind")]
pub enum TierKind {
    /// Sold by count, for a standing area or an unseated event.
    GeneralAdmission,
    /// Prices specific seats of reserved sections.
    Reserved,
}

/// Status of one seat for one event.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::SeatStatus")]
pub enum SeatStatus {
    Available,
    /// In someone's cart until their hold expires.
    Held,
    Sold,
}

/// An event people buy tickets for.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Event {
    pub id: ID,
    pub title: String,
    pub performer: String,
    pub category: EventCategory,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// When tickets go on sale.
    pub sale_starts_at: DateTime<Utc>,
    pub status: EventStatus,
    /// Buyers must pass the virtual waiting room before they can hold or book.
    pub waiting_room_required: bool,
    /// New shoppers admitted from the waiting room per minute.
    pub admission_rate_per_minute: i32,
    /// Most shoppers admitted from the waiting room at the same time.
    pub max_active_shoppers: i32,
    /// Most tickets one buyer may own for this event.
    pub max_tickets_per_user: i32,
    #[graphql(skip)]
    pub uuid: Uuid,
    #[graphql(skip)]
    pub venue_id: Uuid,
}

impl From<event::Model> for Event {
    fn from(model: event::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            title: model.title,
            performer: model.performer,
            category: model.category.into(),
            description: model.description,
            starts_at: model.starts_at,
            ends_at: model.ends_at,
            sale_starts_at: model.sale_starts_at,
            status: model.status.into(),
            waiting_room_required: model.waiting_room_required,
            admission_rate_per_minute: model.admission_rate_per_minute,
            max_active_shoppers: model.max_active_shoppers,
            max_tickets_per_user: model.max_tickets_per_user,
            uuid: model.id,
            venue_id: model.venue_id,
        }
    }
}

#[ComplexObject]
impl Event {
    async fn venue(&self, ctx: &Context<'_>) -> Result<Venue> {
        load_one(ctx, VenueByIdLoader, self.venue_id)
            .await?
            .map(Venue::from)
            .ok_or_else(|| crate::error::AppError::NotFound("venue").extend())
    }

    /// Price tiers with their live availability, cheapest last in the organizer's order.
    async fn tiers(&self, ctx: &Context<'_>) -> Result<Vec<TicketTier>> {
        Ok(self
            .tier_models(ctx)
            .await?
            .into_iter()
            .map(TicketTier::from)
            .collect())
    }

    /// Tickets of all tiers together.
    async fn capacity(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(self
            .tier_models(ctx)
            .await?
            .iter()
            .map(|tier| tier.capacity)
            .sum())
    }

    /// Tickets still available across all tiers, right now.
    async fn available(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(self
            .tier_models(ctx)
            .await?
            .iter()
            .map(|tier| tier.available)
            .sum())
    }

    /// Whether nothing is left to buy (some may come back when holds expire).
    async fn sold_out(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.available(ctx).await? == 0)
    }

    /// Seat counts by status for each reserved section the event sells.
    async fn section_availability(&self, ctx: &Context<'_>) -> Result<Vec<SectionAvailability>> {
        let rows = load_one(ctx, SectionAvailabilityByEventLoader, self.uuid)
            .await?
            .unwrap_or_default();
        Ok(section_availability_of(&rows))
    }
}

impl Event {
    async fn tier_models(&self, ctx: &Context<'_>) -> Result<Vec<ticket_tier::Model>> {
        load_tiers(ctx, self.uuid).await
    }
}

/// Loads an event's tiers through the per-request loader, for fields that price or count by tier.
pub async fn load_tiers(ctx: &Context<'_>, event_id: Uuid) -> Result<Vec<ticket_tier::Model>> {
    Ok(load_one(ctx, TiersByEventLoader, event_id)
        .await?
        .unwrap_or_default())
}

/// A price level of an event and its stock.
#[derive(SimpleObject, Clone)]
pub struct TicketTier {
    pub id: ID,
    pub name: String,
    pub kind: TierKind,
    /// Price of one ticket in the smallest currency unit (cents).
    pub price_cents: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Tickets this tier has in all.
    pub capacity: i32,
    /// Tickets neither held nor sold right now.
    pub available: i32,
    pub sold_out: bool,
}

impl From<ticket_tier::Model> for TicketTier {
    fn from(model: ticket_tier::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            name: model.name,
            kind: model.kind.into(),
            price_cents: model.price_cents,
            currency: model.currency,
            capacity: model.capacity,
            available: model.available,
            sold_out: model.available == 0,
        }
    }
}

/// Seat counts of one reserved section for one event.
#[derive(SimpleObject, Clone)]
pub struct SectionAvailability {
    pub section_id: ID,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    #[graphql(skip)]
    section_uuid: Uuid,
}

/// Folds (section, status, count) rows into one entry per section.
pub fn section_availability_of(rows: &[service::SectionAvailability]) -> Vec<SectionAvailability> {
    let mut sections: Vec<SectionAvailability> = Vec::new();
    for row in rows {
        let index = match sections
            .iter()
            .position(|s| s.section_uuid == row.section_id)
        {
            Some(index) => index,
            None => {
                sections.push(SectionAvailability::empty(row.section_id));
                sections.len() - 1
            }
        };
        let entry = &mut sections[index];
        let seats = i32::try_from(row.seats).unwrap_or(i32::MAX);
        match row.status {
            entity::enums::SeatStatus::Available => entry.available += seats,
            entity::enums::SeatStatus::Held => entry.held += seats,
            entity::enums::SeatStatus::Sold => entry.sold += seats,
        }
    }
    sections
}

impl SectionAvailability {
    fn empty(section_id: Uuid) -> Self {
        Self {
            section_id: ID(section_id.to_string()),
            available: 0,
            held: 0,
            sold: 0,
            section_uuid: section_id,
        }
    }
}

/// Narrows the event listing. All given filters must match.
#[derive(InputObject, Default)]
pub struct EventFilterInput {
    pub category: Option<EventCategory>,
    /// Events starting at or after this instant.
    pub starts_after: Option<DateTime<Utc>>,
    /// Events starting before this instant.
    pub starts_before: Option<DateTime<Utc>>,
    pub venue_id: Option<ID>,
    /// Case-insensitive text searched in title and performer.
    pub search: Option<String>,
    /// Statuses to include (default: on sale and cancelled; drafts are never listed).
    pub statuses: Option<Vec<EventStatus>>,
}

impl EventFilterInput {
    fn into_filter(self) -> crate::error::AppResult<EventFilter> {
        if let (Some(after), Some(before)) = (self.starts_after, self.starts_before) {
            if before <= after {
                return Err(crate::error::AppError::bad_input(
                    "startsBefore must be later than startsAfter",
                ));
            }
        }
        let text = self
            .search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if text.as_ref().is_some_and(|s| s.chars().count() > 100) {
            return Err(crate::error::AppError::bad_input(
                "search is longer than 100 characters",
            ));
        }
        Ok(EventFilter {
            category: self.category.map(Into::into),
            starts_after: self.starts_after,
            starts_before: self.starts_before,
            venue_id: self
                .venue_id
                .as_ref()
                .map(|id| parse_id(id, "venueId"))
                .transpose()?,
            text,
            statuses: self
                .statuses
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
        })
    }
}

/// Every seat of an event with its live status, grouped by section.
#[derive(SimpleObject)]
pub struct SeatMap {
    pub event_id: ID,
    pub sections: Vec<SeatMapSection>,
}

/// A section on the seat map. Standing areas have no seats, only a count.
#[derive(SimpleObject)]
pub struct SeatMapSection {
    pub section: Section,
    /// The tier this section is sold at.
    pub tier_id: ID,
    /// Seats (or standing places) available now.
    pub available: i32,
    /// Seats from the front row, in seat-number order. Empty for a standing area.
    pub seats: Vec<SeatMapSeat>,
}

/// One seat as drawn on the map.
#[derive(SimpleObject)]
pub struct SeatMapSeat {
    pub id: ID,
    pub row: String,
    pub number: i32,
    /// Position on the venue drawing.
    pub x: f64,
    pub y: f64,
    pub status: SeatStatus,
    pub tier_id: ID,
    pub accessible: bool,
}

impl From<MapSection> for SeatMapSection {
    fn from(section: MapSection) -> Self {
        Self {
            section: section.section.into(),
            tier_id: ID(section.tier_id.to_string()),
            available: section.available,
            seats: section.seats.into_iter().map(SeatMapSeat::from).collect(),
        }
    }
}

impl From<MapSeat> for SeatMapSeat {
    fn from(seat: MapSeat) -> Self {
        Self {
            id: ID(seat.seat_id.to_string()),
            row: seat.row_label,
            number: seat.number,
            x: seat.x,
            y: seat.y,
            status: seat.status.into(),
            tier_id: ID(seat.tier_id.to_string()),
            accessible: seat.accessible,
        }
    }
}

/// Loads an event through the per-request loader, for fields that point at one.
pub async fn load_event(ctx: &Context<'_>, id: Uuid) -> Result<Event> {
    load_one(ctx, EventByIdLoader, id)
        .await?
        .map(Event::from)
        .ok_or_else(|| crate::error::AppError::NotFound("event").extend())
}

/// A page of events; `rows` holds up to `limit + 1` rows, the extra one only telling that more follow.
fn event_connection(
    mut rows: Vec<event::Model>,
    limit: usize,
    has_previous_page: bool,
) -> Connection<String, Event> {
    let has_next_page = rows.len() > limit;
    rows.truncate(limit);
    let mut connection = Connection::new(has_previous_page, has_next_page);
    connection.edges.extend(
        rows.into_iter()
            .map(|event| Edge::new(service::event_cursor(&event).encode(), Event::from(event))),
    );
    connection
}

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Published events ordered by start time.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last event of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Event>> {
        let state = ctx.state().extend()?;
        let limit = page_size(first).extend()?;
        let filter = filter.unwrap_or_default().into_filter().extend()?;
        let after = after.as_deref().map(Cursor::decode).transpose().extend()?;
        let rows = service::list_events(&state.db, &filter, after.as_ref(), limit + 1)
            .await
            .extend()?;
        Ok(event_connection(rows, limit, after.is_some()))
    }

    /// One event: published ones for everybody, drafts only for their organizer; NOT_FOUND otherwise.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Event> {
        let state = ctx.state().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(service::find_visible_event(&state.db, ctx.viewer_opt(), id)
            .await
            .extend()?
            .into())
    }

    /// The events the signed-in organizer manages, drafts included, by start time. ORGANIZER.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn my_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last event of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Event>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let limit = page_size(first).extend()?;
        let after = after.as_deref().map(Cursor::decode).transpose().extend()?;
        let rows = service::list_managed_events(&state.db, viewer, after.as_ref(), limit + 1)
            .await
            .extend()?;
        Ok(event_connection(rows, limit, after.is_some()))
    }

    /// Every seat of a published event with its position and live status.
    async fn seat_map(&self, ctx: &Context<'_>, event_id: ID) -> Result<SeatMap> {
        let state = ctx.state().extend()?;
        let id = parse_id(&event_id, "eventId").extend()?;
        service::find_visible_event(&state.db, ctx.viewer_opt(), id)
            .await
            .extend()?;
        let sections = seat_map::load_seat_map(&state.db, id).await.extend()?;
        Ok(SeatMap {
            event_id,
            sections: sections.into_iter().map(SeatMapSection::from).collect(),
        })
    }
}
