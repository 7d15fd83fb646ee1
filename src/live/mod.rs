//! The event bus that carries live changes from the instance that made them to every subscriber.
//!
//! The bus knows no domain: it moves [`LiveMessage`]s. Messages are published only after the transaction
//! that caused them commits. Delivery is best effort: a subscriber that lags is told so by the receiver
//! (`RecvError::Lagged`) and must resync from a snapshot, because the database is the source of truth.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// How many messages a slow subscriber may fall behind before it is told to resync.
const CHANNEL_CAPACITY: usize = 4096;

/// A change worth pushing to clients.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// Inventory of an event changed; carries the event id so subscribers can filter cheaply.
    InventoryChanged { event_id: Uuid },
}

/// In-process fan-out. Cheap to clone: every clone shares the channel.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<LiveMessage>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::in_process()
    }
}

impl Bus {
    pub fn in_process() -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { sender }
    }

    /// Publishes to every subscriber of this instance. Having no subscriber is not an error.
    pub fn publish(&self, message: LiveMessage) {
        let _ = self.sender.send(message);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.sender.subscribe()
    }
}
