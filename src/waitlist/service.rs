//! Joining, leaving and listing waitlists, and the entry bookkeeping the booking paths call.

use chrono::{DateTime, Duration, Utc};
use entity::enums::{EventStatus, HoldStatus, OrderStatus, TicketStatus, TierKind, WaitlistStatus};
use entity::prelude::*;
use entity::{event, event_seat, event_section, order, ticket, ticket_tier, waitlist_entry};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::booking::sweeper::end_holds;
use crate::error::{AppError, AppResult, ConstraintRule};
use crate::live::{LiveMessage, OrderUpdateKind};
use crate::state::AppState;

/// What a waitlist entry waits for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Any tickets of a tier (general admission, or any seats of a reserved tier).
    Tier(Uuid),
    /// Seats in one reserved section of an event.
    Section { event_id: Uuid, section_id: Uuid },
}

const ALREADY_WAITING: ConstraintRule = ConstraintRule {
    name: "waitlist_entries_one_open_per_tier",
    sqlite_columns: "waitlist_entries.user_id, waitlist_entries.tier_id",
    error: || AppError::Conflict("you are already on this waitlist".into()),
};

const ALREADY_WAITING_FOR_SECTION: ConstraintRule = ConstraintRule {
    name: "waitlist_entries_one_open_per_section",
    sqlite_columns: "waitlist_entries.user_id, waitlist_entries.section_id",
    error: || AppError::Conflict("you are already on this waitlist".into()),
};

/// Puts the user on a waitlist. Refused when the stock asked for is free right now (hold it instead),
/// when the user already has tickets of that tier, or is already waiting for the same thing.
pub async fn join(
    db: &DatabaseConnection,
    user_id: Uuid,
    target: Target,
    quantity: i32,
    now: DateTime<Utc>,
) -> AppResult<waitlist_entry::Model> {
    let (tier, section_id) = resolve(db, target).await?;
    let event = Event::find_by_id(tier.event_id)
        .one(db)
        .await?
        .filter(|e| e.status != EventStatus::Draft)
        .ok_or(AppError::NotFound("event"))?;
    if event.status != EventStatus::OnSale || event.ends_at <= now {
        return Err(AppError::Conflict("the event is not on sale".into()));
    }
    let most = std::cmp::min(event.max_tickets_per_user, 10);
    if !(1..=most).contains(&quantity) {
        return Err(AppError::bad_input(format!("quantity must be 1 to {most}")));
    }
    if free_stock(db, &tier, section_id).await? >= i64::from(quantity) {
        return Err(AppError::Conflict(
            "enough tickets are available right now: hold them instead".into(),
        ));
    }
    if has_tickets(db, user_id, tier.id).await? {
        return Err(AppError::Conflict(
            "you already have tickets of this tier".into(),
        ));
    }
    let entry = waitlist_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        event_id: Set(event.id),
        tier_id: Set(section_id.is_none().then_some(tier.id)),
        section_id: Set(section_id),
        quantity: Set(quantity),
        status: Set(WaitlistStatus::Waiting),
        offered_hold_id: Set(None),
        offer_expires_at: Set(None),
        offer_announced_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    entry.insert(db).await.map_err(|err| {
        AppError::on_constraint(err, &[ALREADY_WAITING, ALREADY_WAITING_FOR_SECTION])
    })
}

/// The tier a target sells from, and the section for a section target.
async fn resolve(
    db: &impl ConnectionTrait,
    target: Target,
) -> AppResult<(ticket_tier::Model, Option<Uuid>)> {
    let (tier_id, section_id) = match target {
        Target::Tier(tier_id) => (tier_id, None),
        Target::Section {
            event_id,
            section_id,
        } => {
            let sold_as = EventSection::find()
                .filter(event_section::Column::EventId.eq(event_id))
                .filter(event_section::Column::SectionId.eq(section_id))
                .one(db)
                .await?
                .ok_or(AppError::NotFound("section"))?;
            (sold_as.tier_id, Some(section_id))
        }
    };
    let tier = TicketTier::find_by_id(tier_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("ticket tier"))?;
    if section_id.is_some() && tier.kind != TierKind::Reserved {
        return Err(AppError::bad_input(
            "a standing section is sold by its tier: join the tier's waitlist",
        ));
    }
    Ok((tier, section_id))
}

async fn free_stock(
    db: &impl ConnectionTrait,
    tier: &ticket_tier::Model,
    section_id: Option<Uuid>,
) -> AppResult<i64> {
    if tier.kind == TierKind::GeneralAdmission {
        return Ok(i64::from(tier.available));
    }
    let mut free = EventSeat::find()
        .filter(event_seat::Column::EventId.eq(tier.event_id))
        .filter(crate::booking::service::seat_is_free());
    free = match section_id {
        Some(section_id) => free.filter(event_seat::Column::SectionId.eq(section_id)),
        None => free.filter(event_seat::Column::TierId.eq(tier.id)),
    };
    Ok(i64::try_from(free.count(db).await?).unwrap_or(i64::MAX))
}

async fn has_tickets(db: &impl ConnectionTrait, user_id: Uuid, tier_id: Uuid) -> AppResult<bool> {
    let count = Ticket::find()
        .filter(ticket::Column::TierId.eq(tier_id))
        .filter(ticket::Column::Status.eq(TicketStatus::Valid))
        .filter(
            ticket::Column::OrderId.in_subquery(
                Query::select()
                    .column(order::Column::Id)
                    .from(Order)
                    .and_where(Expr::col(order::Column::UserId).eq(user_id))
                    .and_where(Expr::col(order::Column::Status).eq(OrderStatus::Paid.as_str()))
                    .to_owned(),
            ),
        )
        .count(db)
        .await?;
    Ok(count > 0)
}

/// Takes the user off a waitlist. An open offer is given back (its stock goes to the next entry).
pub async fn leave(
    db: &DatabaseConnection,
    claim_window: Duration,
    user_id: Uuid,
    entry_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<waitlist_entry::Model> {
    let mine = entry(db, user_id, entry_id).await?;
    let left = WaitlistEntry::update_many()
        .col_expr(
            waitlist_entry::Column::Status,
            Expr::value(WaitlistStatus::Left.as_str()),
        )
        .col_expr(waitlist_entry::Column::UpdatedAt, Expr::value(now))
        .filter(waitlist_entry::Column::Id.eq(mine.id))
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Waiting))
        .exec(db)
        .await?;
    if left.rows_affected == 0 {
        // Offered meanwhile (or already closed): an offer ends with its hold, which closes the entry.
        let now_is = entry(db, user_id, entry_id).await?;
        match (now_is.status, now_is.offered_hold_id) {
            (WaitlistStatus::Offered, Some(hold_id)) => {
                end_holds(db, &[hold_id], HoldStatus::Released, claim_window, now).await?;
            }
            _ => {
                return Err(AppError::Conflict(
                    "you are no longer on this waitlist".into(),
                ));
            }
        }
    }
    entry(db, user_id, entry_id).await
}

/// The user's open (waiting or offered) entry for a tier, if any.
pub async fn open_entry_for_tier(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    tier_id: Uuid,
) -> AppResult<Option<waitlist_entry::Model>> {
    Ok(WaitlistEntry::find()
        .filter(waitlist_entry::Column::UserId.eq(user_id))
        .filter(waitlist_entry::Column::TierId.eq(tier_id))
        .filter(
            waitlist_entry::Column::Status
                .is_in([WaitlistStatus::Waiting, WaitlistStatus::Offered]),
        )
        .one(db)
        .await?)
}

/// One of the user's entries; another user's is NOT_FOUND.
pub async fn entry(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    entry_id: Uuid,
) -> AppResult<waitlist_entry::Model> {
    WaitlistEntry::find_by_id(entry_id)
        .one(db)
        .await?
        .filter(|entry| entry.user_id == user_id)
        .ok_or(AppError::NotFound("waitlist entry"))
}

/// The user's entries, newest first; closed ones only with `include_closed`.
pub async fn entries_of(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    include_closed: bool,
) -> AppResult<Vec<waitlist_entry::Model>> {
    let mut query = WaitlistEntry::find()
        .filter(waitlist_entry::Column::UserId.eq(user_id))
        .order_by_desc(waitlist_entry::Column::CreatedAt);
    if !include_closed {
        query = query.filter(
            waitlist_entry::Column::Status
                .is_in([WaitlistStatus::Waiting, WaitlistStatus::Offered]),
        );
    }
    Ok(query.all(db).await?)
}

/// 1 for the next entry to be served, for a waiting entry; `None` otherwise.
pub async fn position(
    db: &impl ConnectionTrait,
    entry: &waitlist_entry::Model,
) -> AppResult<Option<i64>> {
    if entry.status != WaitlistStatus::Waiting {
        return Ok(None);
    }
    let same_target = match (entry.tier_id, entry.section_id) {
        (Some(tier), _) => waitlist_entry::Column::TierId.eq(tier),
        (None, Some(section)) => waitlist_entry::Column::SectionId.eq(section),
        (None, None) => return Ok(None),
    };
    let ahead = WaitlistEntry::find()
        .filter(waitlist_entry::Column::EventId.eq(entry.event_id))
        .filter(same_target)
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Waiting))
        .filter(
            Condition::any()
                .add(waitlist_entry::Column::CreatedAt.lt(entry.created_at))
                .add(
                    Condition::all()
                        .add(waitlist_entry::Column::CreatedAt.eq(entry.created_at))
                        .add(waitlist_entry::Column::Id.lt(entry.id)),
                ),
        )
        .count(db)
        .await?;
    Ok(Some(i64::try_from(ahead).unwrap_or(i64::MAX - 1) + 1))
}

/// Closes the entries whose offer holds just ended (in the caller's transaction): an offer that ran
/// out is `expired`, one given back is `left`.
pub async fn close_offers(
    txn: &DatabaseTransaction,
    hold_ids: &[Uuid],
    hold_status: HoldStatus,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if hold_ids.is_empty() {
        return Ok(());
    }
    let status = match hold_status {
        HoldStatus::Expired => WaitlistStatus::Expired,
        HoldStatus::Converted => WaitlistStatus::Claimed,
        HoldStatus::Released | HoldStatus::Active => WaitlistStatus::Left,
    };
    WaitlistEntry::update_many()
        .col_expr(waitlist_entry::Column::Status, Expr::value(status.as_str()))
        .col_expr(waitlist_entry::Column::UpdatedAt, Expr::value(now))
        .filter(waitlist_entry::Column::OfferedHoldId.is_in(hold_ids.iter().copied()))
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Offered))
        .exec(txn)
        .await?;
    Ok(())
}

/// Closes every open entry of a cancelled event (in the caller's transaction).
pub async fn cancel_for_event(
    txn: &DatabaseTransaction,
    event: &event::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    WaitlistEntry::update_many()
        .col_expr(
            waitlist_entry::Column::Status,
            Expr::value(WaitlistStatus::Cancelled.as_str()),
        )
        .col_expr(waitlist_entry::Column::UpdatedAt, Expr::value(now))
        .filter(waitlist_entry::Column::EventId.eq(event.id))
        .filter(
            waitlist_entry::Column::Status
                .is_in([WaitlistStatus::Waiting, WaitlistStatus::Offered]),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// Pushes each new offer to its buyer once: a notification and `waitlistPromoted` for the entry, and
/// `orderUpdated` for the hold. The conditional UPDATE claims the announcements, so with several
/// instances sweeping each offer is announced by one of them.
pub async fn announce_offers(state: &AppState, now: DateTime<Utc>) -> AppResult<()> {
    let offered = WaitlistEntry::update_many()
        .col_expr(waitlist_entry::Column::OfferAnnouncedAt, Expr::value(now))
        .filter(waitlist_entry::Column::OfferAnnouncedAt.is_null())
        .filter(waitlist_entry::Column::Status.eq(WaitlistStatus::Offered))
        .exec_with_returning(&state.db)
        .await?;
    for entry in offered {
        state
            .bus
            .publish(LiveMessage::NotificationsChanged {
                user_id: entry.user_id,
            })
            .await;
        state
            .bus
            .publish(LiveMessage::WaitlistPromoted {
                user_id: entry.user_id,
                entry_id: entry.id,
            })
            .await;
        state
            .bus
            .publish(LiveMessage::OrderUpdated {
                user_id: entry.user_id,
                event_id: entry.event_id,
                kind: OrderUpdateKind::HoldCreated,
                hold_id: entry.offered_hold_id,
                order_id: None,
            })
            .await;
    }
    Ok(())
}
