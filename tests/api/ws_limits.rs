//! WebSocket limits, each ending with the protocol's own answer.

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Options, TestApp};
use crate::subscriptions::{Socket, connect, send};

async fn open(app: &TestApp) -> Socket {
    let mut request = app.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade")
        .0
}

/// The next frame of any kind, within ten seconds.
async fn next_frame(socket: &mut Socket) -> Message {
    tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("a frame within ten seconds")
        .expect("the socket is open")
        .expect("a valid frame")
}

/// The next text message, parsed.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        if let Message::Text(text) = next_frame(socket).await {
            return serde_json::from_str(&text).expect("json");
        }
    }
}

/// Subscribes `id` to a heartbeat and checks it gets its first message, not a refusal.
async fn assert_admitted(socket: &mut Socket, id: &str) {
    let query = "subscription { heartbeat(intervalSeconds: 1) }";
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
    let data = loop {
        let message = next_json(socket).await;
        if message["id"] == id {
            break message;
        }
    };
    assert_eq!(data["type"], "next", "{data}");
}

async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        if let Message::Close(frame) = next_frame(socket).await {
            return frame.expect("a close frame with a code").code.into();
        }
    }
}

fn limited(init: u64, keepalive: u64, subscriptions: usize, connections: usize) -> Options {
    Options {
        ws_limits: Some((init, keepalive, subscriptions, connections)),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_initialises_is_closed_with_4408() {
    let app = TestApp::spawn_with(limited(1, 60, 10, 10)).await;
    let mut socket = open(&app).await;
    assert_eq!(close_code(&mut socket).await, 4408);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_idle_connections_alive_with_pings() {
    let app = TestApp::spawn_with(limited(10, 1, 10, 10)).await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    let ping = loop {
        if let Message::Text(text) = next_frame(&mut socket).await {
            break serde_json::from_str::<Value>(&text).expect("json");
        }
    };
    assert_eq!(ping["type"], "ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_over_the_cap_are_refused_one_by_one() {
    let app = TestApp::spawn_with(limited(10, 60, 2, 10)).await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    for id in ["1", "2", "3"] {
        send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { heartbeat(intervalSeconds: 60) }" } }),
        )
        .await;
    }
    let refusal = loop {
        let message = next_json(&mut socket).await;
        if message["type"] == "error" {
            break message;
        }
    };
    assert_eq!(refusal["id"], "3");
    assert_eq!(
        refusal["payload"][0]["extensions"]["code"],
        "TOO_MANY_REQUESTS"
    );
    // Completing one frees its place.
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    assert_admitted(&mut socket, "4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_connection_cap_is_closed_with_4429() {
    let app = TestApp::spawn_with(limited(10, 60, 10, 1)).await;
    let token = app.buyers(1).await.remove(0);
    let _first = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {token}") }),
    )
    .await;
    let mut second = open(&app).await;
    send(
        &mut second,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    assert_eq!(close_code(&mut second).await, 4429);
    // Anonymous connections are not counted against anyone.
    connect(&app, "graphql-transport-ws", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_server_ended_frees_its_place() {
    let app = TestApp::spawn_with(limited(10, 60, 1, 10)).await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    // Refused by the server, by validation and by the resolver (no such event): either way the
    // operation is over, and its place with it.
    let refused_by = [
        json!({ "query": "subscription { noSuchField }" }),
        json!({ "query": "subscription($id: ID!) { seatMapChanged(eventId: $id) { seq } }",
            "variables": { "id": uuid::Uuid::new_v4() } }),
    ];
    for (n, payload) in refused_by.into_iter().enumerate() {
        let id = format!("refused-{n}");
        send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": payload }),
        )
        .await;
        let refused = next_json(&mut socket).await;
        assert_eq!(refused["id"], id.as_str(), "{refused}");
        let errors = match refused["type"].as_str() {
            Some("error") => &refused["payload"],
            _ => &refused["payload"]["errors"],
        };
        assert_ne!(
            errors[0]["extensions"]["code"], "TOO_MANY_REQUESTS",
            "{refused}"
        );
        if refused["type"] == "next" {
            let ended = next_json(&mut socket).await;
            assert_eq!(ended, json!({ "id": id, "type": "complete" }));
        }
    }
    // The one place per connection is free again.
    assert_admitted(&mut socket, "2").await;
}
