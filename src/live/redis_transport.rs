//! Redis pub/sub transport: a connection manager for PUBLISH and one subscriber task per instance.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use super::{BusCounters, ENVELOPE_VERSION, Envelope, LiveMessage};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(super) struct RedisTransport {
    publisher: ConnectionManager,
    channel: String,
}

impl RedisTransport {
    pub(super) async fn start(
        url: &str,
        channel: String,
        local: broadcast::Sender<LiveMessage>,
        counters: Arc<BusCounters>,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        let publisher = client
            .get_connection_manager()
            .await
            .context("cannot connect to Redis at REDIS_URL")?;
        // Subscribe before returning, so nothing published after start-up is missed.
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .context("cannot open the Redis subscriber connection")?;
        pubsub
            .subscribe(&channel)
            .await
            .context("cannot subscribe to the live channel")?;
        tokio::spawn(run_subscriber(
            client,
            channel.clone(),
            local,
            pubsub,
            counters,
        ));
        Ok(Self { publisher, channel })
    }

    pub(super) async fn publish(&self, message: &LiveMessage) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&Envelope {
            v: ENVELOPE_VERSION,
            message: message.clone(),
        })?;
        let mut connection = self.publisher.clone();
        let _receivers: i64 = connection.publish(&self.channel, payload).await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> bool {
        let mut connection = self.publisher.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }
}

/// Forwards every message on the channel to this instance's subscribers, reconnecting with exponential
/// backoff. Runs until the process stops.
async fn run_subscriber(
    client: redis::Client,
    channel: String,
    local: broadcast::Sender<LiveMessage>,
    first: redis::aio::PubSub,
    counters: Arc<BusCounters>,
) {
    let mut pubsub = Some(first);
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut connection = match pubsub.take() {
            Some(connection) => connection,
            None => match subscribe(&client, &channel).await {
                Ok(connection) => {
                    tracing::info!("Redis subscriber reconnected; telling clients to resync");
                    backoff = MIN_BACKOFF;
                    BusCounters::add(&counters.resyncs);
                    let _ = local.send(LiveMessage::Resync);
                    connection
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "Redis subscriber cannot reconnect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let mut messages = connection.on_message();
        while let Some(message) = messages.next().await {
            match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                Ok(envelope) if envelope.v == ENVELOPE_VERSION => {
                    BusCounters::add(&counters.received);
                    let _ = local.send(envelope.message);
                }
                Ok(envelope) => {
                    tracing::warn!(
                        version = envelope.v,
                        "ignoring a live message of an unknown version"
                    );
                }
                Err(err) => tracing::warn!(error = %err, "ignoring a malformed live message"),
            }
        }
        tracing::warn!("Redis subscriber connection closed");
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
