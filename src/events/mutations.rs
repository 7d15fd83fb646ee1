//! Organizer mutations on events and tiers. Guards check the role; services check ownership.

use async_graphql::{Context, ID, InputObject, Object, Result, ResultExt};
use chrono::{DateTime, Utc};

use crate::auth::guards::RoleGuard;
use crate::booking::sweeper::publish_hold_update;
use crate::events::graphql::{Event, EventCategory, TicketTier, TierKind};
use crate::events::manage::{self, EventChanges, NewEvent, NewTier, TierChanges};
use crate::gql::{ContextExt, parse_id};
use crate::live::{LiveMessage, OrderUpdateKind};
use crate::orders::subscriptions::publish_order_update;
use crate::payments::service::refund_orders;

/// A new event. It starts as a draft, invisible to the public until `publishEvent`.
#[derive(InputObject)]
pub struct CreateEventInput {
    pub venue_id: ID,
    pub title: String,
    pub performer: String,
    pub category: EventCategory,
    #[graphql(default)]
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// When tickets go on sale; must be before the end.
    pub sale_starts_at: DateTime<Utc>,
    #[graphql(default)]
    pub waiting_room_required: bool,
    /// New shoppers admitted from the waiting room per minute (1 to 100,000).
    #[graphql(default = 500)]
    pub admission_rate_per_minute: i32,
    /// Shoppers admitted at the same time (1 to 1,000,000).
    #[graphql(default = 1000)]
    pub max_active_shoppers: i32,
    /// Most tickets one buyer may own for this event (1 to 100).
    #[graphql(default = 8)]
    pub max_tickets_per_user: i32,
    #[graphql(default)]
    pub tiers: Vec<TicketTierInput>,
}

/// A tier: general admission with a capacity (optionally standing in GA sections), or reserved seating
/// over one or more reserved sections (its capacity is their seats).
#[derive(InputObject)]
pub struct TicketTierInput {
    pub name: String,
    pub kind: TierKind,
    /// Price of one ticket in cents (0 to 10,000,000).
    pub price_cents: i64,
    #[graphql(default_with = "\"USD\".to_owned()")]
    pub currency: String,
    /// Required for general admission; ignored for reserved tiers.
    pub capacity: Option<i32>,
    /// Sections of the venue this tier sells.
    #[graphql(default)]
    pub section_ids: Vec<ID>,
}

/// Fields to change; omitted fields stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateEventInput {
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

/// Fields to change on a tier. Capacity applies to general admission only and can never drop below
/// what is sold or held (CONFLICT).
#[derive(InputObject, Default)]
pub struct UpdateTicketTierInput {
    pub name: Option<String>,
    pub price_cents: Option<i64>,
    pub capacity: Option<i32>,
}

impl TicketTierInput {
    fn into_new_tier(self) -> crate::error::AppResult<NewTier> {
        let kind: entity::enums::TierKind = self.kind.into();
        Ok(NewTier {
            name: self.name,
            kind,
            price_cents: self.price_cents,
            currency: self.currency.trim().to_uppercase(),
            capacity: self.capacity.unwrap_or(0),
            section_ids: self
                .section_ids
                .iter()
                .map(|id| parse_id(id, "sectionIds"))
                .collect::<crate::error::AppResult<_>>()?,
        })
    }
}

#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    /// Creates a draft event at a venue, with its tiers. ORGANIZER.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn create_event(&self, ctx: &Context<'_>, input: CreateEventInput) -> Result<Event> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let new = NewEvent {
            venue_id: parse_id(&input.venue_id, "venueId").extend()?,
            organizer_id: viewer.user_id,
            title: input.title,
            performer: input.performer,
            category: input.category.into(),
            description: input.description,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            sale_starts_at: input.sale_starts_at,
            waiting_room_required: input.waiting_room_required,
            admission_rate_per_minute: input.admission_rate_per_minute,
            max_active_shoppers: input.max_active_shoppers,
            max_tickets_per_user: input.max_tickets_per_user,
            tiers: input
                .tiers
                .into_iter()
                .map(TicketTierInput::into_new_tier)
                .collect::<crate::error::AppResult<_>>()
                .extend()?,
        };
        Ok(manage::create_event_in_transaction(&state.db, new)
            .await
            .extend()?
            .into())
    }

    /// Changes an event that is not cancelled. ORGANIZER of the event.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn update_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateEventInput,
    ) -> Result<Event> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        let changes = EventChanges {
            title: input.title,
            performer: input.performer,
            category: input.category.map(Into::into),
            description: input.description,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            sale_starts_at: input.sale_starts_at,
            waiting_room_required: input.waiting_room_required,
            admission_rate_per_minute: input.admission_rate_per_minute,
            max_active_shoppers: input.max_active_shoppers,
            max_tickets_per_user: input.max_tickets_per_user,
        };
        Ok(manage::update_event(&state.db, viewer, id, changes)
            .await
            .extend()?
            .into())
    }

    /// Puts a draft on sale, creating its per-seat inventory in the same transaction.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn publish_event(&self, ctx: &Context<'_>, id: ID) -> Result<Event> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        let event = manage::publish_managed_event(&state.db, viewer, id)
            .await
            .extend()?;
        state
            .bus
            .publish(LiveMessage::InventoryChanged { event_id: event.id })
            .await;
        Ok(event.into())
    }

    /// Cancels an event: releases its holds, cancels and refunds its orders, and notifies the buyers.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn cancel_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> Result<Event> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        let cancellation = manage::cancel_event(&state.db, viewer, id, reason)
            .await
            .extend()?;
        state
            .bus
            .publish(LiveMessage::InventoryChanged {
                event_id: cancellation.event.id,
            })
            .await;
        let buyers: std::collections::BTreeSet<uuid::Uuid> = cancellation
            .cancelled_orders
            .iter()
            .map(|o| o.user_id)
            .collect();
        for user_id in buyers {
            state
                .bus
                .publish(LiveMessage::NotificationsChanged { user_id })
                .await;
        }
        for order in &cancellation.cancelled_orders {
            publish_order_update(state, order, OrderUpdateKind::OrderCancelled).await;
        }
        for hold in &cancellation.released_holds {
            publish_hold_update(state, hold, OrderUpdateKind::HoldReleased).await;
        }
        refund_orders(
            &state.db,
            state.payments.as_ref(),
            &cancellation.cancelled_orders,
        )
        .await
        .extend()?;
        Ok(cancellation.event.into())
    }

    /// Deletes an event on which nothing was sold; otherwise CONFLICT (cancel it instead).
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn delete_event(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        manage::delete_event(&state.db, viewer, id).await.extend()?;
        Ok(true)
    }

    /// Adds a tier to an event; on a published event its seats go on sale at once.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn create_ticket_tier(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        input: TicketTierInput,
    ) -> Result<TicketTier> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        let tier = input.into_new_tier().extend()?;
        let created = manage::create_tier(&state.db, viewer, event_id, tier)
            .await
            .extend()?;
        state
            .bus
            .publish(LiveMessage::InventoryChanged { event_id })
            .await;
        Ok(created.into())
    }

    /// Renames, reprices or resizes a tier.
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn update_ticket_tier(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTicketTierInput,
    ) -> Result<TicketTier> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        let changes = TierChanges {
            name: input.name,
            price_cents: input.price_cents,
            capacity: input.capacity,
        };
        let claim_window = state.config.hold_policy().waitlist_claim;
        let tier = manage::update_tier(&state.db, claim_window, viewer, id, changes)
            .await
            .extend()?;
        state
            .bus
            .publish(LiveMessage::InventoryChanged {
                event_id: tier.event_id,
            })
            .await;
        crate::waitlist::service::announce_offers(state, chrono::Utc::now())
            .await
            .extend()?;
        Ok(tier.into())
    }
}
