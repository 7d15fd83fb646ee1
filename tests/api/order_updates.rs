//! `orderUpdated`: a buyer's holds and orders pushed live, from creation to expiry or cancellation.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::tiers;
use crate::helpers::{Options, TestApp, create_small_event, error_code};
use crate::subscriptions::{connect, next_for, next_message, send, subscribe};

const ORDER_UPDATED: &str = "subscription($event: ID) { orderUpdated(eventId: $event) { \
    kind eventId hold { id status } order { id status } } }";
const HOLD_TICKETS: &str =
    "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id } }";
const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }";

async fn hold_tickets(app: &TestApp, token: &str, tier: Uuid) -> Value {
    app.data_as(
        token,
        HOLD_TICKETS,
        json!({ "input": { "tierId": tier, "quantity": 2, "idempotencyKey": Uuid::new_v4().to_string() } }),
    )
    .await["holdTickets"]["id"]
        .clone()
}

fn update(message: &Value) -> &Value {
    assert_eq!(message["type"], "next", "{message}");
    &message["payload"]["data"]["orderUpdated"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_follows_a_hold_through_payment_and_cancellation_live() {
    let app = TestApp::spawn().await;
    // With Redis, watch from a second instance: the updates cross the bus like seat changes do.
    let sibling = if app.uses_redis() {
        Some(app.spawn_sibling().await)
    } else {
        None
    };
    let watched = sibling.as_ref().unwrap_or(&app);
    let event = create_small_event(&app, "Order Updates", 5).await;
    let tier = tiers(&app, event.event_id).await.standing;
    let mut buyers = app.buyers(2).await;
    let (me, someone_else) = (buyers.remove(0), buyers.remove(0));

    let mut socket = connect(
        watched,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {me}") }),
    )
    .await;
    subscribe(
        &mut socket,
        "1",
        ORDER_UPDATED,
        json!({ "event": event.event_id }),
    )
    .await;

    // Another buyer's hold is not pushed to me: my first update is my own hold.
    hold_tickets(&app, &someone_else, tier).await;
    let hold_id = hold_tickets(&app, &me, tier).await;
    let created = next_for(&mut socket, "1").await;
    let created = update(&created);
    assert_eq!(created["kind"], "HOLD_CREATED");
    assert_eq!(created["hold"]["id"], hold_id);
    assert_eq!(created["hold"]["status"], "ACTIVE");
    assert_eq!(created["eventId"], event.event_id.to_string());

    let declined = app
        .graphql_as(
            &me,
            CHECKOUT,
            json!({ "input": { "holdId": hold_id, "paymentToken": "tok_decline", "idempotencyKey": Uuid::new_v4().to_string() } }),
        )
        .await;
    assert_eq!(error_code(&declined), "PAYMENT_DECLINED");
    let message = next_for(&mut socket, "1").await;
    let pushed = update(&message);
    assert_eq!(pushed["kind"], "PAYMENT_DECLINED");
    assert_eq!(
        pushed["hold"]["status"], "ACTIVE",
        "the hold stays for another try"
    );

    let paid = app
        .data_as(
            &me,
            CHECKOUT,
            json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": Uuid::new_v4().to_string() } }),
        )
        .await;
    let order_id = paid["checkout"]["id"].clone();
    let message = next_for(&mut socket, "1").await;
    let pushed = update(&message);
    assert_eq!(pushed["kind"], "ORDER_CONFIRMED");
    assert_eq!(pushed["order"]["id"], order_id);
    assert_eq!(pushed["order"]["status"], "PAID");

    for (mutation, kind, status) in [
        (
            "mutation($o: ID!) { cancelOrder(orderId: $o) { id } }",
            "ORDER_CANCELLED",
            "CANCELLED",
        ),
        (
            "mutation($o: ID!) { undoCancellation(orderId: $o) { id } }",
            "ORDER_RESTORED",
            "PAID",
        ),
    ] {
        app.data_as(&me, mutation, json!({ "o": order_id })).await;
        let message = next_for(&mut socket, "1").await;
        let pushed = update(&message);
        assert_eq!(pushed["kind"], kind);
        assert_eq!(pushed["order"]["id"], order_id);
        assert_eq!(pushed["order"]["status"], status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_warns_before_it_expires_again_after_an_extension_then_expires() {
    let app = TestApp::spawn_with(Options {
        hold_ttl_seconds: Some(3),
        hold_warning_seconds: Some(2),
        sweep_interval_ms: Some(100),
        ..Options::default()
    })
    .await;
    let event = create_small_event(&app, "Expiring", 5).await;
    let tier = tiers(&app, event.event_id).await.standing;
    let me = app.buyers(1).await.remove(0);
    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {me}") }),
    )
    .await;
    subscribe(&mut socket, "1", ORDER_UPDATED, json!({})).await;

    let hold_id = hold_tickets(&app, &me, tier).await;
    let mut kinds = Vec::new();
    let mut extended = false;
    loop {
        let message = next_for(&mut socket, "1").await;
        let pushed = update(&message);
        assert_eq!(pushed["hold"]["id"], hold_id, "{pushed}");
        let kind = pushed["kind"].as_str().unwrap_or_default().to_owned();
        kinds.push(kind.clone());
        if kind == "HOLD_EXPIRING_SOON" && !extended {
            extended = true;
            app.data_as(
                &me,
                "mutation($h: ID!) { extendHold(holdId: $h) { id } }",
                json!({ "h": hold_id }),
            )
            .await;
        }
        if kind == "HOLD_EXPIRED" {
            assert_eq!(pushed["hold"]["status"], "EXPIRED");
            break;
        }
    }
    assert_eq!(
        kinds,
        [
            "HOLD_CREATED",
            "HOLD_EXPIRING_SOON",
            "HOLD_EXTENDED",
            "HOLD_EXPIRING_SOON",
            "HOLD_EXPIRED"
        ],
        "one warning per expiry"
    );

    let inbox = app
        .data_as(
            &me,
            "{ myNotifications { unreadCount edges { node { kind data } } } }",
            json!({}),
        )
        .await;
    let warnings: Vec<&Value> = inbox["myNotifications"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| &edge["node"])
        .filter(|node| node["kind"] == "hold_expiring")
        .collect();
    assert_eq!(warnings.len(), 2, "{inbox}");
    assert_eq!(warnings[0]["data"]["holdId"], hold_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updates_need_a_signed_in_client() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "start", "payload": { "query": ORDER_UPDATED } }),
    )
    .await;
    let message = next_message(&mut socket).await;
    assert_eq!(message["payload"]["data"], Value::Null, "{message}");
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweepers_warn_each_hold_once() {
    let app = TestApp::spawn().await;
    let event = create_small_event(&app, "Warn Once", 5).await;
    let tier = tiers(&app, event.event_id).await.standing;
    let buyers = app.buyers(12).await;
    for buyer in &buyers {
        hold_tickets(&app, buyer, tier).await;
    }
    let now = chrono::Utc::now();
    let sweepers = (0..4).map(|_| {
        let db = app.state.db.clone();
        tokio::spawn(async move {
            seatstorm::booking::sweeper::warn_expiring(&db, now, chrono::Duration::hours(1))
                .await
                .expect("a warning pass")
                .len()
        })
    });
    let mut warned = 0;
    for sweeper in sweepers {
        warned += sweeper.await.expect("the sweeper task");
    }
    assert_eq!(warned, buyers.len());
    for buyer in &buyers {
        let inbox = app
            .data_as(buyer, "{ myNotifications { unreadCount } }", json!({}))
            .await;
        assert_eq!(inbox["myNotifications"]["unreadCount"], 1);
    }
}

/// A pushed update resolves nested fields as a query would: the hold's event and venue, the order's
/// lines and tickets all go through the loaders the connection carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_updates_resolve_nested_fields() {
    let app = TestApp::spawn().await;
    let event = create_small_event(&app, "Nested Updates", 5).await;
    let tier = tiers(&app, event.event_id).await.standing;
    let me = app.buyers(1).await.remove(0);
    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {me}") }),
    )
    .await;
    subscribe(
        &mut socket,
        "1",
        "subscription { orderUpdated { kind \
         hold { totalCents seats { id } event { title venue { name sections { name } } } } \
         order { lines { quantity } tickets { seat { row } } event { title } } } }",
        json!({}),
    )
    .await;

    let hold_id = hold_tickets(&app, &me, tier).await;
    let message = next_for(&mut socket, "1").await;
    let created = update(&message);
    assert_eq!(created["kind"], "HOLD_CREATED", "{message}");
    assert_eq!(created["hold"]["event"]["title"], "Nested Updates");
    assert!(
        created["hold"]["totalCents"]
            .as_i64()
            .is_some_and(|cents| cents > 0)
    );
    assert!(
        created["hold"]["event"]["venue"]["sections"]
            .as_array()
            .is_some_and(|sections| !sections.is_empty()),
        "{message}"
    );

    app.data_as(
        &me,
        CHECKOUT,
        json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": Uuid::new_v4().to_string() } }),
    )
    .await;
    let message = next_for(&mut socket, "1").await;
    let confirmed = update(&message);
    assert_eq!(confirmed["kind"], "ORDER_CONFIRMED", "{message}");
    assert_eq!(confirmed["order"]["lines"][0]["quantity"], 2, "{message}");
    assert_eq!(
        confirmed["order"]["tickets"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(confirmed["order"]["event"]["title"], "Nested Updates");
}
