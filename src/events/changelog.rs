//! The per-event change log behind the live seat map.
//!
//! Every transaction that changes an event's inventory calls [`record`] last (after seats and tiers,
//! the lock order): it increments the event's sequence number and logs each changed seat's new status
//! under it. The sequence row stays locked until commit, so sequence order is commit order; a reader of
//! the log sees every change exactly once, in order, and can resume from any number it was given.

use chrono::{DateTime, Utc};
use entity::enums::SeatStatus;
use entity::prelude::*;
use entity::{event_sequence, seat_change};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// A seat's status after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatState {
    pub seq: i64,
    pub seat_id: Uuid,
    pub status: SeatStatus,
    pub tier_id: Uuid,
}

/// Each seat's last state among `changes` (given in sequence order), in the order of those last
/// states. A seat's change is its whole new status, so a client that applies only the last one of a
/// run ends where it would have applying them all: this is how a burst of changes to the same
/// seats becomes one short message.
pub fn latest_per_seat(changes: impl IntoIterator<Item = SeatState>) -> Vec<SeatState> {
    let changes: Vec<SeatState> = changes.into_iter().collect();
    let mut last = std::collections::HashMap::with_capacity(changes.len());
    for (at, change) in changes.iter().enumerate() {
        last.insert(change.seat_id, at);
    }
    if last.len() == changes.len() {
        return changes;
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(at, change)| last.get(&change.seat_id) == Some(at))
        .map(|(_, change)| change)
        .collect()
}

#[derive(FromQueryResult)]
struct SeqRow {
    seq: i64,
}

/// Starts an event's sequence at 0 (when the event is created).
pub async fn start(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<()> {
    EventSequence::insert(event_sequence::ActiveModel {
        event_id: Set(event_id),
        seq: Set(0),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Logs a change of `event_id`'s inventory in the caller's transaction; `seats` are (seat, new status,
/// tier). General-admission changes log no seats but still take a number, so subscribers hear of them.
pub async fn record(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    seats: &[(Uuid, SeatStatus, Uuid)],
    now: DateTime<Utc>,
) -> AppResult<i64> {
    let update = Query::update()
        .table(EventSequence)
        .value(
            event_sequence::Column::Seq,
            Expr::col(event_sequence::Column::Seq).add(1),
        )
        .and_where(Expr::col(event_sequence::Column::EventId).eq(event_id))
        .returning_col(event_sequence::Column::Seq)
        .to_owned();
    let seq = SeqRow::find_by_statement(db.get_database_backend().build(&update))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event sequence"))?
        .seq;
    let rows: Vec<seat_change::ActiveModel> = seats
        .iter()
        .map(|(seat_id, status, tier_id)| seat_change::ActiveModel {
            event_id: Set(event_id),
            seq: Set(seq),
            seat_id: Set(*seat_id),
            status: Set(*status),
            tier_id: Set(*tier_id),
            changed_at: Set(now),
        })
        .collect();
    crate::db::insert_all(db, rows).await?;
    Ok(seq)
}

/// The event's current sequence number.
pub async fn current_seq(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<i64> {
    Ok(EventSequence::find_by_id(event_id)
        .one(db)
        .await?
        .map_or(0, |row| row.seq))
}

/// Changes after `since` up to and including `until`, in sequence order.
pub async fn changes_between(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    since: i64,
    until: i64,
) -> AppResult<Vec<SeatState>> {
    Ok(SeatChange::find()
        .filter(seat_change::Column::EventId.eq(event_id))
        .filter(seat_change::Column::Seq.gt(since))
        .filter(seat_change::Column::Seq.lte(until))
        .order_by_asc(seat_change::Column::Seq)
        .order_by_asc(seat_change::Column::SeatId)
        .all(db)
        .await?
        .into_iter()
        .map(|row| SeatState {
            seq: row.seq,
            seat_id: row.seat_id,
            status: row.status,
            tier_id: row.tier_id,
        })
        .collect())
}

/// The oldest sequence number still in the log for the event (older ones were pruned); 0 if none.
pub async fn oldest_seq(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<Option<i64>> {
    Ok(SeatChange::find()
        .select_only()
        .column_as(seat_change::Column::Seq.min(), "seq")
        .filter(seat_change::Column::EventId.eq(event_id))
        .into_model::<OptionalSeq>()
        .one(db)
        .await?
        .and_then(|row| row.seq))
}

#[derive(FromQueryResult)]
struct OptionalSeq {
    seq: Option<i64>,
}

/// Forgets log entries older than `before`; clients resuming from before that get a fresh snapshot.
pub async fn prune(db: &impl ConnectionTrait, before: DateTime<Utc>) -> AppResult<u64> {
    Ok(SeatChange::delete_many()
        .filter(seat_change::Column::ChangedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seat: u128, status: SeatStatus, seq: i64) -> SeatState {
        SeatState {
            seq,
            seat_id: Uuid::from_u128(seat),
            status,
            tier_id: Uuid::nil(),
        }
    }

    #[test]
    fn a_run_of_changes_keeps_each_seats_last_state() {
        let merged = latest_per_seat(vec![
            change(1, SeatStatus::Held, 1),
            change(2, SeatStatus::Held, 1),
            change(1, SeatStatus::Sold, 2),
            change(2, SeatStatus::Available, 3),
            change(3, SeatStatus::Held, 3),
        ]);
        assert_eq!(
            merged,
            vec![
                change(1, SeatStatus::Sold, 2),
                change(2, SeatStatus::Available, 3),
                change(3, SeatStatus::Held, 3),
            ]
        );
    }
}
