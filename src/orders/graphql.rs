use async_graphql::connection::{Connection, Edge};
use async_graphql::{ComplexObject, Context, Enum, ID, Object, Result, ResultExt, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{order, order_line, ticket};
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::events::graphql::{Event, load_event};
use crate::gql::{ContextExt, Cursor, load_one, page_size, parse_id};
use crate::live::{LiveMessage, OrderUpdateKind};
use crate::orders::loaders::{LinesByOrderLoader, TicketsByOrderLoader};
use crate::orders::service::{self, OrderFilter, UNDO_WINDOW_MINUTES};
use crate::orders::subscriptions::publish_order_update;
use crate::state::AppState;
use crate::tickets::signing::TicketClaims;
use crate::venues::loaders::SeatByIdLoader;

/// Where an order is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::OrderStatus")]
pub enum OrderStatus {
    Paid,
    Cancelled,
}

/// Whether a ticket still admits.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::TicketStatus")]
pub enum TicketStatus {
    Valid,
    Cancelled,
}

/// Which of the viewer's orders to list.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum OrderFilterInput {
    /// Paid, for events that have not ended.
    Upcoming,
    /// Paid, for events that have ended.
    Past,
    Cancelled,
}

/// A paid (or cancelled) purchase.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub status: OrderStatus,
    /// What was charged, in cents.
    pub total_cents: i64,
    /// What was refunded so far, in cents.
    pub refunded_cents: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub uuid: Uuid,
    #[graphql(skip)]
    pub event_uuid: Uuid,
}

impl From<order::Model> for Order {
    fn from(model: order::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            status: model.status.into(),
            total_cents: model.total_cents,
            refunded_cents: model.refunded_cents,
            currency: model.currency,
            created_at: model.created_at,
            cancelled_at: model.cancelled_at,
            uuid: model.id,
            event_uuid: model.event_id,
        }
    }
}

#[ComplexObject]
impl Order {
    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        load_event(ctx, self.event_uuid).await
    }

    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        Ok(load_one(ctx, LinesByOrderLoader, self.uuid)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(OrderLine::from)
            .collect())
    }

    /// One ticket per seat or general-admission unit, cancelled ones included.
    async fn tickets(&self, ctx: &Context<'_>) -> Result<Vec<Ticket>> {
        Ok(load_one(ctx, TicketsByOrderLoader, self.uuid)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Ticket::from)
            .collect())
    }

    /// Until when `undoCancellation` can restore this cancelled order.
    async fn undoable_until(&self) -> Option<DateTime<Utc>> {
        self.cancelled_at
            .filter(|_| self.status == OrderStatus::Cancelled)
            .map(|at| at + chrono::Duration::minutes(UNDO_WINDOW_MINUTES))
    }
}

/// Tickets of one tier in an order.
#[derive(SimpleObject, Clone)]
pub struct OrderLine {
    pub tier_id: ID,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

impl From<order_line::Model> for OrderLine {
    fn from(model: order_line::Model) -> Self {
        Self {
            tier_id: ID(model.tier_id.to_string()),
            quantity: model.quantity,
            unit_price_cents: model.unit_price_cents,
        }
    }
}

/// One admission: a seat, or a general-admission place.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Ticket {
    pub id: ID,
    pub status: TicketStatus,
    pub tier_id: ID,
    pub checked_in_at: Option<DateTime<Utc>>,
    /// The gate it was admitted at.
    pub checked_in_gate: Option<String>,
    #[graphql(skip)]
    pub seat_uuid: Option<Uuid>,
    #[graphql(skip)]
    pub claims: TicketClaims,
    #[graphql(skip)]
    pub valid: bool,
}

impl From<ticket::Model> for Ticket {
    fn from(model: ticket::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            status: model.status.into(),
            tier_id: ID(model.tier_id.to_string()),
            checked_in_at: model.checked_in_at,
            checked_in_gate: model.checked_in_gate,
            seat_uuid: model.seat_id,
            valid: model.status == entity::enums::TicketStatus::Valid,
            claims: TicketClaims {
                ticket_id: model.id,
                event_id: model.event_id,
                nonce: model.nonce,
            },
        }
    }
}

/// A seat as printed on a ticket.
#[derive(SimpleObject, Clone)]
pub struct SeatLabel {
    pub id: ID,
    pub section_id: ID,
    pub row: String,
    pub number: i32,
}

impl From<entity::seat::Model> for SeatLabel {
    fn from(seat: entity::seat::Model) -> Self {
        Self {
            id: ID(seat.id.to_string()),
            section_id: ID(seat.section_id.to_string()),
            row: seat.row_label,
            number: seat.number,
        }
    }
}

#[ComplexObject]
impl Ticket {
    /// What the QR code carries: a compact Ed25519-signed token (ticket, event, nonce) that a scanner
    /// verifies offline with `eventVerificationKey`. Null once the ticket is cancelled.
    async fn qr_payload(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let state = ctx.state().extend()?;
        Ok(self.valid.then(|| state.signer.sign(&self.claims)))
    }

    /// The QR code of `qrPayload` as an SVG document.
    async fn qr_svg(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let state = ctx.state().extend()?;
        if !self.valid {
            return Ok(None);
        }
        Ok(Some(
            crate::tickets::qr_svg(&state.signer.sign(&self.claims)).extend()?,
        ))
    }

    /// The seat, for a reserved ticket.
    async fn seat(&self, ctx: &Context<'_>) -> Result<Option<SeatLabel>> {
        let Some(seat_id) = self.seat_uuid else {
            return Ok(None);
        };
        Ok(load_one(ctx, SeatByIdLoader, seat_id)
            .await?
            .map(SeatLabel::from))
    }
}

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// The signed-in buyer's orders, newest first.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilterInput>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last order of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Order>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let limit = page_size(first).extend()?;
        let after = after.as_deref().map(Cursor::decode).transpose().extend()?;
        let filter = filter.map(|f| match f {
            OrderFilterInput::Upcoming => OrderFilter::Upcoming,
            OrderFilterInput::Past => OrderFilter::Past,
            OrderFilterInput::Cancelled => OrderFilter::Cancelled,
        });
        let mut rows = service::list_orders(
            &state.db,
            viewer.user_id,
            filter,
            after.as_ref(),
            limit + 1,
            Utc::now(),
        )
        .await
        .extend()?;
        let has_next_page = rows.len() > limit;
        rows.truncate(limit);
        let mut connection = Connection::new(after.is_some(), has_next_page);
        connection
            .edges
            .extend(rows.into_iter().map(|order| {
                Edge::new(service::order_cursor(&order).encode(), Order::from(order))
            }));
        Ok(connection)
    }

    /// One order: its buyer's, or any for an admin; NOT_FOUND otherwise.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&id, "id").extend()?;
        Ok(service::find_order(&state.db, viewer, id)
            .await
            .extend()?
            .into())
    }
}

/// Publishes what changing an order did: the event's stock, the buyer's order, and any waitlist offers
/// the freed tickets became.
async fn publish_order_change(
    state: &AppState,
    order: &order::Model,
    kind: OrderUpdateKind,
) -> crate::error::AppResult<()> {
    state
        .bus
        .publish(LiveMessage::InventoryChanged {
            event_id: order.event_id,
        })
        .await;
    publish_order_update(state, order, kind).await;
    if matches!(
        kind,
        OrderUpdateKind::OrderCancelled | OrderUpdateKind::OrderReduced
    ) {
        crate::waitlist::service::announce_offers(state, chrono::Utc::now()).await?;
    }
    Ok(())
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Cancels a whole order; its seats go back on sale at once. Undoable for five minutes, refunded in
    /// full when that window closes.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn cancel_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&order_id, "orderId").extend()?;
        let order = service::cancel_order(
            &state.db,
            state.config.hold_policy().waitlist_claim,
            viewer,
            id,
        )
        .await
        .extend()?;
        publish_order_change(state, &order, OrderUpdateKind::OrderCancelled)
            .await
            .extend()?;
        Ok(order.into())
    }

    /// Cancels some tickets of an order and refunds them at once (not undoable).
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn reduce_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        ticket_ids: Vec<ID>,
    ) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&order_id, "orderId").extend()?;
        let tickets = ticket_ids
            .iter()
            .map(|t| parse_id(t, "ticketIds"))
            .collect::<crate::error::AppResult<Vec<_>>>()
            .extend()?;
        let order = service::reduce_order(
            &state.db,
            state.payments.as_ref(),
            state.config.hold_policy().waitlist_claim,
            viewer,
            id,
            &tickets,
        )
        .await
        .extend()?;
        publish_order_change(state, &order, OrderUpdateKind::OrderReduced)
            .await
            .extend()?;
        Ok(order.into())
    }

    /// Restores an order cancelled in the last five minutes if its seats are still free.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn undo_cancellation(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&order_id, "orderId").extend()?;
        let order = service::undo_cancellation(&state.db, viewer, id)
            .await
            .extend()?;
        publish_order_change(state, &order, OrderUpdateKind::OrderRestored)
            .await
            .extend()?;
        Ok(order.into())
    }
}
