//! Live subscriptions on an event: seat-map deltas with sequence numbers, and availability counts.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result, ResultExt, SimpleObject, Subscription};
use futures::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::AppResult;
use crate::events::changelog::{self, SeatState};
use crate::events::feed_map::StatusSnapshot;
use crate::events::graphql::{SeatStatus, SectionAvailability};
use crate::events::live_feed::{Availability, Feed, FeedBatch};
use crate::gql::{ContextExt, parse_id};
use crate::state::AppState;

/// What a seat-map message carries.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SeatMapUpdateKind {
    /// Every seat's status at `seq`: replace what you have (sent first, and again after a client fell
    /// behind).
    Snapshot,
    /// The seats that changed after the previous message, up to `seq`.
    Delta,
}

/// How a SNAPSHOT of `seatMapChanged` carries every seat.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum SeatSnapshotFormat {
    /// Every seat as an entry of `seats`, with its id and tier (about 70 bytes of JSON per seat
    /// selecting `seatId status`).
    #[default]
    Seats,
    /// Every seat's status as one letter of `statuses`, in the order of the `seatMap` query (one byte
    /// per seat); `seats` is empty. For large venues and many clients: fetch the layout once with
    /// `seatMap`, then follow this subscription.
    Statuses,
    /// The letters of `STATUSES` as runs in `statuses`: each letter followed by how many seats in a
    /// row have it, the count left out when it is 1 (`A120H2A`: 120 seats available, 2 held, then
    /// one available); `seats` is empty. Never longer than `STATUSES`: a map before its on-sale is a
    /// few bytes, and one whose sold and held seats come in blocks is far shorter.
    Runs,
}

/// One message of `seatMapChanged`.
#[derive(SimpleObject)]
pub struct SeatMapUpdate {
    pub event_id: ID,
    pub kind: SeatMapUpdateKind,
    /// The event's sequence number this message brings the client to. Only grows; pass the last one you
    /// applied as `sinceSeq` to resume after a disconnect.
    pub seq: i64,
    /// Sequence number the previous message ended at (for a delta), so a client can check continuity.
    pub previous_seq: Option<i64>,
    /// The seats that changed (DELTA), or every seat (SNAPSHOT in the `SEATS` format; empty in the
    /// `STATUSES` and `RUNS` formats).
    // Shared with every other subscriber of the same batch or snapshot: the list is built once per
    // change, not once per client, and its fields are only turned into text when selected.
    pub seats: Arc<[SeatState]>,
    /// A SNAPSHOT in the `STATUSES` format: every seat's status at `seq`, one letter per seat, `A`
    /// (available), `H` (held) or `S` (sold), in the order `seatMap(eventId)` lists them (its
    /// sections in order, each section's seats in order), so the n-th letter is the status of the
    /// n-th seat of `seatMap { sections { seats { id } } }`. A length that differs from that seat
    /// count means the layout changed: fetch `seatMap` again. In the `RUNS` format the same letters
    /// as runs (see `SeatSnapshotFormat`). Null on DELTAs and in the `SEATS` format.
    // Built once per sequence number and shared by every subscriber of it.
    pub statuses: Option<Arc<str>>,
    /// A DELTA in compact form, for clients that follow `statuses`: each changed seat as its
    /// position in the order of `seatMap(eventId)` (0-based, in decimal) followed by its status
    /// letter, so `0H17S` means the first seat is now held and the 18th sold. Write each letter at
    /// its position in the `statuses` string. Null on SNAPSHOTs.
    // Built once per batch for every subscriber: with thousands of clients, turning every seat of
    // every delta into an object of its own per client was most of the cost of a storm.
    pub status_changes: Option<Arc<str>>,
}

/// A seat's status as of `seq`.
#[Object(name = "SeatStatusChange")]
impl SeatState {
    async fn seat_id(&self) -> ID {
        ID(self.seat_id.to_string())
    }

    async fn status(&self) -> SeatStatus {
        self.status.into()
    }

    async fn tier_id(&self) -> ID {
        ID(self.tier_id.to_string())
    }

    async fn seq(&self) -> i64 {
        self.seq
    }
}

/// Stock counts of an event, pushed whenever they change.
#[derive(SimpleObject)]
pub struct AvailabilityUpdate {
    pub event_id: ID,
    pub seq: i64,
    pub tiers: Vec<TierAvailability>,
    pub sections: Vec<SectionAvailability>,
}

#[derive(SimpleObject)]
pub struct TierAvailability {
    pub tier_id: ID,
    pub capacity: i32,
    pub available: i32,
}

fn availability_update(event_id: Uuid, availability: &Availability) -> AvailabilityUpdate {
    AvailabilityUpdate {
        event_id: ID(event_id.to_string()),
        seq: availability.seq,
        tiers: availability
            .tiers
            .iter()
            .map(|(tier, capacity, available)| TierAvailability {
                tier_id: ID(tier.to_string()),
                capacity: *capacity,
                available: *available,
            })
            .collect(),
        sections: crate::events::graphql::section_availability_of(&availability.sections),
    }
}

/// The feed's current state as a SNAPSHOT in `format`, shared with every subscriber asking for it.
fn snapshot(event_id: Uuid, feed: &Feed, format: SeatSnapshotFormat) -> SeatMapUpdate {
    let (seq, seats, statuses) = match format {
        SeatSnapshotFormat::Seats => {
            let snapshot = feed.snapshot();
            (snapshot.seq, Arc::clone(&snapshot.seats), None)
        }
        SeatSnapshotFormat::Statuses => compact(feed.statuses()),
        SeatSnapshotFormat::Runs => compact(feed.status_runs()),
    };
    SeatMapUpdate {
        event_id: ID(event_id.to_string()),
        kind: SeatMapUpdateKind::Snapshot,
        seq,
        previous_seq: None,
        seats,
        statuses,
        status_changes: None,
    }
}

/// The parts of a SNAPSHOT whose seats are all in `statuses`.
fn compact(snapshot: Arc<StatusSnapshot>) -> (i64, Arc<[SeatState]>, Option<Arc<str>>) {
    (
        snapshot.seq,
        Arc::from(Vec::new()),
        Some(Arc::clone(&snapshot.statuses)),
    )
}

/// A DELTA of `seats` described by `feed`'s seat map.
fn delta(
    event_id: Uuid,
    feed: &Feed,
    previous_seq: i64,
    seq: i64,
    seats: Arc<[SeatState]>,
) -> SeatMapUpdate {
    let status_changes = feed.status_changes(&seats);
    shared_delta(event_id, previous_seq, seq, seats, status_changes)
}

fn shared_delta(
    event_id: Uuid,
    previous_seq: i64,
    seq: i64,
    seats: Arc<[SeatState]>,
    status_changes: Arc<str>,
) -> SeatMapUpdate {
    SeatMapUpdate {
        event_id: ID(event_id.to_string()),
        kind: SeatMapUpdateKind::Delta,
        seq,
        previous_seq: Some(previous_seq),
        seats,
        statuses: None,
        status_changes: Some(status_changes),
    }
}

/// The first message: the changes after `since_seq` when the feed or the log still has them all,
/// else the feed's shared snapshot. A crowd resuming at once (after a network blip, say) is served
/// from the feed's recent batches without a database read each.
async fn first_update(
    db: &DatabaseConnection,
    feed: &Feed,
    event_id: Uuid,
    since_seq: Option<i64>,
    format: SeatSnapshotFormat,
) -> AppResult<SeatMapUpdate> {
    if let Some(since) = since_seq {
        if let Some((seq, seats)) = feed.changes_since(since) {
            return Ok(delta(event_id, feed, since, seq, seats.into()));
        }
        let current = changelog::current_seq(db, event_id).await?;
        if (0..=current).contains(&since) {
            let logged = changelog::changes_between(db, event_id, since, current).await?;
            // Some of what the client missed was pruned: only a snapshot brings it up to date.
            if logged.complete {
                let seats = changelog::latest_per_seat(logged.seats);
                return Ok(delta(event_id, feed, since, current, seats.into()));
            }
        }
    }
    Ok(snapshot(event_id, feed, format))
}

/// The live feed of an event the viewer may see.
async fn open_feed(
    state: &AppState,
    viewer: Option<&Viewer>,
    event_id: Uuid,
) -> AppResult<Arc<Feed>> {
    state.feeds.visible_event(viewer, event_id).await?;
    state.feeds.feed(event_id).await
}

/// The messages of `seatMapChanged` on `event_id` for `viewer`: what the resolver streams, and what
/// the WebSocket's direct path (`events::direct_seat_map`) renders itself.
pub async fn seat_map_updates(
    state: &AppState,
    viewer: Option<&Viewer>,
    event_id: Uuid,
    since_seq: Option<i64>,
    snapshot_format: SeatSnapshotFormat,
) -> AppResult<impl Stream<Item = SeatMapUpdate> + Send + use<>> {
    let db = state.db.clone();
    // Boxed: async-graphql keeps each subscription in one allocation sized for the largest
    // state of this resolver and its stream, for as long as the client stays subscribed. The
    // set-up's database reads would otherwise size every connection's stream (docs/profiling.md).
    let (feed, mut batches, first) = Box::pin(async {
        let feed = open_feed(state, viewer, event_id).await?;
        // Subscribe before reading the first message, so nothing committed in between is lost.
        let batches = feed.subscribe();
        let first = first_update(&db, &feed, event_id, since_seq, snapshot_format).await?;
        AppResult::Ok((feed, batches, first))
    })
    .await?;
    Ok(async_stream::stream! {
        let mut sent = first.seq;
        yield first;
        loop {
            let batch = match batches.recv().await {
                Ok(batch) => batch,
                Err(RecvError::Lagged(_)) => {
                    let update = snapshot(event_id, &feed, snapshot_format);
                    sent = update.seq;
                    yield update;
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            // Batches that queued while this client's last message was being sent go out with
            // this one as a single message: a subscriber that cannot keep up does its work once
            // per message it manages to send, not once per batch, and catches up.
            let mut queued = Vec::new();
            let mut lagged = false;
            loop {
                match batches.try_recv() {
                    Ok(next) => queued.push(next),
                    Err(TryRecvError::Lagged(_)) => {
                        lagged = true;
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if lagged {
                let update = snapshot(event_id, &feed, snapshot_format);
                sent = update.seq;
                yield update;
                continue;
            }
            let to_seq = queued.last().map_or(batch.to_seq, |last| last.to_seq);
            if to_seq <= sent {
                continue;
            }
            if batch.from_seq == sent && queued.is_empty() {
                // The usual case: the batch as broadcast, shared with every subscriber.
                let seats = Arc::clone(&batch.seats);
                let changes = Arc::clone(&batch.status_changes);
                sent = to_seq;
                yield shared_delta(event_id, batch.from_seq, to_seq, seats, changes);
                continue;
            }
            let update = if batch.from_seq > sent {
                // Never expected (the feed started at or before our first message), but a gap
                // is filled from the log rather than skipped.
                let missing =
                    Box::pin(changelog::changes_between(&db, event_id, sent, batch.from_seq));
                let Ok(changelog::Logged { mut seats, .. }) = missing.await else {
                    break;
                };
                // The feed sends its batches in order, each starting where the last ended.
                for queued in std::iter::once(&batch).chain(&queued) {
                    seats.extend(queued.seats.iter().filter(|s| s.seq > sent).cloned());
                }
                let seats = changelog::latest_per_seat(seats).into();
                delta(event_id, &feed, sent, to_seq, seats)
            } else {
                let batches: Vec<&FeedBatch> =
                    std::iter::once(&batch).chain(&queued).map(|b| &**b).collect();
                let merged = feed.merged(sent, to_seq, &batches);
                let seats = Arc::clone(&merged.seats);
                shared_delta(event_id, sent, to_seq, seats, Arc::clone(&merged.status_changes))
            };
            sent = to_seq;
            yield update;
        }
    })
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Live seat statuses of an event. The first message is a SNAPSHOT, or, when `sinceSeq` is given and
    /// still in the log, a DELTA with exactly the changes after it. Then DELTAs, coalesced per short
    /// window, whose `seq` only grows. A client that falls behind gets a fresh SNAPSHOT instead of an
    /// ever-growing backlog.
    async fn seat_map_changed(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        #[graphql(desc = "The last `seq` this client applied, to resume after a disconnect.")]
        since_seq: Option<i64>,
        #[graphql(
            default,
            desc = "How SNAPSHOTs carry the seats: `STATUSES` (one letter per seat) is about 70 times \
                    smaller than `SEATS` for the same map, and `RUNS` smaller still."
        )]
        snapshot_format: SeatSnapshotFormat,
    ) -> Result<impl Stream<Item = SeatMapUpdate> + use<>> {
        let state = ctx.state().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        seat_map_updates(
            state,
            ctx.viewer_opt(),
            event_id,
            since_seq,
            snapshot_format,
        )
        .await
        .extend()
    }

    /// Live stock counts of an event per tier and per reserved section: the current counts first, then
    /// one message per coalesced batch of changes.
    async fn availability_changed(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<impl Stream<Item = AvailabilityUpdate> + use<>> {
        let state = ctx.state().extend()?;
        let event_id = parse_id(&event_id, "eventId").extend()?;
        let feed = Box::pin(open_feed(state, ctx.viewer_opt(), event_id))
            .await
            .extend()?;
        let mut batches = feed.subscribe();
        // The feed's counts, not a read of our own: a crowd subscribing at once shares them.
        let first = feed.availability();
        Ok(async_stream::stream! {
            let mut sent = first.seq;
            yield availability_update(event_id, &first);
            loop {
                match batches.recv().await {
                    Ok(mut batch) => {
                        // Only the newest counts matter: skip to the last batch already queued.
                        while let Ok(next) = batches.try_recv() {
                            batch = next;
                        }
                        if batch.to_seq > sent {
                            sent = batch.to_seq;
                            yield availability_update(event_id, &batch.availability);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let current = feed.availability();
                        sent = current.seq;
                        yield availability_update(event_id, &current);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}
