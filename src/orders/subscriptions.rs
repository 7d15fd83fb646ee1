//! `orderUpdated`: a buyer's own holds and orders, pushed as they change.

use async_graphql::{
    ComplexObject, Context, Enum, ID, Result, ResultExt, SimpleObject, Subscription,
};
use entity::order;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::booking::graphql::Hold;
use crate::booking::service::find_own_hold;
use crate::error::AppError;
use crate::gql::{ContextExt, parse_id};
use crate::live::LiveMessage;
use crate::orders::graphql::Order;
use crate::state::AppState;

/// What happened to one of your holds or orders.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderUpdateKind {
    /// A hold was made (by you, or as a waitlist offer).
    HoldCreated,
    /// `extendHold` moved the expiry.
    HoldExtended,
    /// The hold expires soon (`HOLD_WARNING_SECONDS` before); check out or extend it.
    HoldExpiringSoon,
    /// The hold ran out of time and its stock went back on sale.
    HoldExpired,
    /// The hold was given back (by you, or because the event was cancelled).
    HoldReleased,
    /// Payment for the hold was declined; the hold stays for another try.
    PaymentDeclined,
    /// Payment succeeded and the order exists.
    OrderConfirmed,
    /// The order was cancelled (by you, or because the event was cancelled).
    OrderCancelled,
    /// A cancellation was undone.
    OrderRestored,
    /// Some tickets of the order were cancelled and refunded.
    OrderReduced,
    /// Updates may have been missed (the server lost its live connection or you fell behind):
    /// reload `myHolds` and `myOrders`.
    Resync,
}

/// One change to a hold or order of yours. `hold` and `order` are read when the update is delivered,
/// so they show the current state.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderUpdate {
    pub kind: OrderUpdateKind,
    /// The event concerned (null for RESYNC).
    pub event_id: Option<ID>,
    #[graphql(skip)]
    user_id: Uuid,
    #[graphql(skip)]
    hold_id: Option<Uuid>,
    #[graphql(skip)]
    order_id: Option<Uuid>,
}

#[ComplexObject]
impl OrderUpdate {
    /// The hold, for hold updates.
    async fn hold(&self, ctx: &Context<'_>) -> Result<Option<Hold>> {
        let Some(id) = self.hold_id else {
            return Ok(None);
        };
        let state = ctx.state().extend()?;
        match find_own_hold(&state.db, self.user_id, id).await {
            Ok(hold) => Ok(Some(hold.into())),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(err) => Err(err).extend(),
        }
    }

    /// The order, for order updates.
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>> {
        let Some(id) = self.order_id else {
            return Ok(None);
        };
        let state = ctx.state().extend()?;
        let order = entity::prelude::Order::find_by_id(id)
            .one(&state.db)
            .await
            .map_err(AppError::from)
            .extend()?;
        Ok(order
            .filter(|order| order.user_id == self.user_id)
            .map(Order::from))
    }
}

use sea_orm::EntityTrait;

#[derive(Default)]
pub struct OrderSubscription;

#[Subscription]
impl OrderSubscription {
    /// Your holds and orders as they change: holds made, extended, about to expire, expired or
    /// released; payment results; cancellations, reductions and restorations. Authenticate in
    /// `connection_init`; without a token this is UNAUTHENTICATED.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only updates about this event.")] event_id: Option<ID>,
    ) -> Result<impl Stream<Item = OrderUpdate> + use<>> {
        let state = ctx.state().extend()?;
        let user_id = ctx.viewer().extend()?.user_id;
        let only_event = event_id
            .map(|id| parse_id(&id, "eventId"))
            .transpose()
            .extend()?;
        let mut messages = state.bus.subscribe();
        Ok(async_stream::stream! {
            loop {
                match messages.recv().await {
                    Ok(LiveMessage::OrderUpdated { user_id: owner, event_id, kind, hold_id, order_id })
                        if owner == user_id && only_event.is_none_or(|only| only == event_id) =>
                    {
                        yield OrderUpdate {
                            kind,
                            event_id: Some(ID(event_id.to_string())),
                            user_id,
                            hold_id,
                            order_id,
                        };
                    }
                    Ok(LiveMessage::Resync) | Err(RecvError::Lagged(_)) => {
                        yield OrderUpdate {
                            kind: OrderUpdateKind::Resync,
                            event_id: None,
                            user_id,
                            hold_id: None,
                            order_id: None,
                        };
                    }
                    Ok(_) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}

/// Tells the order's buyer, live, what happened to it.
pub async fn publish_order_update(state: &AppState, order: &order::Model, kind: OrderUpdateKind) {
    state
        .bus
        .publish(LiveMessage::OrderUpdated {
            user_id: order.user_id,
            event_id: order.event_id,
            kind,
            hold_id: None,
            order_id: Some(order.id),
        })
        .await;
}
