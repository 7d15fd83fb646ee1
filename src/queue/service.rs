//! The waiting room: joining, positions, paced admission, and what each shopper sees.
//!
//! State lives in the database (`event_queues`, `queue_entries`), so it survives restarts and every
//! instance sees the same queue. Joins lock the event's queue row to take the next position, which
//! makes positions unique and contiguous. Arrivals before the on-sale (the pre-queue) get a random
//! `shuffle_key` and no position; at the on-sale the first join or admission pass numbers them in
//! `shuffle_key` order, once, before anyone who arrives later.
//!
//! Admission: by `t` seconds after the on-sale at most `rate * (t + 60) / 60` shoppers have been let
//! in (the first minute's quota at once, then `rate` per minute), and never more than the event's cap
//! are shopping (admitted with an unexpired pass) at the same time.

use chrono::{DateTime, Duration, Utc};
use entity::enums::{EventStatus, QueueStatus};
use entity::prelude::*;
use entity::{event, event_queue, queue_entry};
use rand::Rng;
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set, Statement,
    TransactionTrait,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::db::is_postgres;
use crate::error::{AppError, AppResult};
use crate::events::manage::find_managed_event;

/// Waiting-room timing, from Config.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    /// How long an admitted shopper's pass lasts.
    pub pass_ttl: Duration,
    /// How long before the on-sale the pre-queue opens.
    pub opens_before_sale: Duration,
}

/// A shopper's place, as shown to them.
#[derive(Debug, Clone)]
pub struct Place {
    pub entry: queue_entry::Model,
    pub opens_at: DateTime<Utc>,
    /// Positions between the last one admitted and this one (an upper bound: some may have left).
    pub ahead: Option<i64>,
    pub estimated_wait: Option<Duration>,
}

/// Queue figures for the organizer.
#[derive(Debug, Clone)]
pub struct QueueStats {
    pub waiting: u64,
    pub shopping: u64,
    pub admitted_total: i64,
    pub left: u64,
    pub expired: u64,
    pub last_position: i64,
    pub admitted_through: i64,
    pub admission_rate_per_minute: i32,
    pub max_active_shoppers: i32,
}

async fn waiting_room_event(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<event::Model> {
    let event = Event::find_by_id(event_id)
        .one(db)
        .await?
        .filter(|e| e.status != EventStatus::Draft)
        .ok_or(AppError::NotFound("event"))?;
    if !event.waiting_room_required {
        return Err(AppError::Conflict(
            "this event has no waiting room: book directly".into(),
        ));
    }
    if event.status == EventStatus::Cancelled {
        return Err(AppError::Conflict("the event is cancelled".into()));
    }
    if event.ends_at <= now {
        return Err(AppError::Conflict("the event is over".into()));
    }
    Ok(event)
}

/// Puts the user in the event's waiting room, or returns their place if they already have one. Someone
/// who left, or whose pass expired, joins again at the back. When this join numbered the pre-queue,
/// also returns how far admission has got, for announcing the move.
pub async fn join(
    db: &DatabaseConnection,
    policy: &QueuePolicy,
    user_id: Uuid,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<(queue_entry::Model, Option<i64>)> {
    let event = waiting_room_event(db, event_id, now).await?;
    let opens_at = event.sale_starts_at - policy.opens_before_sale;
    if now < opens_at {
        return Err(AppError::Conflict(format!(
            "the waiting room opens at {}",
            opens_at.to_rfc3339()
        )));
    }
    let existing = find_entry(db, user_id, event_id).await?;
    if let Some(entry) = &existing
        && is_current(entry, now)
    {
        return Ok((entry.clone(), None));
    }

    let txn = db.begin().await?;
    let mut queue = lock_queue(&txn, event_id, now, false)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("queue row vanished")))?;
    let on_sale = now >= event.sale_starts_at;
    let shuffled = on_sale && queue.shuffled_at.is_none();
    if shuffled {
        shuffle_pre_queue(&txn, &mut queue, now).await?;
    }
    let position = on_sale.then(|| {
        queue.last_position += 1;
        queue.last_position
    });
    let shuffle_key = rand::rng().random::<i64>();
    let entry = match existing {
        Some(entry) => {
            let mut again: queue_entry::ActiveModel = entry.into();
            again.status = Set(QueueStatus::Waiting);
            again.joined_at = Set(now);
            again.shuffle_key = Set(shuffle_key);
            again.position = Set(position);
            again.admitted_at = Set(None);
            again.pass_expires_at = Set(None);
            again.update(&txn).await?
        }
        None => {
            let fresh = queue_entry::ActiveModel {
                id: Set(Uuid::now_v7()),
                event_id: Set(event_id),
                user_id: Set(user_id),
                status: Set(QueueStatus::Waiting),
                joined_at: Set(now),
                shuffle_key: Set(shuffle_key),
                position: Set(position),
                admitted_at: Set(None),
                pass_expires_at: Set(None),
            };
            match fresh.insert(&txn).await {
                Ok(entry) => entry,
                // The same user joining twice at once: the other request's entry stands.
                Err(_) => {
                    txn.rollback().await?;
                    let entry = find_entry(db, user_id, event_id)
                        .await?
                        .ok_or(AppError::Conflict("please try again".into()))?;
                    return Ok((entry, None));
                }
            }
        }
    };
    let numbered = shuffled.then_some(queue.admitted_through);
    save_queue(&txn, queue, now).await?;
    txn.commit().await?;
    Ok((entry, numbered))
}

fn is_current(entry: &queue_entry::Model, now: DateTime<Utc>) -> bool {
    match entry.status {
        QueueStatus::Waiting => true,
        QueueStatus::Admitted => entry.pass_expires_at.is_some_and(|until| until > now),
        QueueStatus::Left | QueueStatus::Expired => false,
    }
}

async fn find_entry(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    event_id: Uuid,
) -> AppResult<Option<queue_entry::Model>> {
    Ok(QueueEntry::find()
        .filter(queue_entry::Column::EventId.eq(event_id))
        .filter(queue_entry::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// Locks the event's queue row, creating it first if needed. With `skip_locked`, `None` means another
/// instance holds it.
async fn lock_queue(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    now: DateTime<Utc>,
    skip_locked: bool,
) -> AppResult<Option<event_queue::Model>> {
    EventQueue::insert(event_queue::ActiveModel {
        event_id: Set(event_id),
        last_position: Set(0),
        admitted_count: Set(0),
        admitted_through: Set(0),
        shuffled_at: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(event_queue::Column::EventId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let mut query = EventQueue::find_by_id(event_id);
    if is_postgres(txn) {
        query = if skip_locked {
            query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        } else {
            query.lock_exclusive()
        };
    }
    Ok(query.one(txn).await?)
}

async fn save_queue(
    txn: &DatabaseTransaction,
    queue: event_queue::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut active: event_queue::ActiveModel = queue.into();
    active.last_position = Set(*active.last_position.as_ref());
    active.admitted_count = Set(*active.admitted_count.as_ref());
    active.admitted_through = Set(*active.admitted_through.as_ref());
    active.shuffled_at = Set(*active.shuffled_at.as_ref());
    active.updated_at = Set(now);
    active.update(txn).await?;
    Ok(())
}

/// Numbers the pre-queue in random (`shuffle_key`) order after the positions already handed out.
async fn shuffle_pre_queue(
    txn: &DatabaseTransaction,
    queue: &mut event_queue::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let backend = txn.get_database_backend();
    let (event_param, base_param) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    let sql = format!(
        "UPDATE queue_entries SET position = {base_param} + ranked.n \
         FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY shuffle_key, id) AS n FROM queue_entries \
               WHERE event_id = {event_param} AND status = 'waiting' AND position IS NULL) AS ranked \
         WHERE queue_entries.id = ranked.id"
    );
    let numbered = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [queue.event_id.into(), queue.last_position.into()],
        ))
        .await?
        .rows_affected();
    queue.last_position += i64::try_from(numbered).unwrap_or(0);
    queue.shuffled_at = Some(now);
    Ok(())
}

/// One admission pass over one event's waiting room (run by the sweeper on every instance; the
/// queue row lock lets one of them at a time through). Returns the queue afterwards when anything
/// moved, for the caller to announce.
pub async fn admit(
    db: &DatabaseConnection,
    policy: &QueuePolicy,
    event: &event::Model,
    now: DateTime<Utc>,
) -> AppResult<Option<event_queue::Model>> {
    if now < event.sale_starts_at || !event.waiting_room_required {
        return Ok(None);
    }
    let txn = db.begin().await?;
    let Some(mut queue) = lock_queue(&txn, event.id, now, true).await? else {
        return Ok(None);
    };
    let mut moved = false;
    if queue.shuffled_at.is_none() {
        shuffle_pre_queue(&txn, &mut queue, now).await?;
        moved = true;
    }
    let expired = QueueEntry::update_many()
        .col_expr(
            queue_entry::Column::Status,
            Expr::value(QueueStatus::Expired.as_str()),
        )
        .filter(queue_entry::Column::EventId.eq(event.id))
        .filter(queue_entry::Column::Status.eq(QueueStatus::Admitted))
        .filter(queue_entry::Column::PassExpiresAt.lte(now))
        .exec(&txn)
        .await?
        .rows_affected;
    moved |= expired > 0;
    let shopping = QueueEntry::find()
        .filter(queue_entry::Column::EventId.eq(event.id))
        .filter(queue_entry::Column::Status.eq(QueueStatus::Admitted))
        .count(&txn)
        .await?;
    let budget = admission_budget(event, &queue, shopping, now);
    if budget > 0 {
        let next = Query::select()
            .column(queue_entry::Column::Id)
            .from(QueueEntry)
            .and_where(queue_entry::Column::EventId.eq(event.id))
            .and_where(queue_entry::Column::Status.eq(QueueStatus::Waiting))
            .and_where(queue_entry::Column::Position.is_not_null())
            .order_by(queue_entry::Column::Position, sea_orm::Order::Asc)
            .limit(budget)
            .to_owned();
        let admitted = QueueEntry::update_many()
            .col_expr(
                queue_entry::Column::Status,
                Expr::value(QueueStatus::Admitted.as_str()),
            )
            .col_expr(queue_entry::Column::AdmittedAt, Expr::value(now))
            .col_expr(
                queue_entry::Column::PassExpiresAt,
                Expr::value(now + policy.pass_ttl),
            )
            .filter(queue_entry::Column::Id.in_subquery(next))
            .exec_with_returning(&txn)
            .await?;
        if let Some(last) = admitted.iter().filter_map(|e| e.position).max() {
            queue.admitted_through = queue.admitted_through.max(last);
        }
        queue.admitted_count += i64::try_from(admitted.len()).unwrap_or(0);
        moved |= !admitted.is_empty();
    }
    if !moved {
        txn.rollback().await?;
        return Ok(None);
    }
    save_queue(&txn, queue.clone(), now).await?;
    txn.commit().await?;
    Ok(Some(queue))
}

/// How many more shoppers may be let in now: what the rate allows since the on-sale, within the cap.
fn admission_budget(
    event: &event::Model,
    queue: &event_queue::Model,
    shopping: u64,
    now: DateTime<Utc>,
) -> u64 {
    let elapsed = (now - event.sale_starts_at).num_seconds().max(0);
    let rate = i64::from(event.admission_rate_per_minute);
    let allowed_so_far = rate.saturating_mul(elapsed.saturating_add(60)) / 60;
    let by_rate = allowed_so_far.saturating_sub(queue.admitted_count).max(0);
    let by_cap = i64::from(event.max_active_shoppers)
        .saturating_sub(i64::try_from(shopping).unwrap_or(i64::MAX));
    u64::try_from(by_rate.min(by_cap).max(0)).unwrap_or(0)
}

/// Events whose waiting rooms are open for admission now.
pub async fn admitting_events(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<Vec<event::Model>> {
    let queued: Vec<Uuid> = EventQueue::find()
        .select_only()
        .column(event_queue::Column::EventId)
        .into_tuple()
        .all(db)
        .await?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Event::find()
        .filter(event::Column::Id.is_in(queued))
        .filter(event::Column::Status.eq(EventStatus::OnSale))
        .filter(event::Column::WaitingRoomRequired.eq(true))
        .filter(event::Column::SaleStartsAt.lte(now))
        .filter(event::Column::EndsAt.gt(now))
        .all(db)
        .await?)
}

/// The user's place in the event's waiting room.
pub async fn place(db: &impl ConnectionTrait, user_id: Uuid, event_id: Uuid) -> AppResult<Place> {
    let entry = find_entry(db, user_id, event_id)
        .await?
        .ok_or(AppError::NotFound("queue ticket"))?;
    let event = Event::find_by_id(event_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))?;
    let admitted_through = EventQueue::find_by_id(event_id)
        .one(db)
        .await?
        .map_or(0, |q| q.admitted_through);
    Ok(place_of(entry, &event, admitted_through))
}

/// A place computed from the entry and how far admission has got, without reading anything.
pub fn place_of(entry: queue_entry::Model, event: &event::Model, admitted_through: i64) -> Place {
    let ahead = match (entry.status, entry.position) {
        (QueueStatus::Waiting, Some(position)) => Some((position - admitted_through - 1).max(0)),
        _ => None,
    };
    let rate = i64::from(event.admission_rate_per_minute.max(1));
    let estimated_wait = ahead.map(|ahead| {
        let minutes_of_queue = (ahead + 1) * 60;
        let seconds = (minutes_of_queue + rate - 1) / rate;
        // Before the on-sale nobody is let in: the wait starts then.
        let until_sale = (event.sale_starts_at - Utc::now()).num_seconds().max(0);
        Duration::seconds(seconds + until_sale)
    });
    Place {
        entry,
        opens_at: event.sale_starts_at,
        ahead,
        estimated_wait,
    }
}

/// Leaves the waiting room (waiting, or admitted: the pass then stops counting against the cap).
pub async fn leave(
    db: &DatabaseConnection,
    user_id: Uuid,
    event_id: Uuid,
) -> AppResult<queue_entry::Model> {
    let left = QueueEntry::update_many()
        .col_expr(
            queue_entry::Column::Status,
            Expr::value(QueueStatus::Left.as_str()),
        )
        .filter(queue_entry::Column::EventId.eq(event_id))
        .filter(queue_entry::Column::UserId.eq(user_id))
        .filter(queue_entry::Column::Status.is_in([QueueStatus::Waiting, QueueStatus::Admitted]))
        .exec(db)
        .await?;
    let entry = find_entry(db, user_id, event_id)
        .await?
        .ok_or(AppError::NotFound("queue ticket"))?;
    if left.rows_affected == 0 {
        return Err(AppError::Conflict(
            "you are not in this waiting room".into(),
        ));
    }
    Ok(entry)
}

/// The organizer's view of a waiting room.
pub async fn stats(
    db: &DatabaseConnection,
    viewer: &Viewer,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<QueueStats> {
    let event = find_managed_event(db, viewer, event_id).await?;
    let count = |status: QueueStatus| {
        QueueEntry::find()
            .filter(queue_entry::Column::EventId.eq(event_id))
            .filter(queue_entry::Column::Status.eq(status))
    };
    let queue = EventQueue::find_by_id(event_id).one(db).await?;
    Ok(QueueStats {
        waiting: count(QueueStatus::Waiting).count(db).await?,
        shopping: count(QueueStatus::Admitted)
            .filter(queue_entry::Column::PassExpiresAt.gt(now))
            .count(db)
            .await?,
        admitted_total: queue.as_ref().map_or(0, |q| q.admitted_count),
        left: count(QueueStatus::Left).count(db).await?,
        expired: count(QueueStatus::Expired).count(db).await?
            + count(QueueStatus::Admitted)
                .filter(queue_entry::Column::PassExpiresAt.lte(now))
                .count(db)
                .await?,
        last_position: queue.as_ref().map_or(0, |q| q.last_position),
        admitted_through: queue.as_ref().map_or(0, |q| q.admitted_through),
        admission_rate_per_minute: event.admission_rate_per_minute,
        max_active_shoppers: event.max_active_shoppers,
    })
}

/// Every waiting room at once, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTotals {
    pub waiting: u64,
    pub shopping: u64,
    pub admitted: i64,
}

/// Shoppers waiting and shopping across all events, and everyone admitted so far.
pub async fn totals(db: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<QueueTotals> {
    let with_status =
        |status: QueueStatus| QueueEntry::find().filter(queue_entry::Column::Status.eq(status));
    // One row per event with a waiting room: few enough to add up here, and no SUM type differences
    // between PostgreSQL (numeric) and SQLite.
    let admitted: Vec<i64> = EventQueue::find()
        .select_only()
        .column(event_queue::Column::AdmittedCount)
        .into_tuple()
        .all(db)
        .await?;
    Ok(QueueTotals {
        waiting: with_status(QueueStatus::Waiting).count(db).await?,
        shopping: with_status(QueueStatus::Admitted)
            .filter(queue_entry::Column::PassExpiresAt.gt(now))
            .count(db)
            .await?,
        admitted: admitted.iter().sum(),
    })
}
