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
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, Set,
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
/// tier). General-admission changes log no seats but still take a number (and an entry), so
/// subscribers hear of them and readers can tell them from pruned ones.
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
    SeatChange::insert(seat_change::ActiveModel {
        event_id: Set(event_id),
        seq: Set(seq),
        seats: Set(pack(seats)),
        changed_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(seq)
}

/// The event's current sequence number.
pub async fn current_seq(db: &impl ConnectionTrait, event_id: Uuid) -> AppResult<i64> {
    Ok(EventSequence::find_by_id(event_id)
        .one(db)
        .await?
        .map_or(0, |row| row.seq))
}

/// What the log still holds of a range of changes.
#[derive(Debug)]
pub struct Logged {
    /// The seats changed, in sequence order (within a change, in the order it logged them).
    pub seats: Vec<SeatState>,
    /// Every change of the range is here: none was pruned (or made before the log kept an entry for
    /// each change). Only then do `seats` say everything that happened.
    pub complete: bool,
}

/// Changes after `since` up to and including `until`.
pub async fn changes_between(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    since: i64,
    until: i64,
) -> AppResult<Logged> {
    let changes = SeatChange::find()
        .filter(seat_change::Column::EventId.eq(event_id))
        .filter(seat_change::Column::Seq.gt(since))
        .filter(seat_change::Column::Seq.lte(until))
        .order_by_asc(seat_change::Column::Seq)
        .all(db)
        .await?;
    let complete = i64::try_from(changes.len()).is_ok_and(|logged| logged == until - since);
    let mut seats = Vec::new();
    for change in changes {
        unpack(&change.seats, change.seq, &mut seats)?;
    }
    Ok(Logged { seats, complete })
}

/// Bytes per seat in a packed change: the seat's id, its status, its tier's id.
const PACKED_SEAT: usize = 16 + 1 + 16;

fn pack(seats: &[(Uuid, SeatStatus, Uuid)]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(seats.len() * PACKED_SEAT);
    for (seat, status, tier) in seats {
        packed.extend_from_slice(seat.as_bytes());
        packed.push(match status {
            SeatStatus::Available => b'a',
            SeatStatus::Held => b'h',
            SeatStatus::Sold => b's',
        });
        packed.extend_from_slice(tier.as_bytes());
    }
    packed
}

fn unpack(packed: &[u8], seq: i64, into: &mut Vec<SeatState>) -> AppResult<()> {
    let corrupt = || AppError::Internal(anyhow::anyhow!("change {seq} of the seat log is corrupt"));
    if packed.len() % PACKED_SEAT != 0 {
        return Err(corrupt());
    }
    for seat in packed.chunks_exact(PACKED_SEAT) {
        let (seat_id, rest) = seat.split_at(16);
        let (status, tier_id) = rest.split_at(1);
        let status = match status[0] {
            b'a' => SeatStatus::Available,
            b'h' => SeatStatus::Held,
            b's' => SeatStatus::Sold,
            _ => return Err(corrupt()),
        };
        into.push(SeatState {
            seq,
            seat_id: Uuid::from_slice(seat_id).map_err(|_| corrupt())?,
            status,
            tier_id: Uuid::from_slice(tier_id).map_err(|_| corrupt())?,
        });
    }
    Ok(())
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
    fn a_packed_change_unpacks_to_its_seats_in_order() {
        let seats = [
            (Uuid::from_u128(9), SeatStatus::Held, Uuid::from_u128(1)),
            (Uuid::from_u128(3), SeatStatus::Sold, Uuid::from_u128(2)),
            (
                Uuid::from_u128(5),
                SeatStatus::Available,
                Uuid::from_u128(1),
            ),
        ];
        let mut unpacked = Vec::new();
        unpack(&pack(&seats), 7, &mut unpacked).expect("unpacks");
        let expected: Vec<SeatState> = seats
            .iter()
            .map(|(seat_id, status, tier_id)| SeatState {
                seq: 7,
                seat_id: *seat_id,
                status: *status,
                tier_id: *tier_id,
            })
            .collect();
        assert_eq!(unpacked, expected);
        unpack(&pack(&[]), 8, &mut unpacked).expect("a seatless change");
        assert_eq!(unpacked.len(), 3);
    }

    #[test]
    fn a_damaged_change_is_an_error_not_a_wrong_seat() {
        let mut packed = pack(&[(Uuid::from_u128(1), SeatStatus::Held, Uuid::nil())]);
        assert!(unpack(&packed[..packed.len() - 1], 1, &mut Vec::new()).is_err());
        packed[16] = b'x';
        assert!(unpack(&packed, 1, &mut Vec::new()).is_err());
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
