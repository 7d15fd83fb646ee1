use async_graphql::{Context, Enum, ID, Object, Result, ResultExt, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::error::{AppError, AppResult};
use crate::gql::{ContextExt, parse_id};
use crate::live::LiveMessage;
use crate::queue::service::{self, Place};
use crate::state::AppState;

/// Where a shopper is in a waiting room.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::enums::QueueStatus")]
pub enum QueueStatus {
    /// In line (during the pre-queue, without a position until the on-sale).
    Waiting,
    /// Let in: `pass` lets you hold and book until `passExpiresAt`.
    Admitted,
    /// You left.
    Left,
    /// Your pass ran out; join again to queue at the back.
    Expired,
}

/// Your place in an event's waiting room.
#[derive(SimpleObject, Clone, PartialEq, Debug)]
pub struct QueueTicket {
    pub event_id: ID,
    pub status: QueueStatus,
    /// Your number in line, unique and contiguous per event. Null during the pre-queue: everyone who
    /// joins before the on-sale is put in random order at the on-sale; later arrivals queue in order.
    pub position: Option<i64>,
    /// Places between the last shopper let in and you (some of them may have left).
    pub ahead_of_you: Option<i64>,
    /// Rough wait at the event's admission rate.
    pub estimated_wait_seconds: Option<i64>,
    /// The on-sale moment, when admission starts.
    pub opens_at: DateTime<Utc>,
    pub joined_at: DateTime<Utc>,
    /// When ADMITTED: send it as `queuePass` with holds and bookings of this event.
    pub pass: Option<String>,
    pub pass_expires_at: Option<DateTime<Utc>>,
}

fn ticket(state: &AppState, place: Place, now: DateTime<Utc>) -> AppResult<QueueTicket> {
    let entry = place.entry;
    let pass = match (entry.status, entry.pass_expires_at) {
        (entity::enums::QueueStatus::Admitted, Some(until)) if until > now => {
            Some(state.passes.issue(entry.user_id, entry.event_id, until)?)
        }
        _ => None,
    };
    Ok(QueueTicket {
        event_id: ID(entry.event_id.to_string()),
        status: entry.status.into(),
        position: entry.position,
        ahead_of_you: place.ahead,
        estimated_wait_seconds: place.estimated_wait.map(|wait| wait.num_seconds()),
        opens_at: place.opens_at,
        joined_at: entry.joined_at,
        pass,
        pass_expires_at: entry.pass_expires_at,
    })
}

/// How a waiting room is doing, for its organizer.
#[derive(SimpleObject)]
pub struct QueueStats {
    /// In line now.
    pub waiting: i64,
    /// Admitted with a pass that has not run out.
    pub shopping: i64,
    /// Let in since the on-sale.
    pub admitted_total: i64,
    pub left: i64,
    /// Passes that ran out.
    pub expired: i64,
    /// Positions handed out.
    pub last_position: i64,
    /// The highest position let in.
    pub admitted_through: i64,
    pub admission_rate_per_minute: i32,
    pub max_active_shoppers: i32,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Default)]
pub struct QueueQuery;

#[Object]
impl QueueQuery {
    /// Your place in the event's waiting room; null if you have not joined.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_queue_ticket(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<Option<QueueTicket>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        match service::place(&state.db, viewer.user_id, event_id).await {
            Ok(place) => Ok(Some(ticket(state, place, Utc::now()).extend()?)),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(err) => Err(err).extend(),
        }
    }

    /// The waiting room's figures (the event's organizer, or an admin).
    #[graphql(guard = "RoleGuard::ORGANIZER")]
    async fn queue_stats(&self, ctx: &Context<'_>, event_id: ID) -> Result<QueueStats> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        let stats = service::stats(&state.db, viewer, event_id, Utc::now())
            .await
            .extend()?;
        Ok(QueueStats {
            waiting: count(stats.waiting),
            shopping: count(stats.shopping),
            admitted_total: stats.admitted_total,
            left: count(stats.left),
            expired: count(stats.expired),
            last_position: stats.last_position,
            admitted_through: stats.admitted_through,
            admission_rate_per_minute: stats.admission_rate_per_minute,
            max_active_shoppers: stats.max_active_shoppers,
        })
    }
}

#[derive(Default)]
pub struct QueueMutation;

#[Object]
impl QueueMutation {
    /// Joins the event's waiting room (one place per user: joining again returns it). Opens
    /// QUEUE_OPENS_MINUTES before the on-sale; TOO_MANY_REQUESTS past 10 joins a minute; CONFLICT
    /// for an event without a waiting room.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn join_queue(&self, ctx: &Context<'_>, event_id: ID) -> Result<QueueTicket> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        if !state
            .throttles
            .queue_joins_per_user
            .try_acquire(&viewer.user_id.to_string())
        {
            return Err(AppError::TooManyRequests(
                "too many waiting-room joins: wait a minute".into(),
            ))
            .extend();
        }
        let now = Utc::now();
        let policy = state.config.queue_policy();
        let (_, numbered) = service::join(&state.db, &policy, viewer.user_id, event_id, now)
            .await
            .extend()?;
        if let Some(admitted_through) = numbered {
            announce(state, event_id, admitted_through).await;
        }
        let place = service::place(&state.db, viewer.user_id, event_id)
            .await
            .extend()?;
        ticket(state, place, now).extend()
    }

    /// Leaves the waiting room; an admitted shopper's pass stops counting against the cap.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn leave_queue(&self, ctx: &Context<'_>, event_id: ID) -> Result<QueueTicket> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        service::leave(&state.db, viewer.user_id, event_id)
            .await
            .extend()?;
        let place = service::place(&state.db, viewer.user_id, event_id)
            .await
            .extend()?;
        ticket(state, place, Utc::now()).extend()
    }
}

/// Tells every instance's queue subscribers that the event's queue moved.
pub async fn announce(state: &AppState, event_id: Uuid, admitted_through: i64) {
    state
        .bus
        .publish(LiveMessage::QueueAdvanced {
            event_id,
            admitted_through,
        })
        .await;
}

#[derive(Default)]
pub struct QueueSubscription;

#[Subscription]
impl QueueSubscription {
    /// Your place in the waiting room: now, then whenever it changes (position, estimated wait,
    /// admission with its pass). NOT_FOUND until you `joinQueue`.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn queue_position(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<impl Stream<Item = QueueTicket> + use<>> {
        let state = ctx.state().extend()?.clone();
        let user_id = ctx.viewer().extend()?.user_id;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        let mut messages = state.bus.subscribe();
        let place = service::place(&state.db, user_id, event_id)
            .await
            .extend()?;
        let event = entity::prelude::Event::find_by_id(event_id)
            .one(&state.db)
            .await
            .map_err(AppError::from)
            .extend()?
            .ok_or(AppError::NotFound("event"))
            .extend()?;
        let first = ticket(&state, place.clone(), Utc::now()).extend()?;
        Ok(async_stream::stream! {
            let mut entry = place.entry;
            let mut last = first.clone();
            yield first;
            loop {
                let admitted_through = match messages.recv().await {
                    Ok(LiveMessage::QueueAdvanced { event_id: moved, admitted_through }) if moved == event_id => Some(admitted_through),
                    Ok(LiveMessage::Resync) | Err(RecvError::Lagged(_)) => None,
                    Ok(_) => continue,
                    Err(RecvError::Closed) => break,
                };
                // While still in line behind the last one admitted, the message says all there is to
                // know; otherwise (admitted, pass expired, shuffled, missed messages) read the entry.
                let still_behind = entry.status == entity::enums::QueueStatus::Waiting
                    && matches!((entry.position, admitted_through), (Some(p), Some(through)) if p > through);
                let place = match admitted_through {
                    Some(through) if still_behind => service::place_of(entry.clone(), &event, through),
                    _ => match service::place(&state.db, user_id, event_id).await {
                        Ok(place) => place,
                        Err(err) => {
                            tracing::warn!(error = %err, "could not read a queue place");
                            continue;
                        }
                    },
                };
                entry = place.entry.clone();
                let Ok(now_ticket) = ticket(&state, place, Utc::now()) else { continue };
                if now_ticket != last {
                    last = now_ticket.clone();
                    yield now_ticket;
                }
            }
        })
    }
}

use sea_orm::EntityTrait;
