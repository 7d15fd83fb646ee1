//! Operations: Prometheus metrics, request ids, persisted queries.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::tiers;
use crate::helpers::{Shape, TestApp, create_event_shaped, error_code};
use crate::subscriptions::{connect, next_for, send};

const BOOK: &str =
    "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id status } }";
const HOLD: &str = "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id } }";

fn book_input(tier_id: Uuid, quantity: i32) -> Value {
    json!({ "input": { "tierId": tier_id, "quantity": quantity, "paymentToken": "tok_visa",
        "idempotencyKey": Uuid::new_v4().to_string() } })
}

async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(app.url("/metrics")).await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

/// The value of the series `name` whose labels include every one of `labels`, if it is exposed.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_shows_in_the_booking_counter_and_its_latency_histogram() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Metered", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(
            &before,
            "seatstorm_bookings_total",
            &[("field", "bookTickets")]
        ),
        None
    );

    let buyer = app.customer().await;
    app.data_as(&buyer.access_token, BOOK, book_input(tiers.standing, 2))
        .await;
    let holder = app.customer().await;
    app.data_as(
        &holder.access_token,
        HOLD,
        json!({ "input": { "tierId": tiers.standing, "quantity": 1, "idempotencyKey": "hold-1" } }),
    )
    .await;
    app.data(
        "query Upcoming { events(first: 1) { edges { cursor } } }",
        json!({}),
    )
    .await;

    let after = scrape(&app).await;
    assert_eq!(
        sample(
            &after,
            "seatstorm_bookings_total",
            &[("field", "bookTickets")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "seatstorm_holds_total", &[("field", "holdTickets")]),
        Some(1.0)
    );
    let unnamed = [("operation", "bookTickets"), ("type", "mutation")];
    assert_eq!(
        sample(
            &after,
            "seatstorm_graphql_request_duration_seconds_count",
            &unnamed
        ),
        Some(1.0)
    );
    let sum = sample(
        &after,
        "seatstorm_graphql_request_duration_seconds_sum",
        &unnamed,
    );
    assert!(sum.is_some_and(|seconds| seconds > 0.0), "{after}");
    let named = [("operation", "Upcoming"), ("type", "query")];
    assert_eq!(
        sample(
            &after,
            "seatstorm_graphql_request_duration_seconds_count",
            &named
        ),
        Some(1.0)
    );
    assert!(sample(&after, "seatstorm_db_statements_total", &[]).is_some_and(|n| n > 0.0));
    assert!(sample(&after, "seatstorm_db_pool_connections", &[]).is_some_and(|n| n >= 1.0));
    // Booking and holding each announce the inventory change on the bus.
    assert!(sample(&after, "seatstorm_bus_published_total", &[]).is_some_and(|n| n >= 2.0));
    assert_eq!(sample(&after, "seatstorm_queue_waiting", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_refusal_is_counted_by_field_and_code() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(
        &app,
        "Tiny",
        5,
        Shape {
            standing: 1,
            ..Shape::default()
        },
    )
    .await;
    let tiers = tiers(&app, event.event_id).await;
    let first = app.customer().await;
    app.data_as(&first.access_token, BOOK, book_input(tiers.standing, 1))
        .await;
    let second = app.customer().await;
    let refused = app
        .graphql_as(&second.access_token, BOOK, book_input(tiers.standing, 1))
        .await;
    assert_eq!(error_code(&refused), "SOLD_OUT");
    let anonymous = app.graphql(BOOK, book_input(tiers.standing, 1)).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let metrics = scrape(&app).await;
    let errors = |code| {
        sample(
            &metrics,
            "seatstorm_graphql_errors_total",
            &[("field", "bookTickets"), ("code", code)],
        )
    };
    assert_eq!(errors("SOLD_OUT"), Some(1.0));
    assert_eq!(errors("UNAUTHENTICATED"), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "seatstorm_bookings_total",
            &[("field", "bookTickets")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_and_subscriptions_are_gauged_while_open() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "beat", "type": "subscribe",
            "payload": { "query": "subscription { heartbeat(intervalSeconds: 1) }" } }),
    )
    .await;
    let first = next_for(&mut socket, "beat").await;
    assert_eq!(first["type"], "next", "{first}");

    let metrics = scrape(&app).await;
    assert_eq!(
        sample(&metrics, "seatstorm_websocket_connections", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "seatstorm_graphql_active_subscriptions", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_sent_is_echoed_and_one_is_made_when_absent() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let query = json!({ "query": "{ events(first: 1) { edges { cursor } } }" });
    let sent = client
        .post(app.url("/graphql"))
        .header("x-request-id", "trace-me-123")
        .json(&query)
        .send()
        .await
        .expect("request");
    assert_eq!(sent.headers()["x-request-id"], "trace-me-123");

    let made = client
        .post(app.url("/graphql"))
        .json(&query)
        .send()
        .await
        .expect("request");
    let id = made.headers()["x-request-id"].to_str().expect("ascii");
    assert!(Uuid::parse_str(id).is_ok(), "a generated id: {id}");
    let health = reqwest::get(app.url("/health")).await.expect("request");
    assert!(health.headers().contains_key("x-request-id"));
}
