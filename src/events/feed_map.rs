//! The seat map a live feed keeps in memory: every seat's status in the seat map's order, the stock
//! counts, and the last batches, so new, lagging and resuming subscribers start without a read.
//!
//! Seats are kept in the order of the `seatMap` query (sections by sort order, seats by row and
//! number), the order in which a compact snapshot lists statuses: a client decodes the string against
//! the layout it fetched once. A seat added to the event while the feed runs (a reserved tier created
//! after publishing) makes the feed read that order again before it applies the batch, so every
//! instance agrees on it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use entity::enums::SeatStatus;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::error::AppResult;
use crate::events::changelog::{SeatState, latest_per_seat};
use crate::events::live_feed::{Availability, FeedBatch, LoggedChanges, availability};
use crate::events::seat_map::load_seat_map;

/// Batches kept for clients resuming with `sinceSeq`: at the 75 ms coalescing window, at least the
/// last 20 s of a storm, and longer when changes are rarer. Older resumes read the change log.
const HISTORY_BATCHES: usize = 256;
/// Merged deltas kept for subscribers behind by the same batches (see [`SeatMap::merged`]).
const MERGED_KEPT: usize = 8;

/// Every seat of an event at one sequence number; each seat's `seq` is that number.
#[derive(Debug)]
pub struct SeatSnapshot {
    pub seq: i64,
    pub seats: Arc<[SeatState]>,
}

/// Every seat's status at one sequence number, one letter per seat in the seat map's order.
#[derive(Debug)]
pub struct StatusSnapshot {
    pub seq: i64,
    pub statuses: Arc<str>,
}

/// The changes of several batches as one DELTA, for subscribers that fell behind by them.
#[derive(Debug)]
pub struct MergedDelta {
    pub from_seq: i64,
    pub to_seq: i64,
    pub seats: Arc<[SeatState]>,
    pub status_changes: Arc<str>,
}

/// The letter of a status in a compact snapshot.
pub fn status_letter(status: SeatStatus) -> char {
    match status {
        SeatStatus::Available => 'A',
        SeatStatus::Held => 'H',
        SeatStatus::Sold => 'S',
    }
}

/// The seat map and stock counts a feed keeps current.
pub struct SeatMap {
    pub seq: i64,
    /// The counts as of the last batch (or the load), shared by the subscribers that start from them.
    pub availability: Arc<Availability>,
    /// In the seat map's order.
    seats: Vec<SeatState>,
    index: HashMap<Uuid, usize>,
    /// The snapshots of `seq`, each built on first demand and shared until the next batch.
    snapshot: Option<Arc<SeatSnapshot>>,
    statuses: Option<Arc<StatusSnapshot>>,
    runs: Option<Arc<StatusSnapshot>>,
    /// The last batches, oldest first; together they hold every change after `history_from`.
    history: VecDeque<Arc<FeedBatch>>,
    history_from: i64,
    /// Seats were appended that the seat map's order puts elsewhere.
    out_of_order: bool,
    /// The last deltas merged for subscribers that fell behind, newest last.
    merged: VecDeque<Arc<MergedDelta>>,
}

impl SeatMap {
    /// Reads the map. The number first (it comes with the counts): a change committed after it shows
    /// in the counts or seats and is applied again by the next batch, which is harmless because a
    /// change states a seat's status, not a transition, and a batch restates every count.
    pub async fn load(db: &DatabaseConnection, event_id: Uuid) -> AppResult<Self> {
        let availability = availability(db, event_id).await?;
        let seq = availability.seq;
        let seats: Vec<SeatState> = load_seat_map(db, event_id)
            .await?
            .into_iter()
            .flat_map(|section| section.seats)
            .map(|seat| SeatState {
                seq,
                seat_id: seat.seat_id,
                status: seat.status,
                tier_id: seat.tier_id,
            })
            .collect();
        let index = index_of(&seats);
        Ok(Self {
            seq,
            availability: Arc::new(availability),
            seats,
            index,
            snapshot: None,
            statuses: None,
            runs: None,
            history: VecDeque::new(),
            history_from: seq,
            out_of_order: false,
            merged: VecDeque::new(),
        })
    }

    /// True when applying `batch` would leave the seats out of the seat map's order (it names seats
    /// the map does not know): read [`seat_order`] first and `reorder` after it.
    pub fn needs_order(&self, changes: &LoggedChanges) -> bool {
        self.out_of_order
            || changes
                .seats
                .iter()
                .any(|change| !self.index.contains_key(&change.seat_id))
    }

    /// Applies changes read from the log, puts the seats in `order` when given (see
    /// [`needs_order`](Self::needs_order)), and returns the batch to broadcast. A seat the map does
    /// not know is appended rather than missed.
    pub fn apply(&mut self, changes: LoggedChanges, order: Option<&[Uuid]>) -> Arc<FeedBatch> {
        for change in &changes.seats {
            match self.index.get(&change.seat_id) {
                Some(&at) => self.seats[at] = change.clone(),
                None => {
                    self.out_of_order = true;
                    self.index.insert(change.seat_id, self.seats.len());
                    self.seats.push(change.clone());
                }
            }
        }
        self.seq = changes.to_seq;
        self.availability = Arc::new(changes.availability.clone());
        self.forget_snapshots();
        if let Some(order) = order {
            self.reorder(order);
        }
        let batch = Arc::new(FeedBatch {
            from_seq: changes.from_seq,
            to_seq: changes.to_seq,
            status_changes: self.status_changes(&changes.seats),
            seats: changes.seats.into(),
            availability: changes.availability,
        });
        if self.history.len() == HISTORY_BATCHES {
            if let Some(oldest) = self.history.pop_front() {
                self.history_from = oldest.to_seq;
            }
        }
        self.history.push_back(Arc::clone(&batch));
        batch
    }

    /// `seats` in the compact form of a delta: each seat's position in the seat map's order, in
    /// decimal, followed by its status letter (`0H17S` is the first seat held and the 18th sold),
    /// in the order given. A seat the map does not know is left out; it cannot be, as a batch is
    /// applied before it is described.
    pub fn status_changes(&self, seats: &[SeatState]) -> Arc<str> {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(seats.len() * 6);
        for seat in seats {
            if let Some(at) = self.index.get(&seat.seat_id) {
                let _ = write!(text, "{at}{}", status_letter(seat.status));
            }
        }
        text.into()
    }

    /// Puts the seats in `order` (seat ids as the seat map lists them now); seats it does not name
    /// keep their relative order after it.
    fn reorder(&mut self, order: &[Uuid]) {
        let mut placed = vec![false; self.seats.len()];
        let mut seats = Vec::with_capacity(self.seats.len());
        for id in order {
            if let Some(&at) = self.index.get(id) {
                if !placed[at] {
                    placed[at] = true;
                    seats.push(self.seats[at].clone());
                }
            }
        }
        for (at, seat) in self.seats.iter().enumerate() {
            if !placed[at] {
                seats.push(seat.clone());
            }
        }
        self.index = index_of(&seats);
        self.seats = seats;
        self.forget_snapshots();
        // Their positions are in the old order.
        self.merged.clear();
        self.out_of_order = false;
    }

    /// The changes after `from_seq` up to `to_seq`, from `batches` (consecutive, covering them), as
    /// one delta. Subscribers fall behind together: while a round of messages goes out to thousands
    /// of clients, the same batches queue for most of them, so the merge is built by the first and
    /// shared with the rest instead of each hashing the same seats again.
    pub fn merged(
        &mut self,
        from_seq: i64,
        to_seq: i64,
        batches: &[&FeedBatch],
    ) -> Arc<MergedDelta> {
        let kept = self
            .merged
            .iter()
            .find(|merged| merged.from_seq == from_seq && merged.to_seq == to_seq);
        if let Some(kept) = kept {
            return Arc::clone(kept);
        }
        let seats: Arc<[SeatState]> = changed_after(batches.iter().copied(), from_seq).into();
        let merged = Arc::new(MergedDelta {
            from_seq,
            to_seq,
            status_changes: self.status_changes(&seats),
            seats,
        });
        if self.merged.len() == MERGED_KEPT {
            self.merged.pop_front();
        }
        self.merged.push_back(Arc::clone(&merged));
        merged
    }

    pub fn snapshot(&mut self) -> Arc<SeatSnapshot> {
        let seq = self.seq;
        let seats = &self.seats;
        Arc::clone(self.snapshot.get_or_insert_with(|| {
            Arc::new(SeatSnapshot {
                seq,
                seats: seats
                    .iter()
                    .map(|seat| SeatState {
                        seq,
                        ..seat.clone()
                    })
                    .collect(),
            })
        }))
    }

    fn forget_snapshots(&mut self) {
        self.snapshot = None;
        self.statuses = None;
        self.runs = None;
    }

    /// One letter per seat.
    pub fn statuses(&mut self) -> Arc<StatusSnapshot> {
        let seq = self.seq;
        let seats = &self.seats;
        Arc::clone(self.statuses.get_or_insert_with(|| {
            Arc::new(StatusSnapshot {
                seq,
                statuses: seats
                    .iter()
                    .map(|seat| status_letter(seat.status))
                    .collect::<String>()
                    .into(),
            })
        }))
    }

    /// The letters of [`statuses`](Self::statuses) as runs: each letter followed by how many seats
    /// in a row have it, the count left out when it is 1 (`A120H2A` is 120 seats available, 2 held,
    /// then one available). A map before its on-sale is a few bytes, not one per seat.
    pub fn status_runs(&mut self) -> Arc<StatusSnapshot> {
        use std::fmt::Write as _;
        let seq = self.seq;
        let seats = &self.seats;
        Arc::clone(self.runs.get_or_insert_with(|| {
            let mut runs = String::new();
            let mut statuses = seats.iter().map(|seat| seat.status).peekable();
            while let Some(status) = statuses.next() {
                let mut length = 1;
                while statuses.next_if_eq(&status).is_some() {
                    length += 1;
                }
                runs.push(status_letter(status));
                if length > 1 {
                    let _ = write!(runs, "{length}");
                }
            }
            Arc::new(StatusSnapshot {
                seq,
                statuses: runs.into(),
            })
        }))
    }

    /// The changes after `since` up to `seq` (the map's number), when the kept batches hold them
    /// all: what a client resuming from `since` missed, each seat once at its last state, without a
    /// read of the log.
    pub fn changes_since(&self, since: i64) -> Option<Vec<SeatState>> {
        if since < self.history_from || since > self.seq {
            return None;
        }
        let batches = self.history.iter().filter(|batch| batch.to_seq > since);
        Some(changed_after(batches.map(|batch| &**batch), since))
    }
}

/// Each seat that `batches` change after `since`, once, at its last change.
fn changed_after<'a>(batches: impl Iterator<Item = &'a FeedBatch>, since: i64) -> Vec<SeatState> {
    latest_per_seat(
        batches
            .flat_map(|batch| batch.seats.iter())
            .filter(|seat| seat.seq > since)
            .cloned(),
    )
}

fn index_of(seats: &[SeatState]) -> HashMap<Uuid, usize> {
    seats
        .iter()
        .enumerate()
        .map(|(at, seat)| (seat.seat_id, at))
        .collect()
}

/// Seat ids in the order of the seat map (and of a compact snapshot).
pub async fn seat_order(db: &DatabaseConnection, event_id: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(load_seat_map(db, event_id)
        .await?
        .into_iter()
        .flat_map(|section| section.seats)
        .map(|seat| seat.seat_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(id: u128, status: SeatStatus, seq: i64) -> SeatState {
        SeatState {
            seq,
            seat_id: Uuid::from_u128(id),
            status,
            tier_id: Uuid::nil(),
        }
    }

    fn map(seats: Vec<SeatState>) -> SeatMap {
        SeatMap {
            seq: 0,
            availability: Arc::new(Availability {
                seq: 0,
                tiers: Vec::new(),
                sections: Vec::new(),
            }),
            index: index_of(&seats),
            seats,
            snapshot: None,
            statuses: None,
            runs: None,
            history: VecDeque::new(),
            history_from: 0,
            out_of_order: false,
            merged: VecDeque::new(),
        }
    }

    fn batch(from_seq: i64, seats: Vec<SeatState>) -> LoggedChanges {
        LoggedChanges {
            from_seq,
            to_seq: from_seq + 1,
            seats,
            availability: Availability {
                seq: from_seq + 1,
                tiers: Vec::new(),
                sections: Vec::new(),
            },
        }
    }

    #[test]
    fn statuses_list_one_letter_per_seat_in_map_order() {
        let mut map = map(vec![
            seat(1, SeatStatus::Available, 0),
            seat(2, SeatStatus::Available, 0),
            seat(3, SeatStatus::Sold, 0),
        ]);
        assert_eq!(&*map.statuses().statuses, "AAS");
        let change = batch(0, vec![seat(2, SeatStatus::Held, 1)]);
        assert!(!map.needs_order(&change));
        map.apply(change, None);
        let after = map.statuses();
        assert_eq!((after.seq, &*after.statuses), (1, "AHS"));
    }

    #[test]
    fn runs_give_each_status_once_per_stretch_of_seats() {
        let statuses = [
            SeatStatus::Available,
            SeatStatus::Available,
            SeatStatus::Available,
            SeatStatus::Held,
            SeatStatus::Sold,
            SeatStatus::Sold,
            SeatStatus::Available,
        ];
        let mut map = map((0..)
            .zip(statuses)
            .map(|(id, status)| seat(id, status, 0))
            .collect());
        assert_eq!(&*map.status_runs().statuses, "A3HS2A");
        map.apply(batch(0, vec![seat(3, SeatStatus::Available, 1)]), None);
        let after = map.status_runs();
        assert_eq!((after.seq, &*after.statuses), (1, "A4S2A"));
        let all_free: Vec<_> = (0..10_000)
            .map(|id| seat(id, SeatStatus::Available, 0))
            .collect();
        assert_eq!(&*self::map(all_free).status_runs().statuses, "A10000");
        assert_eq!(&*self::map(Vec::new()).status_runs().statuses, "");
    }

    #[test]
    fn a_batch_describes_its_changes_by_position_in_map_order() {
        let mut map = map((1..=12)
            .map(|id| seat(id, SeatStatus::Available, 0))
            .collect());
        let changes = vec![
            seat(12, SeatStatus::Sold, 1),
            seat(1, SeatStatus::Held, 1),
            seat(99, SeatStatus::Held, 1),
        ];
        assert_eq!(
            &*map.status_changes(&changes),
            "11S0H",
            "unknown seats are left out"
        );
        let batch = map.apply(batch(0, changes[..2].to_vec()), None);
        assert_eq!(&*batch.status_changes, "11S0H");
    }

    #[test]
    fn an_unknown_seat_is_appended_then_put_in_layout_order() {
        let mut map = map(vec![seat(1, SeatStatus::Available, 0)]);
        let change = batch(0, vec![seat(9, SeatStatus::Sold, 1)]);
        assert!(map.needs_order(&change));
        let appended = map.apply(change, None);
        assert_eq!(&*appended.status_changes, "1S");
        assert_eq!(&*map.statuses().statuses, "AS");
        assert!(map.needs_order(&batch(1, Vec::new())), "until reordered");
        let order = [Uuid::from_u128(9), Uuid::from_u128(1)];
        let change = batch(1, vec![seat(9, SeatStatus::Available, 2)]);
        let reordered = map.apply(change, Some(&order));
        assert_eq!(
            &*reordered.status_changes, "0A",
            "positions after the reorder"
        );
        assert!(!map.needs_order(&batch(2, Vec::new())));
        assert_eq!(&*map.statuses().statuses, "AA");
        assert_eq!(map.snapshot().seats[0].seat_id, Uuid::from_u128(9));
    }

    #[test]
    fn a_resume_is_served_while_the_kept_batches_cover_it() {
        let mut map = map(vec![seat(1, SeatStatus::Available, 0)]);
        for from in 0..HISTORY_BATCHES as i64 + 2 {
            map.apply(batch(from, vec![seat(1, SeatStatus::Held, from + 1)]), None);
        }
        let last = HISTORY_BATCHES as i64 + 2;
        assert_eq!(map.changes_since(last), Some(Vec::new()));
        assert_eq!(
            map.changes_since(last - 2),
            Some(vec![seat(1, SeatStatus::Held, last)]),
            "the seat once, at its last change"
        );
        assert_eq!(map.changes_since(1), None, "dropped from the history");
        assert_eq!(map.changes_since(last + 1), None, "ahead of this feed");
    }

    #[test]
    fn subscribers_behind_by_the_same_batches_share_one_merged_delta() {
        let mut map = map((1..=5)
            .map(|id| seat(id, SeatStatus::Available, 0))
            .collect());
        let first = map.apply(batch(0, vec![seat(2, SeatStatus::Held, 1)]), None);
        let second = map.apply(
            batch(
                1,
                vec![seat(2, SeatStatus::Sold, 2), seat(5, SeatStatus::Held, 2)],
            ),
            None,
        );
        let batches = [&*first, &*second];
        let merged = map.merged(0, 2, &batches);
        assert_eq!(
            &*merged.seats,
            [seat(2, SeatStatus::Sold, 2), seat(5, SeatStatus::Held, 2)],
            "each seat once, at its last change"
        );
        assert_eq!(&*merged.status_changes, "1S4H");
        assert!(Arc::ptr_eq(&merged, &map.merged(0, 2, &batches)), "shared");
        let later = map.merged(1, 2, &batches[1..]);
        assert!(!Arc::ptr_eq(&merged, &later), "another window is its own");
        assert_eq!(&*later.status_changes, "1S4H");

        // New seats put in layout order: positions move, so the kept merges go.
        let order: Vec<Uuid> = [9, 1, 2, 3, 4, 5]
            .into_iter()
            .map(Uuid::from_u128)
            .collect();
        map.apply(
            batch(2, vec![seat(9, SeatStatus::Available, 3)]),
            Some(&order),
        );
        let rebuilt = map.merged(0, 2, &batches);
        assert!(!Arc::ptr_eq(&merged, &rebuilt));
        assert_eq!(&*rebuilt.status_changes, "2S5H");
    }
}
