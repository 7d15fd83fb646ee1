use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, Object, Result, ResultExt,
    SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{hold, order, seat};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::booking::idempotency::{self, ClaimedKey, IdempotencyKey};
use crate::booking::loaders::SeatsByHoldLoader;
use crate::booking::seat_lane::{self, SeatsHeld};
use crate::booking::service::{self, Admission, BestAvailable, Buyer, Quantity};
use crate::booking::sweeper::{publish_ended, publish_hold_update};
use crate::error::{AppError, AppResult};
use crate::events::graphql::{Event, load_event, load_tiers};
use crate::gql::{ContextExt, load_one, parse_id};
use crate::live::{LiveMessage, OrderUpdateKind};
use crate::orders::graphql::{Order, SeatLabel};
use crate::orders::subscriptions::publish_order_update;
use crate::state::AppState;
use crate::waitlist::graphql::join_if_sold_out;

/// Where a hold is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::HoldStatus")]
pub enum HoldStatus {
    /// Reserved for you until `expiresAt`.
    Active,
    /// Became an order.
    Converted,
    /// Given back by you.
    Released,
    /// Ran out of time; the stock went back on sale.
    Expired,
}

/// Tickets or seats reserved for one buyer until the hold expires.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Hold {
    pub id: ID,
    pub status: HoldStatus,
    /// Tickets or seats held.
    pub quantity: i32,
    /// When the stock goes back on sale unless checked out (extend with `extendHold`).
    pub expires_at: DateTime<Utc>,
    /// The latest `expiresAt` extensions can reach.
    pub max_expires_at: DateTime<Utc>,
    /// The general-admission tier, for a GA hold.
    pub tier_id: Option<ID>,
    #[graphql(skip)]
    pub uuid: Uuid,
    #[graphql(skip)]
    pub event_uuid: Uuid,
    #[graphql(skip)]
    pub tier_uuid: Option<Uuid>,
    /// The seats, when whoever made the hold already knew them.
    #[graphql(skip)]
    pub known_seats: Option<Vec<SeatLabel>>,
}

impl From<hold::Model> for Hold {
    fn from(model: hold::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            status: model.status.into(),
            quantity: model.quantity,
            expires_at: model.expires_at,
            max_expires_at: model.max_expires_at,
            tier_id: model.tier_id.map(|id| ID(id.to_string())),
            uuid: model.id,
            event_uuid: model.event_id,
            tier_uuid: model.tier_id,
            known_seats: None,
        }
    }
}

impl From<SeatsHeld> for Hold {
    fn from(held: SeatsHeld) -> Self {
        Self {
            known_seats: held
                .seats
                .map(|seats| seats.into_iter().map(SeatLabel::from).collect()),
            ..held.hold.into()
        }
    }
}

#[ComplexObject]
impl Hold {
    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        load_event(ctx, self.event_uuid).await
    }

    /// The seats, for a reserved-seat hold (empty once the hold has ended).
    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatLabel>> {
        if let Some(seats) = &self.known_seats {
            return Ok(seats.clone());
        }
        if self.tier_uuid.is_some() {
            return Ok(Vec::new());
        }
        Ok(self
            .seats_with_tiers(ctx)
            .await?
            .into_iter()
            .map(|(seat, _)| SeatLabel::from(seat))
            .collect())
    }

    /// What checking out costs, in cents.
    async fn total_cents(&self, ctx: &Context<'_>) -> Result<i64> {
        let seat_tiers = if self.tier_uuid.is_some() {
            Vec::new()
        } else {
            self.seats_with_tiers(ctx).await?
        };
        let tiers = load_tiers(ctx, self.event_uuid).await?;
        let seat_tiers = seat_tiers.into_iter().map(|(_, tier)| tier);
        let (total, _) =
            service::price_hold(self.tier_uuid, self.quantity, seat_tiers, &tiers).extend()?;
        Ok(total)
    }
}

impl Hold {
    async fn seats_with_tiers(&self, ctx: &Context<'_>) -> Result<Vec<(seat::Model, Uuid)>> {
        Ok(load_one(ctx, SeatsByHoldLoader, self.uuid)
            .await?
            .unwrap_or_default())
    }
}

/// Hold exactly these seats, or none of them.
#[derive(InputObject, Serialize)]
pub struct HoldSeatsInput {
    pub event_id: ID,
    /// 1 to 10 seats (MAX_TICKETS_PER_REQUEST).
    pub seat_ids: Vec<ID>,
    /// Your unique key for this request: retrying with it never holds twice.
    pub idempotency_key: String,
    /// Your queue pass, on an event with a waiting room (from `myQueueTicket` or `queuePosition` once
    /// admitted). Without a valid one such events answer QUEUE_REQUIRED.
    #[serde(skip)]
    pub queue_pass: Option<String>,
}

/// Hold the best free seats.
#[derive(InputObject, Serialize)]
pub struct HoldBestAvailableInput {
    pub event_id: ID,
    /// Only seats in this section.
    pub section_id: Option<ID>,
    /// Only seats of this tier.
    pub tier_id: Option<ID>,
    pub quantity: i32,
    /// Seats side by side in one row (default true).
    #[graphql(default = true)]
    pub adjacent: bool,
    pub idempotency_key: String,
    /// Your queue pass, on an event with a waiting room (from `myQueueTicket` or `queuePosition` once
    /// admitted). Without a valid one such events answer QUEUE_REQUIRED.
    #[serde(skip)]
    pub queue_pass: Option<String>,
}

/// Hold general-admission tickets.
#[derive(InputObject, Serialize)]
pub struct HoldTicketsInput {
    pub tier_id: ID,
    pub quantity: i32,
    pub idempotency_key: String,
    /// Your queue pass, on an event with a waiting room (from `myQueueTicket` or `queuePosition` once
    /// admitted). Without a valid one such events answer QUEUE_REQUIRED.
    #[serde(skip)]
    pub queue_pass: Option<String>,
    /// When SOLD_OUT, join the tier's waitlist: the error then carries `extensions.waitlistEntryId`
    /// and `extensions.waitlistPosition`.
    #[graphql(default)]
    pub join_waitlist_if_sold_out: bool,
}

/// Pay for a hold.
#[derive(InputObject, Serialize)]
pub struct CheckoutInput {
    pub hold_id: ID,
    /// From the payment form. Simulated provider: `tok_visa` succeeds, `tok_decline` is declined,
    /// `tok_chance_NN` succeeds NN percent of the time.
    pub payment_token: String,
    pub idempotency_key: String,
}

/// Hold and pay for general-admission tickets in one step.
#[derive(InputObject, Serialize)]
pub struct BookTicketsInput {
    pub tier_id: ID,
    pub quantity: i32,
    pub payment_token: String,
    pub idempotency_key: String,
    /// Your queue pass, on an event with a waiting room (from `myQueueTicket` or `queuePosition` once
    /// admitted). Without a valid one such events answer QUEUE_REQUIRED.
    #[serde(skip)]
    pub queue_pass: Option<String>,
    /// When SOLD_OUT, join the tier's waitlist: the error then carries `extensions.waitlistEntryId`
    /// and `extensions.waitlistPosition`.
    #[graphql(default)]
    pub join_waitlist_if_sold_out: bool,
}

/// The buyer behind a booking mutation, with their queue pass checked (no database involved).
fn buyer(state: &AppState, user_id: Uuid, queue_pass: Option<&str>) -> Buyer {
    let admission = match queue_pass {
        None => Admission::NoPass,
        Some(pass) => match state.passes.verify(pass, user_id) {
            Ok(event_id) => Admission::Admitted(event_id),
            Err(refusal) => Admission::Refused(refusal.to_string()),
        },
    };
    Buyer { user_id, admission }
}

/// Runs `work` once per idempotency key of the viewer; a retry returns the id the first run produced.
async fn idempotent<F, Fut>(
    state: &AppState,
    user_id: Uuid,
    key: &str,
    operation: &str,
    input: &impl Serialize,
    work: F,
) -> AppResult<Uuid>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<Uuid>>,
{
    let key = IdempotencyKey::parse(key)?;
    let hash = idempotency::request_hash(operation, input)?;
    idempotency::once(&state.db, user_id, &key, operation, hash, work).await
}

/// Loads the hold a mutation made and publishes it (a retried request publishes again, harmlessly).
async fn hold_result(state: &AppState, user_id: Uuid, hold_id: Uuid) -> AppResult<Hold> {
    let hold = service::find_own_hold(&state.db, user_id, hold_id).await?;
    state
        .bus
        .publish(LiveMessage::InventoryChanged {
            event_id: hold.event_id,
        })
        .await;
    publish_hold_update(state, &hold, OrderUpdateKind::HoldCreated).await;
    Ok(hold.into())
}

/// Loads the order a payment made and publishes it.
/// The order a checkout answers with: the one this request just made, or, for a retry answered from
/// its idempotency key, the one the first request made (read back, and only if it is the caller's).
async fn order_result(
    state: &AppState,
    user_id: Uuid,
    order_id: Uuid,
    made_here: Option<order::Model>,
) -> AppResult<Order> {
    let order = match made_here.filter(|order| order.id == order_id) {
        Some(order) => order,
        None => entity::prelude::Order::find_by_id(order_id)
            .one(&state.db)
            .await?
            .filter(|order| order.user_id == user_id)
            .ok_or(AppError::NotFound("order"))?,
    };
    state
        .bus
        .publish(LiveMessage::InventoryChanged {
            event_id: order.event_id,
        })
        .await;
    publish_order_update(state, &order, OrderUpdateKind::OrderConfirmed).await;
    Ok(order.into())
}

use sea_orm::EntityTrait;

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The signed-in buyer's active holds, newest first.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_holds(&self, ctx: &Context<'_>) -> Result<Vec<Hold>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        Ok(service::active_holds(&state.db, viewer.user_id)
            .await
            .extend()?
            .into_iter()
            .map(Hold::from)
            .collect())
    }
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Holds exactly the given seats or none: SOLD_OUT if any is sold, CONFLICT if any is in another
    /// buyer's hold (`extensions.unavailableSeatIds` lists them). One active hold per event per buyer.
    /// Concurrent holds of one event are served together, in arrival order: of two buyers racing
    /// for a seat, the first to arrive gets it.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn hold_seats(&self, ctx: &Context<'_>, input: HoldSeatsInput) -> Result<Hold> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let shopper = buyer(state, viewer.user_id, input.queue_pass.as_deref());
        let event_id = parse_id(&input.event_id, "eventId").extend()?;
        let seats = input
            .seat_ids
            .iter()
            .map(|id| parse_id(id, "seatIds"))
            .collect::<AppResult<Vec<_>>>()
            .extend()?;
        let key = IdempotencyKey::parse(&input.idempotency_key).extend()?;
        let request_hash = idempotency::request_hash(seat_lane::HOLD_SEATS, &input).extend()?;
        let held = state
            .seat_holding
            .hold_seats(shopper, event_id, &seats, key, request_hash)
            .await
            .extend()?;
        publish_hold_update(state, &held.hold, OrderUpdateKind::HoldCreated).await;
        Ok(held.into())
    }

    /// Holds the best free seats: frontmost first, side by side when `adjacent`, avoiding single
    /// orphan seats. Concurrent buyers never get the same seats: their requests for one event are
    /// served together, in arrival order, so an earlier request gets the better seats. SOLD_OUT when
    /// no fitting seats are free.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn hold_best_available(
        &self,
        ctx: &Context<'_>,
        input: HoldBestAvailableInput,
    ) -> Result<Hold> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let shopper = buyer(state, viewer.user_id, input.queue_pass.as_deref());
        let policy = state.config.hold_policy();
        let request = BestAvailable {
            event_id: parse_id(&input.event_id, "eventId").extend()?,
            section_id: input
                .section_id
                .as_ref()
                .map(|id| parse_id(id, "sectionId"))
                .transpose()
                .extend()?,
            tier_id: input
                .tier_id
                .as_ref()
                .map(|id| parse_id(id, "tierId"))
                .transpose()
                .extend()?,
            quantity: Quantity::parse(input.quantity, &policy).extend()?,
            adjacent: input.adjacent,
        };
        let key = IdempotencyKey::parse(&input.idempotency_key).extend()?;
        let request_hash =
            idempotency::request_hash(seat_lane::HOLD_BEST_AVAILABLE, &input).extend()?;
        let held = state
            .seat_holding
            .hold_best(shopper, request, key, request_hash)
            .await
            .extend()?;
        publish_hold_update(state, &held.hold, OrderUpdateKind::HoldCreated).await;
        Ok(held.into())
    }

    /// Holds general-admission tickets; SOLD_OUT when fewer are left.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn hold_tickets(&self, ctx: &Context<'_>, input: HoldTicketsInput) -> Result<Hold> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let shopper = buyer(state, viewer.user_id, input.queue_pass.as_deref());
        let policy = state.config.hold_policy();
        let tier_id = parse_id(&input.tier_id, "tierId").extend()?;
        let quantity = Quantity::parse(input.quantity, &policy).extend()?;
        let hold_id = idempotent(
            state,
            viewer.user_id,
            &input.idempotency_key,
            "holdTickets",
            &input,
            || async {
                Ok(
                    service::hold_tickets(&state.db, &policy, shopper, tier_id, quantity)
                        .await?
                        .id,
                )
            },
        )
        .await;
        let hold_id = match hold_id {
            Ok(id) => id,
            Err(err) if input.join_waitlist_if_sold_out => {
                return Err(join_if_sold_out(state, viewer.user_id, tier_id, quantity, err).await);
            }
            Err(err) => return Err(err.extend()),
        };
        hold_result(state, viewer.user_id, hold_id).await.extend()
    }

    /// Pushes a live hold's expiry out by the hold time, up to `maxExpiresAt` (then LIMIT_EXCEEDED).
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn extend_hold(&self, ctx: &Context<'_>, hold_id: ID) -> Result<Hold> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&hold_id, "holdId").extend()?;
        let policy = state.config.hold_policy();
        let hold = service::extend_hold(&state.db, &policy, viewer.user_id, id)
            .await
            .extend()?;
        publish_hold_update(state, &hold, OrderUpdateKind::HoldExtended).await;
        Ok(hold.into())
    }

    /// Gives a hold's tickets or seats back.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn release_hold(&self, ctx: &Context<'_>, hold_id: ID) -> Result<Hold> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&hold_id, "holdId").extend()?;
        let policy = state.config.hold_policy();
        let hold = service::release_hold(&state.db, &policy, viewer.user_id, id)
            .await
            .extend()?;
        publish_ended(
            state,
            std::slice::from_ref(&hold),
            OrderUpdateKind::HoldReleased,
        )
        .await;
        crate::waitlist::service::announce_offers(state, Utc::now())
            .await
            .extend()?;
        Ok(hold.into())
    }

    /// Pays for a live hold and turns it into an order with one ticket per seat or unit.
    /// PAYMENT_DECLINED keeps the hold for another try; HOLD_EXPIRED means the stock is gone (and any
    /// charge was refunded).
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn checkout(&self, ctx: &Context<'_>, input: CheckoutInput) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let hold_id = parse_id(&input.hold_id, "holdId").extend()?;
        let key = IdempotencyKey::parse(&input.idempotency_key).extend()?;
        let request_hash = idempotency::request_hash("checkout", &input).extend()?;
        let claimed = ClaimedKey {
            user_id: viewer.user_id,
            key: key.clone(),
        };
        // The key completes with the order, in the transaction that converts the hold.
        let mut made_here = None;
        let order_id = idempotency::once_completed_by_work(
            &state.db,
            viewer.user_id,
            &key,
            "checkout",
            request_hash,
            || async {
                let convert = async |conversion| state.checkouts.convert(conversion).await;
                let order = service::checkout(
                    &state.db,
                    state.payments.as_ref(),
                    viewer.user_id,
                    hold_id,
                    &input.payment_token,
                    Some(claimed),
                    convert,
                )
                .await?;
                let order_id = order.id;
                made_here = Some(order);
                Ok(order_id)
            },
        )
        .await;
        if let Err(AppError::PaymentDeclined(_)) = &order_id
            && let Ok(hold) = service::find_own_hold(&state.db, viewer.user_id, hold_id).await
        {
            publish_hold_update(state, &hold, OrderUpdateKind::PaymentDeclined).await;
        }
        order_result(state, viewer.user_id, order_id.extend()?, made_here)
            .await
            .extend()
    }

    /// Holds and pays for general-admission tickets in one call: confirmed, or refused (SOLD_OUT,
    /// PAYMENT_DECLINED, LIMIT_EXCEEDED, CONFLICT if you hold tickets for the event) with nothing held.
    /// Built for the on-sale rush: concurrent bookings of a tier are served together, in arrival order.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn book_tickets(&self, ctx: &Context<'_>, input: BookTicketsInput) -> Result<Order> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let shopper = buyer(state, viewer.user_id, input.queue_pass.as_deref());
        let policy = state.config.hold_policy();
        let tier_id = parse_id(&input.tier_id, "tierId").extend()?;
        let quantity = Quantity::parse(input.quantity, &policy).extend()?;
        let key = IdempotencyKey::parse(&input.idempotency_key).extend()?;
        let request_hash = idempotency::request_hash("bookTickets", &input).extend()?;
        let order = state
            .direct_booking
            .book(
                shopper,
                tier_id,
                quantity,
                &input.payment_token,
                key,
                request_hash,
            )
            .await;
        let order = match order {
            Ok(order) => order,
            Err(err) if input.join_waitlist_if_sold_out => {
                return Err(join_if_sold_out(state, viewer.user_id, tier_id, quantity, err).await);
            }
            Err(err) => return Err(err.extend()),
        };
        publish_order_update(state, &order, OrderUpdateKind::OrderConfirmed).await;
        Ok(order.into())
    }
}
