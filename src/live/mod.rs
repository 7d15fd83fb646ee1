//! The event bus that carries live changes from the instance that made them to every subscriber.
//!
//! The bus does not interpret what it carries: it moves small
//! [`LiveMessage`](crate::live::LiveMessage)s naming what changed, and subscribers read the
//! details. Messages are published only after the transaction that caused them commits. Two
//! transports, chosen by configuration:
//! - in-process (embedded default): a broadcast channel;
//! - Redis pub/sub: every instance PUBLISHes to one channel and keeps ONE subscriber connection that
//!   fans messages out to its own broadcast channel, never a Redis connection per GraphQL subscriber.
//!
//! Delivery is best effort. A subscriber that lags is told so by its receiver
//! (`RecvError::Lagged`), and a Redis reconnect emits
//! [`LiveMessage::Resync`](crate::live::LiveMessage::Resync): either way clients reload from a
//! snapshot, because the database is the source of truth.

mod redis_transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use crate::orders::subscriptions::OrderUpdateKind;

use self::redis_transport::RedisTransport;

/// The longest a publisher waits for Redis.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// How many messages a slow subscriber may fall behind before it is told to resync.
const CHANNEL_CAPACITY: usize = 4096;

/// A change worth pushing to clients. Serialized as JSON on Redis; the `v` field versions the format.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// Inventory of an event changed.
    InventoryChanged { event_id: Uuid },
    /// A user has new notifications.
    NotificationsChanged { user_id: Uuid },
    /// An event's waiting room moved: shoppers admitted (up to position `admitted_through`), passes
    /// expired, or the pre-queue numbered.
    QueueAdvanced {
        event_id: Uuid,
        admitted_through: i64,
    },
    /// Tickets of an event were checked in (or a check-in undone).
    CheckInsChanged { event_id: Uuid },
    /// A buyer's waitlist entry was offered tickets.
    WaitlistPromoted { user_id: Uuid, entry_id: Uuid },
    /// Something happened to one of a buyer's holds or orders.
    OrderUpdated {
        user_id: Uuid,
        event_id: Uuid,
        kind: OrderUpdateKind,
        hold_id: Option<Uuid>,
        order_id: Option<Uuid>,
    },
    /// Messages may have been lost (the Redis subscription was re-established): reload from a snapshot.
    Resync,
}

/// The wire format on Redis.
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    message: LiveMessage,
}

const ENVELOPE_VERSION: u32 = 1;

/// Running totals of what went over the bus, kept for metrics.
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    published: AtomicU64,
    received: AtomicU64,
    publish_failures: AtomicU64,
    resyncs: AtomicU64,
}

impl BusCounters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What went over this instance's bus since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusStats {
    /// Messages this instance published.
    pub published: u64,
    /// Messages this instance received for its subscribers (from Redis, or its own in-process).
    pub received: u64,
    /// Publishes to Redis that failed or timed out, delivered to this instance only.
    pub publish_failures: u64,
    /// Reconnections of the Redis subscriber (each one tells clients to resync).
    pub resyncs: u64,
    /// Messages the slowest local subscriber has yet to read: how far it lags.
    pub backlog: usize,
}

/// Cheap to clone: every clone shares the local channel and the Redis connections.
#[derive(Clone)]
pub struct Bus {
    local: broadcast::Sender<LiveMessage>,
    redis: Option<RedisTransport>,
    counters: Arc<BusCounters>,
}

impl Bus {
    pub fn in_process() -> Self {
        let (local, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            local,
            redis: None,
            counters: Arc::default(),
        }
    }

    /// Connects to Redis and starts this instance's one subscriber task. Fails when Redis is unreachable
    /// at start; after that, the subscriber reconnects by itself.
    pub async fn redis(url: &str, channel: String) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(CHANNEL_CAPACITY);
        let counters = Arc::<BusCounters>::default();
        let redis =
            RedisTransport::start(url, channel, local.clone(), Arc::clone(&counters)).await?;
        Ok(Self {
            local,
            redis: Some(redis),
            counters,
        })
    }

    /// Publishes to every subscriber on every instance. Having no subscriber is not an error; a Redis
    /// failure is logged and the message still reaches this instance's subscribers.
    pub async fn publish(&self, message: LiveMessage) {
        BusCounters::add(&self.counters.published);
        match &self.redis {
            None => {
                BusCounters::add(&self.counters.received);
                let _ = self.local.send(message);
            }
            Some(redis) => {
                // A request must not wait on a Redis that is down: the change is committed already and
                // other instances catch up from the database when the bus returns.
                let outcome = tokio::time::timeout(PUBLISH_TIMEOUT, redis.publish(&message)).await;
                if !matches!(outcome, Ok(Ok(()))) {
                    BusCounters::add(&self.counters.publish_failures);
                    tracing::warn!(
                        "publishing to Redis failed or timed out; delivering locally only"
                    );
                    let _ = self.local.send(message);
                }
            }
        }
    }

    pub fn stats(&self) -> BusStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BusStats {
            published: read(&self.counters.published),
            received: read(&self.counters.received),
            publish_failures: read(&self.counters.publish_failures),
            resyncs: read(&self.counters.resyncs),
            backlog: self.local.len(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.local.subscribe()
    }

    /// Whether the transport is healthy: always for in-process, a PING for Redis.
    pub async fn is_healthy(&self) -> bool {
        match &self.redis {
            None => true,
            Some(redis) => redis.ping().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_subscribers_receive_what_is_published_after_they_subscribe() {
        let bus = Bus::in_process();
        let mut receiver = bus.subscribe();
        let event_id = Uuid::now_v7();
        bus.publish(LiveMessage::InventoryChanged { event_id })
            .await;
        assert_eq!(
            receiver.recv().await.ok(),
            Some(LiveMessage::InventoryChanged { event_id })
        );
        let stats = bus.stats();
        assert_eq!((stats.published, stats.received, stats.backlog), (1, 1, 0));
    }

    #[test]
    fn the_wire_format_is_versioned_json() {
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            message: LiveMessage::Resync,
        };
        let json = serde_json::to_value(&envelope).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({ "v": 1, "message": { "type": "resync" } })
        );
    }
}
