use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, Object, Result, ResultExt,
    SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use entity::waitlist_entry;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::guards::RoleGuard;
use crate::booking::graphql::Hold;
use crate::booking::service::{Quantity, find_own_hold};
use crate::error::AppError;
use crate::events::graphql::{Event, load_event};
use crate::gql::{ContextExt, parse_id};
use crate::live::LiveMessage;
use crate::state::AppState;
use crate::waitlist::service::{self, Target};

/// Where a waitlist entry is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::WaitlistStatus")]
pub enum WaitlistStatus {
    /// In line; `position` says how many are ahead.
    Waiting,
    /// Tickets are held for you until `offerExpiresAt`: check out the `offer` hold to claim them.
    Offered,
    /// You checked the offer out.
    Claimed,
    /// The offer ran out unclaimed and passed to the next in line.
    Expired,
    /// You left the waitlist (or released the offer).
    Left,
    /// The event was cancelled.
    Cancelled,
}

/// Your place on the waitlist of a sold-out tier or section.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WaitlistEntry {
    pub id: ID,
    pub status: WaitlistStatus,
    /// Tickets asked for; an offer is always for all of them.
    pub quantity: i32,
    /// The tier waited for (null for a section entry).
    pub tier_id: Option<ID>,
    /// The reserved section waited for (null for a tier entry).
    pub section_id: Option<ID>,
    /// Until when an offer is held for you.
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub model: waitlist_entry::Model,
}

impl From<waitlist_entry::Model> for WaitlistEntry {
    fn from(model: waitlist_entry::Model) -> Self {
        Self {
            id: ID(model.id.to_string()),
            status: model.status.into(),
            quantity: model.quantity,
            tier_id: model.tier_id.map(|id| ID(id.to_string())),
            section_id: model.section_id.map(|id| ID(id.to_string())),
            offer_expires_at: model.offer_expires_at,
            created_at: model.created_at,
            model,
        }
    }
}

#[ComplexObject]
impl WaitlistEntry {
    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        load_event(ctx, self.model.event_id).await
    }

    /// 1 when you are next; null unless WAITING. Entries are served oldest first; one asking for more
    /// than is free keeps its place while smaller ones behind it are served.
    async fn position(&self, ctx: &Context<'_>) -> Result<Option<i64>> {
        let state = ctx.state().extend()?;
        service::position(&state.db, &self.model).await.extend()
    }

    /// The hold made for you when OFFERED (and what it became afterwards).
    async fn offer(&self, ctx: &Context<'_>) -> Result<Option<Hold>> {
        let Some(hold_id) = self.model.offered_hold_id else {
            return Ok(None);
        };
        let state = ctx.state().extend()?;
        Ok(Some(
            find_own_hold(&state.db, self.model.user_id, hold_id)
                .await
                .extend()?
                .into(),
        ))
    }
}

/// What to wait for: a tier (`tierId`), or a reserved section of an event (`eventId` and `sectionId`).
#[derive(InputObject)]
pub struct JoinWaitlistInput {
    pub tier_id: Option<ID>,
    pub event_id: Option<ID>,
    pub section_id: Option<ID>,
    /// 1 to the event's per-buyer limit (at most 10).
    pub quantity: i32,
}

impl JoinWaitlistInput {
    fn target(&self) -> crate::error::AppResult<Target> {
        match (&self.tier_id, &self.event_id, &self.section_id) {
            (Some(tier), None, None) => Ok(Target::Tier(parse_id(tier, "tierId")?)),
            (None, Some(event), Some(section)) => Ok(Target::Section {
                event_id: parse_id(event, "eventId")?,
                section_id: parse_id(section, "sectionId")?,
            }),
            _ => Err(AppError::bad_input(
                "give either tierId, or eventId and sectionId",
            )),
        }
    }
}

#[derive(Default)]
pub struct WaitlistQuery;

#[Object]
impl WaitlistQuery {
    /// Your waitlist entries, newest first: open ones (WAITING, OFFERED), or all with `includeClosed`.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn my_waitlist_entries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_closed: bool,
    ) -> Result<Vec<WaitlistEntry>> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        Ok(
            service::entries_of(&state.db, viewer.user_id, include_closed)
                .await
                .extend()?
                .into_iter()
                .map(WaitlistEntry::from)
                .collect(),
        )
    }
}

#[derive(Default)]
pub struct WaitlistMutation;

#[Object]
impl WaitlistMutation {
    /// Joins the waitlist of a sold-out tier or reserved section. When tickets free up they are held
    /// for you (WAITLIST_CLAIM_SECONDS, 30 minutes by default) and you are notified. CONFLICT when enough
    /// are free right now, when you already have tickets of the tier, or are already waiting for it.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn join_waitlist(
        &self,
        ctx: &Context<'_>,
        input: JoinWaitlistInput,
    ) -> Result<WaitlistEntry> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let target = input.target().extend()?;
        Ok(service::join(
            &state.db,
            viewer.user_id,
            target,
            input.quantity,
            Utc::now(),
        )
        .await
        .extend()?
        .into())
    }

    /// Leaves a waitlist; an open offer is given back and passes to the next in line.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn leave_waitlist(&self, ctx: &Context<'_>, entry_id: ID) -> Result<WaitlistEntry> {
        let state = ctx.state().extend()?;
        let viewer = ctx.viewer().extend()?;
        let id = parse_id(&entry_id, "entryId").extend()?;
        let policy = state.config.hold_policy();
        let entry = service::leave(
            &state.db,
            policy.waitlist_claim,
            viewer.user_id,
            id,
            Utc::now(),
        )
        .await
        .extend()?;
        // Leaving with an offer frees its stock, which may have gone to the next entry at once.
        state
            .bus
            .publish(LiveMessage::InventoryChanged {
                event_id: entry.event_id,
            })
            .await;
        service::announce_offers(state, Utc::now()).await.extend()?;
        Ok(entry.into())
    }
}

/// Turns a SOLD_OUT refusal into a place on the tier's waitlist when the buyer asked for one: the
/// answer stays SOLD_OUT, with `extensions.waitlistEntryId` and `extensions.waitlistPosition`.
pub async fn join_if_sold_out(
    state: &AppState,
    user_id: Uuid,
    tier_id: Uuid,
    quantity: Quantity,
    refusal: AppError,
) -> async_graphql::Error {
    let sold_out = refusal.extend();
    if !matches!(refusal, AppError::SoldOut(_)) {
        return sold_out;
    }
    let now = Utc::now();
    let joined = match service::join(
        &state.db,
        user_id,
        Target::Tier(tier_id),
        quantity.get() as i32,
        now,
    )
    .await
    {
        Ok(entry) => Ok(entry),
        // A retry of the same request finds the entry the first attempt made.
        Err(AppError::Conflict(reason)) => {
            service::open_entry_for_tier(&state.db, user_id, tier_id)
                .await
                .and_then(|entry| entry.ok_or(AppError::Conflict(reason)))
        }
        Err(err) => Err(err),
    };
    match joined {
        Ok(entry) => {
            let position = service::position(&state.db, &entry).await.ok().flatten();
            sold_out.extend_with(|_, extensions| {
                extensions.set("waitlistEntryId", entry.id.to_string());
                if let Some(position) = position {
                    extensions.set("waitlistPosition", position);
                }
            })
        }
        Err(err) => sold_out.extend_with(|_, extensions| {
            extensions.set("waitlistRefusal", err.to_string());
        }),
    }
}

#[derive(Default)]
pub struct WaitlistSubscription;

#[Subscription]
impl WaitlistSubscription {
    /// Your waitlist entries as they are offered tickets (also a `waitlist_offer` notification).
    /// Authenticate in `connection_init`; without a token this is UNAUTHENTICATED.
    #[graphql(guard = "RoleGuard::SIGNED_IN")]
    async fn waitlist_promoted(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = WaitlistEntry> + use<>> {
        let state = ctx.state().extend()?;
        let user_id = ctx.viewer().extend()?.user_id;
        let mut messages = state.bus.subscribe();
        let db = state.db.clone();
        Ok(async_stream::stream! {
            loop {
                let entry_id = match messages.recv().await {
                    Ok(LiveMessage::WaitlistPromoted { user_id: owner, entry_id }) if owner == user_id => entry_id,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                match service::entry(&db, user_id, entry_id).await {
                    Ok(entry) => yield WaitlistEntry::from(entry),
                    Err(err) => tracing::warn!(error = %err, "could not load a promoted entry"),
                }
            }
        })
    }
}
