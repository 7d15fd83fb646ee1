//! Live seat-map feeds: one per event that has subscribers on this instance.
//!
//! A feed wakes when the bus says the event changed (from any instance, through Redis), waits a short
//! coalescing window so a storm of changes becomes one batch, then reads everything after its last
//! sequence number from the change log and broadcasts it to its subscribers. Because the batch comes
//! from the database log, not from the bus message, a lost or reordered bus message cannot make a
//! client miss or misorder a change; a safety poll every second covers a silent bus.
//!
//! A feed also keeps the event's seat map in memory, brought up to date by each batch before it is
//! broadcast. A new or lagging subscriber takes its snapshot from there, shared, instead of reading
//! every seat from the database itself: with thousands of subscribers that read was a stampede of
//! full-table queries and one private copy of the map per client. Batches hold their seats behind an
//! `Arc`, so every subscriber of a batch shares one list too. The feed keeps the event's stock counts
//! the same way, so a new `availabilityChanged` subscriber reads nothing from the database either.
//!
//! Nothing a subscriber needs to start takes a pool connection of its own: the visibility check goes
//! through [`EventReads`], one read per event for everybody waiting. A crowd of thousands connecting at
//! once used to queue thousands of reads on the pool; with the workers busy sending snapshots, the
//! connections came back too slowly and most of the crowd was refused with SERVER_BUSY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use entity::event;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::AppResult;
use crate::events::changelog::{self, SeatState};
use crate::events::event_reads::EventReads;
use crate::events::feed_map::{self, MergedDelta, SeatMap, SeatSnapshot, StatusSnapshot};
use crate::events::service::{self, SectionAvailability};
use crate::live::{Bus, LiveMessage};

/// Batches a slow subscriber may fall behind before it is resynced with a snapshot.
const FEED_CAPACITY: usize = 64;
/// How often a feed checks the log even without a bus message.
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// What the change log holds after a feed's last batch: everything after `from_seq` up to `to_seq`,
/// each changed seat once with its last state.
#[derive(Debug)]
pub struct LoggedChanges {
    pub from_seq: i64,
    pub to_seq: i64,
    pub seats: Vec<SeatState>,
    pub availability: Availability,
}

/// One coalesced batch of changes as broadcast, once the feed's seat map has taken it in.
#[derive(Debug)]
pub struct FeedBatch {
    pub from_seq: i64,
    pub to_seq: i64,
    pub seats: Arc<[SeatState]>,
    /// The same changes as positions in the seat map's order with status letters (see
    /// [`SeatMap::status_changes`]), built once for every subscriber.
    pub status_changes: Arc<str>,
    pub availability: Availability,
}

/// Stock counts of an event at one sequence number.
#[derive(Debug, Clone)]
pub struct Availability {
    pub seq: i64,
    /// (tier, capacity, available) in tier order.
    pub tiers: Vec<(Uuid, i32, i32)>,
    pub sections: Vec<SectionAvailability>,
}

pub async fn availability(db: &DatabaseConnection, event_id: Uuid) -> AppResult<Availability> {
    let seq = changelog::current_seq(db, event_id).await?;
    let tiers = service::tiers_of_events(db, &[event_id])
        .await?
        .into_iter()
        .map(|tier| (tier.id, tier.capacity, tier.available))
        .collect();
    let sections = service::section_availability(db, &[event_id]).await?;
    Ok(Availability {
        seq,
        tiers,
        sections,
    })
}

/// A running feed. Subscribers hold it; when the last one goes, its task stops.
pub struct Feed {
    sender: broadcast::Sender<Arc<FeedBatch>>,
    wake: Arc<Notify>,
    seat_map: Arc<Mutex<SeatMap>>,
    task: JoinHandle<()>,
}

impl Feed {
    /// Subscribe before taking a [`snapshot`](Self::snapshot): the feed updates its map before it
    /// broadcasts a batch, so a subscriber sees every batch after its snapshot (and perhaps one it
    /// already has, which it skips by number).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedBatch>> {
        self.sender.subscribe()
    }

    /// Every seat as of the last batch broadcast.
    pub fn snapshot(&self) -> Arc<SeatSnapshot> {
        lock(&self.seat_map).snapshot()
    }

    /// Every seat's status as of the last batch broadcast, one letter per seat in seat-map order.
    pub fn statuses(&self) -> Arc<StatusSnapshot> {
        lock(&self.seat_map).statuses()
    }

    /// [`statuses`](Self::statuses) as runs of one status.
    pub fn status_runs(&self) -> Arc<StatusSnapshot> {
        lock(&self.seat_map).status_runs()
    }

    /// What a client resuming from `since` missed, up to the returned number, when this feed still
    /// keeps it (subscribe first, as for a snapshot); `None` sends the caller to the change log.
    pub fn changes_since(&self, since: i64) -> Option<(i64, Vec<SeatState>)> {
        let map = lock(&self.seat_map);
        map.changes_since(since).map(|seats| (map.seq, seats))
    }

    /// `seats` as positions in the seat map's current order with status letters.
    pub fn status_changes(&self, seats: &[SeatState]) -> Arc<str> {
        lock(&self.seat_map).status_changes(seats)
    }

    /// The changes after `from_seq` up to `to_seq` from `batches` as one delta, shared with every
    /// subscriber behind by the same batches (see [`SeatMap::merged`]).
    pub fn merged(&self, from_seq: i64, to_seq: i64, batches: &[&FeedBatch]) -> Arc<MergedDelta> {
        lock(&self.seat_map).merged(from_seq, to_seq, batches)
    }

    /// The stock counts as of the last batch broadcast; subscribe first, as for a snapshot.
    pub fn availability(&self) -> Arc<Availability> {
        Arc::clone(&lock(&self.seat_map).availability)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// This instance's feeds, woken by the bus.
#[derive(Clone)]
pub struct SeatFeeds {
    db: DatabaseConnection,
    coalesce: Duration,
    feeds: Arc<Mutex<HashMap<Uuid, Weak<Feed>>>>,
    /// One gate per event whose feed is starting, held while it loads, so a crowd connecting at
    /// once loads the seat map once, not once per client, and a slow load of one event does not
    /// hold up the subscribers of another.
    starting: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
    /// Event rows for the visibility check of new subscribers, one read for all who wait.
    events: EventReads,
}

impl SeatFeeds {
    /// Starts the dispatcher that routes bus messages to feeds.
    pub fn start(db: DatabaseConnection, bus: &Bus, coalesce: Duration) -> Self {
        let feeds = Self {
            events: EventReads::new(db.clone()),
            db,
            coalesce,
            feeds: Arc::new(Mutex::new(HashMap::new())),
            starting: Arc::default(),
        };
        let mut messages = bus.subscribe();
        let dispatcher = feeds.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(LiveMessage::InventoryChanged { event_id }) => {
                        dispatcher.wake(Some(event_id))
                    }
                    // Something may have been missed: every feed checks the log now.
                    Ok(LiveMessage::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        dispatcher.wake(None)
                    }
                    Ok(
                        LiveMessage::NotificationsChanged { .. }
                        | LiveMessage::OrderUpdated { .. }
                        | LiveMessage::WaitlistPromoted { .. }
                        | LiveMessage::QueueAdvanced { .. }
                        | LiveMessage::CheckInsChanged { .. },
                    ) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        feeds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Weak<Feed>>> {
        lock(&self.feeds)
    }

    fn wake(&self, event_id: Option<Uuid>) {
        let feeds = self.lock();
        let wake = |feed: &Weak<Feed>| {
            if let Some(feed) = feed.upgrade() {
                feed.wake.notify_one();
            }
        };
        match event_id {
            Some(id) => {
                if let Some(feed) = feeds.get(&id) {
                    wake(feed);
                }
            }
            None => feeds.values().for_each(wake),
        }
    }

    /// The event, if `viewer` may follow it: the rule of [`service::visible_event`] on a row read
    /// after this call began, shared with every other subscriber asking at the same time.
    pub async fn visible_event(
        &self,
        viewer: Option<&Viewer>,
        event_id: Uuid,
    ) -> AppResult<event::Model> {
        service::visible_event(self.events.find(event_id).await?, viewer)
    }

    /// The feed of an event, started if this instance has none yet.
    pub async fn feed(&self, event_id: Uuid) -> AppResult<Arc<Feed>> {
        if let Some(feed) = self.lock().get(&event_id).and_then(Weak::upgrade) {
            return Ok(feed);
        }
        let gate = Arc::clone(lock(&self.starting).entry(event_id).or_default());
        let started = {
            let _starting = gate.lock().await;
            // Another subscriber may have started it while we waited.
            let running = self.lock().get(&event_id).and_then(Weak::upgrade);
            match running {
                Some(feed) => Ok(feed),
                None => self.start_feed(event_id).await,
            }
        };
        let mut starting = lock(&self.starting);
        if starting
            .get(&event_id)
            .is_some_and(|current| Arc::ptr_eq(current, &gate))
        {
            starting.remove(&event_id);
        }
        started
    }

    async fn start_feed(&self, event_id: Uuid) -> AppResult<Arc<Feed>> {
        let seat_map = SeatMap::load(&self.db, event_id).await?;
        let start_seq = seat_map.seq;
        let seat_map = Arc::new(Mutex::new(seat_map));
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run_feed(
            self.db.clone(),
            event_id,
            start_seq,
            self.coalesce,
            sender.clone(),
            Arc::clone(&wake),
            Arc::clone(&seat_map),
        ));
        let feed = Arc::new(Feed {
            sender,
            wake,
            seat_map,
            task,
        });
        let mut feeds = self.lock();
        feeds.retain(|_, feed| feed.strong_count() > 0);
        feeds.insert(event_id, Arc::downgrade(&feed));
        Ok(feed)
    }
}

async fn run_feed(
    db: DatabaseConnection,
    event_id: Uuid,
    mut last: i64,
    coalesce: Duration,
    sender: broadcast::Sender<Arc<FeedBatch>>,
    wake: Arc<Notify>,
    seat_map: Arc<Mutex<SeatMap>>,
) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(SAFETY_POLL) => {}
        }
        // Let the rest of a burst arrive, so it goes out as one batch.
        tokio::time::sleep(coalesce).await;
        match next_batch(&db, event_id, last).await {
            Ok(Some(changes)) => {
                last = changes.to_seq;
                // New seats (a reserved tier added after publishing): read the seat map's order
                // before they show, so compact snapshots always line up with the layout.
                let order = if lock(&seat_map).needs_order(&changes) {
                    feed_map::seat_order(&db, event_id)
                        .await
                        .inspect_err(|err| {
                            tracing::warn!(event.id = %event_id, error = %err,
                                "reading the seat order failed");
                        })
                        .ok()
                } else {
                    None
                };
                let batch = lock(&seat_map).apply(changes, order.as_deref());
                let _ = sender.send(batch);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(event.id = %event_id, error = %err, "reading the change log failed")
            }
        }
    }
}

async fn next_batch(
    db: &DatabaseConnection,
    event_id: Uuid,
    last: i64,
) -> AppResult<Option<LoggedChanges>> {
    let availability = availability(db, event_id).await?;
    if availability.seq <= last {
        return Ok(None);
    }
    // Not checked for completeness: a feed reads every change within a second (`SAFETY_POLL`), and
    // pruning takes only changes hours old, so nothing it has yet to read is pruned unless it stalled
    // for hours; then it goes on from what the log holds.
    let seats = changelog::changes_between(db, event_id, last, availability.seq)
        .await?
        .seats;
    Ok(Some(LoggedChanges {
        from_seq: last,
        to_seq: availability.seq,
        seats: changelog::latest_per_seat(seats),
        availability,
    }))
}
