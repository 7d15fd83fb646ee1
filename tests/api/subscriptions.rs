//! Subscriptions over WebSocket, with real clients for both subprotocols.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::helpers::TestApp;

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket on `/graphql` speaking `protocol` and completes `connection_init`.
pub async fn connect(app: &TestApp, protocol: &str, init_payload: Value) -> Socket {
    let mut request = app.ws_url().into_client_request().expect("valid request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        protocol.parse().expect("header value"),
    );
    let (mut socket, response) = connect_async(request).await.expect("the upgrade succeeds");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        protocol,
        "the server speaks the protocol the client asked for"
    );
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": init_payload }),
    )
    .await;
    let ack = next_message(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("the socket accepts the message");
}

/// Subscribes with graphql-transport-ws and returns once the server has registered the subscription:
/// messages on one socket are handled in order, so a later heartbeat's first tick proves it.
pub async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    send(
        socket,
        json!({ "id": "sync", "type": "subscribe", "payload": { "query": "subscription { heartbeat(intervalSeconds: 1) }" } }),
    )
    .await;
    loop {
        let message = next_message(socket).await;
        assert_ne!(
            message["id"], id,
            "nothing is pushed before a change: {message}"
        );
        if message["id"] == "sync" {
            break;
        }
    }
    send(socket, json!({ "id": "sync", "type": "complete" })).await;
}

/// The next message for subscription `id`, skipping others (such as a heartbeat's last tick).
pub async fn next_for(socket: &mut Socket, id: &str) -> Value {
    loop {
        let message = next_message(socket).await;
        if message["id"] == id {
            return message;
        }
    }
}

/// The next protocol message, skipping keep-alives; fails after ten seconds without one.
pub async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a message within ten seconds")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            let message: Value = serde_json::from_str(&text).expect("JSON message");
            if message["type"] != "ka" && message["type"] != "ping" && message["type"] != "pong" {
                return message;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_transport_ws_clients_receive_subscription_data() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe",
                "payload": { "query": "subscription { heartbeat(intervalSeconds: 1) }" } }),
    )
    .await;
    let message = next_message(&mut socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], "1");
    let sent_at = message["payload"]["data"]["heartbeat"]
        .as_str()
        .expect("a timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(sent_at).is_ok());
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_message_larger_than_the_read_buffer_is_read_whole() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    // The server reads into 1 KiB; a long query (a client's documented operation, say) is 20 KiB.
    let comment = format!("# {}\n", "x".repeat(20 * 1024));
    let query = format!("{comment}subscription {{ heartbeat(intervalSeconds: 1) }}");
    send(
        &mut socket,
        json!({ "id": "long", "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
    let message = next_message(&mut socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], "long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_graphql_ws_clients_receive_subscription_data() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "7", "type": "start",
                "payload": { "query": "subscription { heartbeat(intervalSeconds: 1) }" } }),
    )
    .await;
    let message = next_message(&mut socket).await;
    assert_eq!(message["type"], "data", "{message}");
    assert_eq!(message["id"], "7");
    assert!(message["payload"]["data"]["heartbeat"].is_string());
    send(&mut socket, json!({ "id": "7", "type": "stop" })).await;
}

mod crowd {
    use futures::future::join_all;
    use serde_json::{Value, json};

    use super::{Socket, connect, next_message, send};
    use crate::helpers::{TestApp, create_draft_event, create_small_event, error_code, hand_over};

    const SEAT_MAP: &str =
        "subscription($e: ID!) { seatMapChanged(eventId: $e) { kind seats { seatId status } } }";
    const AVAILABILITY: &str =
        "subscription($e: ID!) { availabilityChanged(eventId: $e) { tiers { available } } }";

    async fn subscribe(socket: &mut Socket, query: &str, event_id: uuid::Uuid) {
        send(
            socket,
            json!({ "id": "1", "type": "subscribe",
                    "payload": { "query": query, "variables": { "e": event_id } } }),
        )
        .await;
    }

    /// The payload of a subscription's first message, or the failure in its place.
    fn first_data(message: &Value) -> Result<&Value, String> {
        if message["type"] == "next" && message["payload"].get("errors").is_none() {
            Ok(&message["payload"]["data"])
        } else {
            Err(message.to_string())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_subscribing_to_one_event_at_once_all_get_their_first_message() {
        const CROWD: usize = 200;
        let app = TestApp::spawn().await;
        let event = create_small_event(&app, "Crowd", 10).await;
        // Everybody connects first, so the subscriptions themselves arrive together.
        let mut sockets =
            join_all((0..CROWD).map(|_| connect(&app, "graphql-transport-ws", json!({})))).await;
        let statements_before = app.statements();
        for (at, socket) in sockets.iter_mut().enumerate() {
            let query = if at % 2 == 0 { SEAT_MAP } else { AVAILABILITY };
            subscribe(socket, query, event.event_id).await;
        }
        let firsts = join_all(sockets.iter_mut().map(next_message)).await;
        let statements = app.statements() - statements_before;

        let refused: Vec<String> = firsts
            .iter()
            .filter_map(|first| first_data(first).err())
            .collect();
        assert!(
            refused.is_empty(),
            "{} refused: {:?}",
            refused.len(),
            &refused[..1]
        );
        for (at, first) in firsts.iter().enumerate() {
            let data = first_data(first).unwrap_or(&Value::Null);
            if at % 2 == 0 {
                assert_eq!(data["seatMapChanged"]["kind"], "SNAPSHOT", "{first}");
                assert_eq!(
                    data["seatMapChanged"]["seats"].as_array().map(Vec::len),
                    Some(12)
                );
            } else {
                assert!(data["availabilityChanged"]["tiers"].is_array(), "{first}");
            }
        }
        // One read per subscriber is what queued a crowd on the pool until it timed out: the crowd
        // shares the event's row and the feed's state instead.
        assert!(
            statements < CROWD as u64,
            "{statements} statements for {CROWD} subscribers"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_draft_event_can_be_followed_by_its_organizer_only() {
        let app = TestApp::spawn().await;
        let draft_id = create_draft_event(&app).await;
        for query in [SEAT_MAP, AVAILABILITY] {
            let mut stranger = connect(&app, "graphql-transport-ws", json!({})).await;
            subscribe(&mut stranger, query, draft_id).await;
            // A resolver's error comes as a `next` with errors; an `error` message carries a list.
            let refusal = next_message(&mut stranger).await;
            let errors = if refusal["type"] == "error" {
                refusal["payload"].clone()
            } else {
                refusal["payload"]["errors"].clone()
            };
            assert_eq!(error_code(&json!({ "errors": errors })), "NOT_FOUND");
        }

        let organizer = app.organizer().await;
        hand_over(&app, draft_id, organizer.user_id).await;
        for query in [SEAT_MAP, AVAILABILITY] {
            let mut socket = connect(
                &app,
                "graphql-transport-ws",
                json!({ "token": organizer.access_token }),
            )
            .await;
            subscribe(&mut socket, query, draft_id).await;
            let first = next_message(&mut socket).await;
            assert!(first_data(&first).is_ok(), "{first}");
        }
    }
}
