//! One GraphQL WebSocket connection: authentication in `connection_init`, and the limits around it.
//!
//! async-graphql speaks the protocol; this module sits between it and the socket. Outgoing messages
//! go through one writer task, so this module can add its own (keep-alive pings, the init timeout's
//! close, refusals of subscriptions over the cap) and rewrite close codes to what the protocol
//! prescribes: 4403 for a refused token, 4429 for too many connections, 4408 for an init that never
//! came.
//!
//! The plain `seatMapChanged` documents a crowd follows an on-sale with never reach async-graphql:
//! the writer renders their messages itself (`events::direct_seat_map`), one task wake and one small
//! string per message instead of a query execution.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_graphql::{Data, ErrorExtensions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::auth::tokens::TokenKeys;
use crate::error::AppError;
use crate::events::direct_seat_map::DirectSeatMap;
use crate::gql::Loaders;
use crate::persisted::PersistedQueries;
use crate::schema::AppSchema;
use crate::state::AppState;

const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_TOO_MANY: u16 = 4429;
/// What async-graphql closes a refused init with; rewritten to the specific code.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// Limits of one connection and of one user's connections.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    pub init_timeout: Duration,
    pub keepalive: Duration,
    pub max_subscriptions: usize,
    pub max_connections_per_user: usize,
    /// Serve recognised `seatMapChanged` subscriptions directly (see the module doc).
    pub direct_seat_maps: bool,
}

/// Open connections per signed-in user on this instance.
#[derive(Clone, Default)]
pub struct ConnectionRegistry(Arc<Mutex<HashMap<Uuid, usize>>>);

/// Holds one of a user's connection slots until dropped.
struct ConnectionSlot {
    registry: ConnectionRegistry,
    user_id: Uuid,
}

impl ConnectionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_open(&self, user_id: Uuid, max: usize) -> Option<ConnectionSlot> {
        let mut open = self.lock();
        let count = open.entry(user_id).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            registry: self.clone(),
            user_id,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// Why the init was refused (0: it was not), to pick the close code.
const REFUSED_TOKEN: u8 = 1;
const REFUSED_TOO_MANY: u8 = 2;

#[derive(Default)]
struct Session {
    initialized: AtomicBool,
    refusal: AtomicU8,
    active: Mutex<HashSet<String>>,
    slot: Mutex<Option<ConnectionSlot>>,
    /// Who the accepted `connection_init` signed in (`None`: anonymous); unset until then.
    viewer: OnceLock<Option<Viewer>>,
}

impl Session {
    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the writer task is given to send.
enum Outgoing {
    Frame(Message),
    /// Start sending a direct subscription's messages.
    Follow {
        id: String,
        messages: BoxStream<'static, String>,
    },
    /// The client completed subscription `id`.
    Stop(String),
}

/// An item of the direct subscriptions' merged stream.
enum DirectItem {
    Next(String),
    /// Subscription `id` (of this generation) has no more messages.
    End(String, u64),
}

/// The direct subscriptions a writer serves, by id.
#[derive(Default)]
struct DirectSubscriptions {
    streams: SelectAll<BoxStream<'static, DirectItem>>,
    /// Each id's generation and handle; a generation tells an ended subscription from a later one
    /// that reused its id.
    handles: HashMap<String, (u64, AbortHandle)>,
    generations: u64,
}

impl DirectSubscriptions {
    fn follow(&mut self, id: String, messages: BoxStream<'static, String>) {
        self.generations += 1;
        let generation = self.generations;
        let (handle, registration) = AbortHandle::new_pair();
        if let Some((_, replaced)) = self.handles.insert(id.clone(), (generation, handle)) {
            replaced.abort();
        }
        let end = futures::stream::once(async move { DirectItem::End(id, generation) });
        self.streams.push(
            Abortable::new(messages, registration)
                .map(DirectItem::Next)
                .chain(end)
                .boxed(),
        );
    }

    fn stop(&mut self, id: &str) {
        if let Some((_, handle)) = self.handles.get(id) {
            handle.abort();
        }
    }

    /// Forgets an ended subscription; false when `id` now belongs to a later one.
    fn ended(&mut self, id: &str, generation: u64) -> bool {
        match self.handles.get(id) {
            Some((current, _)) if *current == generation => {
                self.handles.remove(id);
                true
            }
            _ => false,
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Serves one upgraded socket until either side closes it. `legacy` is the graphql-ws protocol (the
/// old subscriptions-transport-ws), which pings with `ka` and has no close codes of its own.
pub async fn serve(
    socket: WebSocket,
    protocol: GraphQLProtocol,
    legacy: bool,
    schema: AppSchema,
    state: AppState,
    persisted: PersistedQueries,
    limits: WsLimits,
) {
    let session = Arc::new(Session::default());
    let (mut socket_sink, socket_stream) = socket.split();
    let (mut out, mut outgoing) = futures::channel::mpsc::channel::<Outgoing>(64);

    // One task writes the socket and keeps its timers: the keep-alive pings and the init deadline
    // live here rather than in tasks of their own, which every idle connection would pay for.
    let writer = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            let ping = if legacy {
                r#"{"type":"ka"}"#
            } else {
                r#"{"type":"ping"}"#
            };
            let init_deadline = tokio::time::sleep(limits.init_timeout);
            tokio::pin!(init_deadline);
            let mut awaiting_init = true;
            let mut keepalive = tokio::time::interval_at(
                tokio::time::Instant::now() + limits.keepalive,
                limits.keepalive,
            );
            // After a long write to a slow client, one ping, not one per period missed.
            keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut direct = DirectSubscriptions::default();
            loop {
                let message = tokio::select! {
                    message = outgoing.next() => match message {
                        Some(Outgoing::Frame(message)) => message,
                        Some(Outgoing::Follow { id, messages }) => {
                            direct.follow(id, messages);
                            continue;
                        }
                        Some(Outgoing::Stop(id)) => {
                            direct.stop(&id);
                            continue;
                        }
                        None => break,
                    },
                    Some(item) = direct.streams.next(), if !direct.streams.is_empty() => {
                        match item {
                            DirectItem::Next(text) => Message::Text(text.into()),
                            DirectItem::End(id, generation) => {
                                if !direct.ended(&id, generation) {
                                    continue;
                                }
                                session.active().remove(&id);
                                Message::Text(json!({ "type": "complete", "id": id }).to_string().into())
                            }
                        }
                    }
                    () = &mut init_deadline, if awaiting_init => {
                        awaiting_init = false;
                        if session.initialized.load(Ordering::Relaxed) {
                            continue;
                        }
                        close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")
                    }
                    _ = keepalive.tick() => Message::Text(ping.into()),
                };
                let closing = matches!(message, Message::Close(_));
                if socket_sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = socket_sink.close().await;
        })
    };

    let tokens = state.tokens.clone();
    let registry = state.ws_connections.clone();
    let db = state.db.clone();
    let incoming = {
        let session = Arc::clone(&session);
        let out = out.clone();
        socket_stream.filter_map(move |frame| {
            let session = Arc::clone(&session);
            let mut out = out.clone();
            let state = state.clone();
            let persisted = persisted.clone();
            async move {
                let Ok(Message::Text(text)) = &frame else {
                    return Some(frame);
                };
                let Ok(message) = serde_json::from_str::<Value>(text) else {
                    return Some(frame);
                };
                let id = message["id"].as_str().unwrap_or_default().to_owned();
                match message["type"].as_str() {
                    Some("subscribe" | "start") => {
                        let (admitted, reused) = {
                            let mut active = session.active();
                            let reused = active.contains(&id);
                            let admitted = active.len() < limits.max_subscriptions || reused;
                            if admitted {
                                active.insert(id.clone());
                            }
                            (admitted, reused)
                        };
                        if !admitted {
                            let refusal =
                                too_many_subscriptions(&id, legacy, limits.max_subscriptions);
                            let _ = out.send(Outgoing::Frame(refusal)).await;
                            return None;
                        }
                        // An id still in use stays with whichever path serves it.
                        if limits.direct_seat_maps && !reused {
                            if let Some(messages) =
                                follow_directly(&state, &persisted, &session, &id, legacy, &message)
                                    .await
                            {
                                let _ = out.send(Outgoing::Follow { id, messages }).await;
                                return None;
                            }
                        }
                    }
                    Some("complete" | "stop") => {
                        session.active().remove(&id);
                        let _ = out.send(Outgoing::Stop(id)).await;
                    }
                    _ => {}
                }
                Some(frame)
            }
        })
    };

    let sink = {
        let session = Arc::clone(&session);
        out.clone().with(move |message: Message| {
            futures::future::ready(Ok::<_, futures::channel::mpsc::SendError>(Outgoing::Frame(
                outgoing_message(message, &session),
            )))
        })
    };

    let init_session = Arc::clone(&session);
    GraphQLWebSocket::new_with_pair(sink, incoming, schema, protocol)
        .on_connection_init(move |payload| async move {
            init_session.initialized.store(true, Ordering::Relaxed);
            let mut data = Data::default();
            data.insert(Loaders::new(db));
            match authenticate_payload(&tokens, &payload) {
                Ok(Some(viewer)) => {
                    let Some(slot) =
                        registry.try_open(viewer.user_id, limits.max_connections_per_user)
                    else {
                        init_session
                            .refusal
                            .store(REFUSED_TOO_MANY, Ordering::Relaxed);
                        return Err(AppError::TooManyRequests(format!(
                            "at most {} open connections per user",
                            limits.max_connections_per_user
                        ))
                        .extend());
                    };
                    *init_session.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
                    let _ = init_session.viewer.set(Some(viewer));
                    data.insert(viewer);
                }
                Ok(None) => {
                    let _ = init_session.viewer.set(None);
                }
                Err(err) => {
                    init_session.refusal.store(REFUSED_TOKEN, Ordering::Relaxed);
                    return Err(err.extend());
                }
            }
            Ok(data)
        })
        .serve()
        .await;

    out.close_channel();
    let _ = writer.await;
}

/// The messages of a `subscribe` this connection can serve directly, set up; `None` leaves it to
/// async-graphql (not a recognised document, no accepted init yet, or a set-up that failed, whose
/// error async-graphql then reports).
async fn follow_directly(
    state: &AppState,
    persisted: &PersistedQueries,
    session: &Session,
    id: &str,
    legacy: bool,
    message: &Value,
) -> Option<BoxStream<'static, String>> {
    let viewer = session.viewer.get()?;
    let direct = DirectSeatMap::recognize(&message["payload"], persisted)?;
    let updates = direct.updates(state, viewer.as_ref()).await.ok()?;
    let id = id.to_owned();
    // Counted like any other subscription (and as a direct one), for as long as it streams.
    let streaming = state.metrics.direct_seat_map();
    Some(
        updates
            .map(move |update| {
                let _counted = &streaming;
                direct.render(&id, legacy, &update)
            })
            .boxed(),
    )
}

/// The fields of an outgoing message this module looks at; the payload is skipped without building a
/// tree of it.
#[derive(serde::Deserialize)]
struct OutgoingHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// Notes subscriptions the server completed, and gives a refused init its protocol close code.
fn outgoing_message(message: Message, session: &Session) -> Message {
    match message {
        // Only a `complete` matters here; any other message (a `next` to every subscriber, with its
        // payload) is passed on without being parsed.
        Message::Text(ref text) if text.contains(r#""type":"complete""#) => {
            if let Ok(head) = serde_json::from_str::<OutgoingHead<'_>>(text) {
                if head.kind == "complete" {
                    if let Some(id) = head.id {
                        session.active().remove(id.as_ref());
                    }
                }
            }
            message
        }
        Message::Close(Some(frame)) if frame.code == CLOSE_PROTOCOL_ERROR => {
            let code = match session.refusal.load(Ordering::Relaxed) {
                REFUSED_TOKEN => CLOSE_FORBIDDEN,
                REFUSED_TOO_MANY => CLOSE_TOO_MANY,
                _ => return Message::Close(Some(frame)),
            };
            Message::Close(Some(CloseFrame {
                code,
                reason: frame.reason,
            }))
        }
        other => other,
    }
}

/// The protocol's per-operation error for a subscription over the cap.
fn too_many_subscriptions(id: &str, legacy: bool, max: usize) -> Message {
    let error = json!({
        "message": format!("at most {max} subscriptions per connection"),
        "extensions": { "code": "TOO_MANY_REQUESTS" }
    });
    let payload = if legacy { error } else { json!([error]) };
    Message::Text(
        json!({ "id": id, "type": "error", "payload": payload })
            .to_string()
            .into(),
    )
}

/// The `connection_init` payload may carry the access token as `Authorization` (`"Bearer <token>"`),
/// `authorization`, or `token`.
fn authenticate_payload(tokens: &TokenKeys, payload: &Value) -> Result<Option<Viewer>, AppError> {
    let field = ["Authorization", "authorization"]
        .iter()
        .find_map(|key| {
            payload
                .get(*key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .or_else(|| {
            payload
                .get("token")
                .and_then(|v| v.as_str())
                .map(|token| format!("Bearer {token}"))
        });
    crate::transport::authenticate(tokens, field.as_deref())
}
