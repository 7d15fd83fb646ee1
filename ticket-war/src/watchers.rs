//! Live subscribers during the storm: how long a change takes from its answer to a client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::args::Mode;
use crate::storm::{Shared, lock, new_histogram};

/// tungstenite zero-fills its whole read buffer before every read, the reads that find nothing
/// included. At its default of 128 KiB, 10,000 subscribers spent 15 % of the machine's CPU in
/// `memset` (perf, during a storm): CPU the server under test then lacked. Larger messages are
/// still read whole, in several reads.
const READ_BUFFER: usize = 4 * 1024;

/// What the subscribers saw.
pub struct WatchReport {
    pub connected: u64,
    /// From the first connect to the last subscriber's first message (or failure).
    pub connect_time: Duration,
    pub messages: u64,
    /// Of those, SNAPSHOTs after the first message: the server resynced a subscriber that fell behind.
    pub resyncs: u64,
    /// Subscriptions the server answered with an error (SERVER_BUSY at connect, say) instead of data:
    /// they were connected but never followed the event.
    pub refused: u64,
    /// The refusals by the `extensions.code` of their first error (`NO_CODE` when it had none,
    /// `COMPLETED` when the server ended the subscription without an error), so a report says why.
    pub refused_codes: BTreeMap<String, u64>,
    /// From the answer that changed a seat reaching its buyer (the hold for HELD, the checkout for
    /// SOLD; seat modes) or the last ticket being confirmed (ga mode) to a subscriber receiving the
    /// change, in microseconds.
    pub delivery: Histogram<u64>,
    /// Subscribers that never saw the final state.
    pub behind: u64,
}

pub struct Watchers {
    tasks: tokio::task::JoinSet<bool>,
    connect_time: Duration,
    connected: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    resyncs: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    refused_codes: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    delivery: Arc<std::sync::Mutex<Histogram<u64>>>,
}

/// How subscribers connect and what they ask for.
#[derive(Clone, Copy)]
pub struct Plan {
    pub mode: Mode,
    pub count: usize,
    /// Subscribers between connecting and their first message at any time.
    pub connect_concurrency: usize,
    pub full_snapshots: bool,
}

/// Connects `plan.count` subscribers, `plan.connect_concurrency` at a time, and lets them follow the
/// event. Returns once every one has its first message (or gave up).
/// `seats` are the event's seat ids in the seat map's order, to read compact deltas.
pub async fn start(
    ws_url: &str,
    event_id: &str,
    seats: &[String],
    plan: Plan,
    shared: &Arc<Shared>,
) -> Watchers {
    let started = Instant::now();
    let Plan { mode, count, .. } = plan;
    let query = subscription(plan);
    let connecting = Arc::new(tokio::sync::Semaphore::new(plan.connect_concurrency.max(1)));
    let mut watchers = Watchers {
        tasks: tokio::task::JoinSet::new(),
        connect_time: Duration::ZERO,
        connected: Arc::new(AtomicU64::new(0)),
        messages: Arc::new(AtomicU64::new(0)),
        resyncs: Arc::new(AtomicU64::new(0)),
        refused: Arc::new(AtomicU64::new(0)),
        refused_codes: Arc::default(),
        delivery: Arc::new(std::sync::Mutex::new(new_histogram())),
    };
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count.max(1));
    let seats: Arc<[String]> = seats.into();
    for _ in 0..count {
        let (url, event_id, shared) = (ws_url.to_owned(), event_id.to_owned(), shared.clone());
        let seats = Arc::clone(&seats);
        let counters = Counters {
            connected: watchers.connected.clone(),
            messages: watchers.messages.clone(),
            resyncs: watchers.resyncs.clone(),
            refused: watchers.refused.clone(),
            refused_codes: watchers.refused_codes.clone(),
            delivery: watchers.delivery.clone(),
        };
        let ready = ready_tx.clone();
        let connecting = Arc::clone(&connecting);
        watchers.tasks.spawn(async move {
            // Released with `ready`, when the first message arrived or the subscriber gave up.
            let Ok(slot) = connecting.acquire_owned().await else {
                return false;
            };
            let ready = Ready {
                _slot: slot,
                _ready: ready,
            };
            let target = Target {
                url: &url,
                event_id: &event_id,
                seats: &seats,
            };
            follow(target, mode, query, &shared, &counters, ready)
                .await
                .unwrap_or(false)
        });
    }
    drop(ready_tx);
    // The storm starts once every subscriber has its first message (or gave up).
    while ready_rx.recv().await.is_some() {}
    watchers.connect_time = started.elapsed();
    watchers
}

/// Held by a subscriber until its first message: a connect slot, and the storm's wait for it.
struct Ready {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _ready: tokio::sync::mpsc::Sender<()>,
}

fn subscription(plan: Plan) -> &'static str {
    match (plan.mode, plan.full_snapshots) {
        (Mode::Ga, _) => {
            "subscription($e: ID!) { availabilityChanged(eventId: $e) { tiers { available } } }"
        }
        (_, true) => {
            "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind seats { seatId status } } }"
        }
        (_, false) => {
            "subscription($e: ID!) { seatMapChanged(eventId: $e, snapshotFormat: RUNS) { kind statuses statusChanges } }"
        }
    }
}

impl Watchers {
    /// Waits (up to `grace`) for the subscribers to see the final state (a sold-out tier), then closes
    /// them. Without a final state to expect they simply get `grace` to drain.
    pub async fn finish(mut self, grace: Duration, expect_final: bool) -> WatchReport {
        let mut behind = 0;
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => match joined {
                    Some(Ok(true)) => {}
                    Some(_) => behind += 1,
                    None => break,
                },
                () = &mut deadline => {
                    if expect_final {
                        behind += self.tasks.len() as u64;
                    }
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        WatchReport {
            connected: self.connected.load(Ordering::Relaxed),
            connect_time: self.connect_time,
            messages: self.messages.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            refused_codes: lock(&self.refused_codes).clone(),
            delivery: lock(&self.delivery).clone(),
            behind,
        }
    }
}

/// What every subscriber adds to.
struct Counters {
    connected: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    resyncs: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    refused_codes: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    delivery: Arc<std::sync::Mutex<Histogram<u64>>>,
}

/// What a subscriber follows.
struct Target<'a> {
    url: &'a str,
    event_id: &'a str,
    /// In the seat map's order.
    seats: &'a [String],
}

/// One subscriber; true once it has seen the storm's final state.
async fn follow(
    target: Target<'_>,
    mode: Mode,
    query: &str,
    shared: &Shared,
    counters: &Counters,
    ready: Ready,
) -> anyhow::Result<bool> {
    let Target {
        url,
        event_id,
        seats,
    } = target;
    let Counters {
        connected,
        messages,
        resyncs,
        refused,
        refused_codes,
        delivery,
    } = counters;
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let connecting =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await;
    let (mut socket, _) = match connecting {
        Ok(socket) => socket,
        Err(err) => {
            drop(ready);
            return Err(err.into());
        }
    };
    socket
        .send(Message::Text(
            json!({ "type": "connection_init", "payload": {} })
                .to_string()
                .into(),
        ))
        .await?;
    socket
        .send(Message::Text(
            json!({ "id": "w", "type": "subscribe", "payload": { "query": query, "variables": { "e": event_id } } })
                .to_string()
                .into(),
        ))
        .await?;
    let mut ready = Some(ready);
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let message: Value = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("connection_ack") => {
                connected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Some("ping") => {
                socket
                    .send(Message::Text(json!({ "type": "pong" }).to_string().into()))
                    .await?;
                continue;
            }
            Some("next") if message["payload"].get("errors").is_none() => {}
            // The subscription failed or ended: it will never deliver anything, and must not hold
            // up the storm's start.
            Some("next" | "error" | "complete") => {
                refused.fetch_add(1, Ordering::Relaxed);
                *lock(refused_codes)
                    .entry(refusal_code(&message))
                    .or_default() += 1;
                return Ok(false);
            }
            _ => continue,
        }
        let received = Instant::now();
        let first = ready.take().is_some();
        if first {
            // The current state: the storm has not started yet.
            continue;
        }
        messages.fetch_add(1, Ordering::Relaxed);
        let data = &message["payload"]["data"];
        match mode {
            Mode::Ga => {
                let available = data["availabilityChanged"]["tiers"][0]["available"].as_i64();
                if available == Some(0) {
                    if let Some(answered) = shared.last_confirmed_at() {
                        record(delivery, received.saturating_duration_since(answered));
                    }
                    return Ok(true);
                }
            }
            _ => {
                if data["seatMapChanged"]["kind"] == "SNAPSHOT" {
                    resyncs.fetch_add(1, Ordering::Relaxed);
                }
                let update = &data["seatMapChanged"];
                let changed: Vec<(&str, char)> = match update["statusChanges"].as_str() {
                    Some(changes) => status_changes(changes)
                        .filter_map(|(at, status)| Some((seats.get(at)?.as_str(), status)))
                        .collect(),
                    None => update["seats"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|seat| {
                            let status = seat["status"].as_str()?.chars().next()?;
                            Some((seat["seatId"].as_str()?, status))
                        })
                        .collect(),
                };
                let answered = shared.answered(&changed);
                for ((_, status), at) in changed.iter().zip(answered) {
                    // A change that arrives before its buyer's answer was delivered no later than
                    // the answer: it counts as immediate, not as missing.
                    if let Some(at) = at {
                        record(delivery, received.saturating_duration_since(at));
                    } else if *status == 'S' {
                        record(delivery, Duration::ZERO);
                    }
                }
            }
        }
    }
    Ok(false)
}

/// The seat positions and new status letters of a compact delta (`statusChanges`: a position, then
/// a status letter, per seat).
fn status_changes(changes: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    changes
        .split_inclusive(|c: char| c.is_ascii_alphabetic())
        .filter_map(|change| {
            let (at, status) = change.char_indices().last()?;
            if !status.is_ascii_alphabetic() {
                return None;
            }
            Some((change[..at].parse().ok()?, status))
        })
}

/// The code a refusal carried: graphql-transport-ws sends an `error` message with a list of errors
/// as its payload, or a `next` whose payload has `errors`; a bare `complete` has none.
fn refusal_code(message: &Value) -> String {
    let payload = &message["payload"];
    let errors = if payload.is_array() {
        payload
    } else {
        &payload["errors"]
    };
    match (
        message["type"].as_str(),
        errors[0]["extensions"]["code"].as_str(),
    ) {
        (_, Some(code)) => code.to_owned(),
        (Some("complete"), None) => "COMPLETED".to_owned(),
        (_, None) => "NO_CODE".to_owned(),
    }
}

fn record(histogram: &std::sync::Mutex<Histogram<u64>>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = lock(histogram).record(micros);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{refusal_code, status_changes};

    #[test]
    fn a_compact_delta_names_seats_by_position_and_status() {
        assert_eq!(
            status_changes("0H17S204A").collect::<Vec<_>>(),
            [(0, 'H'), (17, 'S'), (204, 'A')]
        );
        assert_eq!(status_changes("").count(), 0);
        // Nothing the server might send makes the reader panic: a stray character or a position
        // without its letter is skipped.
        assert_eq!(status_changes("7Hé5S12").collect::<Vec<_>>(), [(7, 'H')]);
    }

    #[test]
    fn a_refusal_is_counted_under_the_code_it_carried() {
        let error = json!({ "id": "w", "type": "error",
            "payload": [{ "message": "busy", "extensions": { "code": "SERVER_BUSY" } }] });
        assert_eq!(refusal_code(&error), "SERVER_BUSY");
        let next = json!({ "id": "w", "type": "next",
            "payload": { "data": null, "errors": [{ "message": "no", "extensions": { "code": "NOT_FOUND" } }] } });
        assert_eq!(refusal_code(&next), "NOT_FOUND");
        let bare = json!({ "id": "w", "type": "error", "payload": [{ "message": "parse error" }] });
        assert_eq!(refusal_code(&bare), "NO_CODE");
        assert_eq!(
            refusal_code(&json!({ "id": "w", "type": "complete" })),
            "COMPLETED"
        );
    }
}
