//! Notifications: stored, listed with an unread count, marked read, and pushed live.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Shape, TestApp, create_event_shaped, error_code, hand_over};
use crate::subscriptions::{connect, next_message, send};

const LIST: &str =
    "{ myNotifications { unreadCount edges { node { id kind title body data readAt } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_clients_cannot_subscribe_to_notifications() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myNotifications { id } }" } }),
    )
    .await;
    let message = next_message(&mut socket).await;
    // async-graphql reports a refused subscription field as a result with errors.
    assert_eq!(
        message["payload"]["data"],
        serde_json::Value::Null,
        "{message}"
    );
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let query = app.graphql(LIST, json!({})).await;
    assert_eq!(error_code(&query), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_event_notifies_its_buyers_live_and_in_their_inbox() {
    let app = TestApp::spawn().await;
    let organizer = app.organizer().await;
    let event = create_event_shaped(&app, "Notify", 5, Shape::default()).await;
    // Hand the event to a signed-in organizer so the cancellation goes through the API.
    hand_over(&app, event.event_id, organizer.user_id).await;
    let tiers = app
        .data(
            "query($id: ID!) { event(id: $id) { tiers { id kind } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    let standing = tiers["event"]["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .find(|t| t["kind"] == "GENERAL_ADMISSION")
        .map(|t| t["id"].clone())
        .expect("standing tier");
    let buyer = app.buyers(1).await.remove(0);
    app.data_as(
        &buyer,
        "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id } }",
        json!({ "input": { "tierId": standing, "quantity": 1, "paymentToken": "tok_visa", "idempotencyKey": Uuid::new_v4().to_string() } }),
    )
    .await;

    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {buyer}") }),
    )
    .await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myNotifications { id kind body } }" } }),
    )
    .await;
    // Messages on one socket are handled in order: once a later subscription answers, the first one
    // is registered.
    send(
        &mut socket,
        json!({ "id": "2", "type": "subscribe", "payload": { "query": "subscription { heartbeat(intervalSeconds: 1) }" } }),
    )
    .await;
    let tick = next_message(&mut socket).await;
    assert_eq!(tick["id"], "2");
    send(&mut socket, json!({ "id": "2", "type": "complete" })).await;

    app.data_as(
        &organizer.access_token,
        "mutation($id: ID!) { cancelEvent(id: $id, reason: \"storm warning\") { status } }",
        json!({ "id": event.event_id }),
    )
    .await;
    let pushed = loop {
        let message = next_message(&mut socket).await;
        if message["id"] == "1" {
            break message;
        }
    };
    assert_eq!(pushed["type"], "next", "{pushed}");
    assert_eq!(
        pushed["payload"]["data"]["myNotifications"]["kind"],
        "event_cancelled"
    );

    let inbox = app.data_as(&buyer, LIST, json!({})).await;
    assert_eq!(inbox["myNotifications"]["unreadCount"], 1);
    let id = inbox["myNotifications"]["edges"][0]["node"]["id"].clone();
    assert!(
        inbox["myNotifications"]["edges"][0]["node"]["body"]
            .as_str()
            .unwrap_or("")
            .contains("storm warning")
    );
    let read = app
        .data_as(
            &buyer,
            "mutation($id: ID!) { markNotificationRead(id: $id) { readAt } }",
            json!({ "id": id }),
        )
        .await;
    assert!(read["markNotificationRead"]["readAt"].is_string());
    let after = app.data_as(&buyer, LIST, json!({})).await;
    assert_eq!(after["myNotifications"]["unreadCount"], 0);
    let none_left = app
        .data_as(&buyer, "mutation { markAllNotificationsRead }", json!({}))
        .await;
    assert_eq!(none_left["markAllNotificationsRead"], 0);
    let stranger = app.buyers(1).await.remove(0);
    let foreign = app
        .graphql_as(
            &stranger,
            "mutation($id: ID!) { markNotificationRead(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
}
