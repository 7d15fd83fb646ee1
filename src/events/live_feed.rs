//! Live seat-map feeds: one per event that has subscribers on this instance.
//!
//! A feed wakes when the bus says the event changed (from any instance, through Redis), waits a short
//! coalescing window so a storm of changes becomes one batch, then reads everything after its last
//! sequence number from the change log and broadcasts it to its subscribers. Because the batch comes
//! from the database log, not from the bus message, a lost or reordered bus message cannot make a
//! client miss or misorder a change; a safety poll every second covers a silent bus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::AppResult;
use crate::events::changelog::{self, SeatState};
use crate::events::service::{self, SectionAvailability};
use crate::live::{Bus, LiveMessage};

/// Batches a slow subscriber may fall behind before it is resynced with a snapshot.
const FEED_CAPACITY: usize = 64;
/// How often a feed checks the log even without a bus message.
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// One coalesced batch of changes: everything after `from_seq` up to `to_seq`.
#[derive(Debug)]
pub struct FeedBatch {
    pub from_seq: i64,
    pub to_seq: i64,
    pub seats: Vec<SeatState>,
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
    task: JoinHandle<()>,
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedBatch>> {
        self.sender.subscribe()
    }
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
}

impl SeatFeeds {
    /// Starts the dispatcher that routes bus messages to feeds.
    pub fn start(db: DatabaseConnection, bus: &Bus, coalesce: Duration) -> Self {
        let feeds = Self {
            db,
            coalesce,
            feeds: Arc::new(Mutex::new(HashMap::new())),
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
        self.feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// The feed of an event, started if this instance has none yet.
    pub async fn feed(&self, event_id: Uuid) -> AppResult<Arc<Feed>> {
        if let Some(feed) = self.lock().get(&event_id).and_then(Weak::upgrade) {
            return Ok(feed);
        }
        let start_seq = changelog::current_seq(&self.db, event_id).await?;
        let mut feeds = self.lock();
        // Another subscriber may have started it while we read the sequence.
        if let Some(feed) = feeds.get(&event_id).and_then(Weak::upgrade) {
            return Ok(feed);
        }
        feeds.retain(|_, feed| feed.strong_count() > 0);
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run_feed(
            self.db.clone(),
            event_id,
            start_seq,
            self.coalesce,
            sender.clone(),
            Arc::clone(&wake),
        ));
        let feed = Arc::new(Feed { sender, wake, task });
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
) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(SAFETY_POLL) => {}
        }
        // Let the rest of a burst arrive, so it goes out as one batch.
        tokio::time::sleep(coalesce).await;
        match next_batch(&db, event_id, last).await {
            Ok(Some(batch)) => {
                last = batch.to_seq;
                let _ = sender.send(Arc::new(batch));
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
) -> AppResult<Option<FeedBatch>> {
    let availability = availability(db, event_id).await?;
    if availability.seq <= last {
        return Ok(None);
    }
    let seats = changelog::changes_between(db, event_id, last, availability.seq).await?;
    Ok(Some(FeedBatch {
        from_seq: last,
        to_seq: availability.seq,
        seats,
        availability,
    }))
}
