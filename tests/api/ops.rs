//! Operations: Prometheus metrics, request ids, persisted queries.

use serde_json::{Value, json};
use uuid::Uuid;

use seatstorm::persisted::{PersistedQueryConfig, document_hash};

use crate::booking::tiers;
use crate::helpers::{Options, Shape, TestApp, create_event_shaped, error_code};
use crate::subscriptions::{connect, next_for, send};

const BOOK: &str =
    "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id status } }";
const HOLD: &str = "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id } }";

fn book_input(tier_id: Uuid, quantity: i32) -> Value {
    json!({ "input": { "tierId": tier_id, "quantity": quantity, "paymentToken": "tok_visa",
        "idempotencyKey": Uuid::new_v4().to_string() } })
}

pub async fn scrape(app: &TestApp) -> String {
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
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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
    // The booking went through the tier's lane, a batch of one; no best-available hold was asked for.
    let tier_lane = [("lane", "tier")];
    assert_eq!(
        sample(&after, "seatstorm_booking_lane_batches_total", &tier_lane),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "seatstorm_booking_lane_requests_total", &tier_lane),
        Some(1.0)
    );
    assert!(
        sample(
            &after,
            "seatstorm_booking_lane_busy_seconds_total",
            &tier_lane
        )
        .is_some_and(|seconds| seconds > 0.0)
    );
    assert_eq!(
        sample(
            &after,
            "seatstorm_booking_lane_batches_total",
            &[("lane", "seats")]
        ),
        Some(0.0)
    );
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

const EVENTS: &str = "{ events(first: 1) { edges { cursor } } }";
const HEARTBEAT: &str = "subscription { heartbeat(intervalSeconds: 1) }";

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// Posts a raw GraphQL-over-HTTP body, such as one with `extensions` and no `query`.
async fn post(app: &TestApp, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// Persisted query misses as `/metrics` counts them (an error before any root field).
async fn misses_counted(app: &TestApp) -> Option<f64> {
    sample(
        &scrape(app).await,
        "seatstorm_graphql_errors_total",
        &[
            ("field", "(request)"),
            ("code", "PERSISTED_QUERY_NOT_FOUND"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries_register_on_a_miss_and_then_travel_as_a_hash() {
    let app = TestApp::spawn().await;
    let hash = document_hash(EVENTS);
    let miss = post(&app, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(error_code(&miss), "PERSISTED_QUERY_NOT_FOUND");
    // Apollo clients recognise the miss by this message and resend with the document.
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");

    let registered = post(
        &app,
        json!({ "query": EVENTS, "extensions": persisted(&hash) }),
    )
    .await;
    assert!(registered.get("errors").is_none(), "{registered}");
    assert!(registered["data"]["events"]["edges"].is_array());

    let hit = post(&app, json!({ "extensions": persisted(&hash) })).await;
    assert!(hit.get("errors").is_none(), "{hit}");
    assert_eq!(hit["data"], registered["data"]);

    let mismatch = post(
        &app,
        json!({ "query": EVENTS, "extensions": persisted(&"0".repeat(64)) }),
    )
    .await;
    assert_eq!(error_code(&mismatch), "BAD_USER_INPUT");
    assert_eq!(misses_counted(&app).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries_work_over_websocket_too() {
    let app = TestApp::spawn().await;
    let hash = document_hash(HEARTBEAT);
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
    let subscribe = |id: &str, query: Option<&str>| {
        let mut payload = json!({ "extensions": persisted(&hash) });
        if let Some(query) = query {
            payload["query"] = json!(query);
        }
        json!({ "id": id, "type": "subscribe", "payload": payload })
    };
    send(&mut socket, subscribe("miss", None)).await;
    let miss = next_for(&mut socket, "miss").await;
    assert_eq!(
        miss["payload"]["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{miss}"
    );
    assert_eq!(
        misses_counted(&app).await,
        Some(1.0),
        "errors of operations over WebSocket are counted too"
    );
    send(&mut socket, subscribe("register", Some(HEARTBEAT))).await;
    let registered = next_for(&mut socket, "register").await;
    assert!(
        registered["payload"]["data"]["heartbeat"].is_string(),
        "{registered}"
    );
    send(&mut socket, subscribe("hit", None)).await;
    let hit = next_for(&mut socket, "hit").await;
    assert!(hit["payload"]["data"]["heartbeat"].is_string(), "{hit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_known_documents_only_the_manifest_is_all_that_runs() {
    const MANIFEST_QUERY: &str = "query Upcoming { events(first: 2) { edges { cursor } } }";
    let manifest = std::env::temp_dir().join(format!("seatstorm-manifest-{}.json", Uuid::new_v4()));
    std::fs::write(
        &manifest,
        json!({ document_hash(MANIFEST_QUERY): MANIFEST_QUERY }).to_string(),
    )
    .expect("manifest written");
    let app = TestApp::spawn_with(Options {
        persisted_queries: Some(PersistedQueryConfig {
            only_known: true,
            manifest: Some(manifest.clone()),
            cache_size: 1000,
        }),
        ..Options::default()
    })
    .await;
    let _ = std::fs::remove_file(&manifest);

    let raw = post(&app, json!({ "query": EVENTS })).await;
    assert_eq!(error_code(&raw), "PERSISTED_QUERY_REQUIRED");
    assert!(raw.get("data").is_none_or(Value::is_null), "{raw}");
    let unknown_hash = document_hash(EVENTS);
    let unknown = post(&app, json!({ "extensions": persisted(&unknown_hash) })).await;
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
    // The APQ way of registering a new document is closed too.
    let registration = post(
        &app,
        json!({ "query": EVENTS, "extensions": persisted(&unknown_hash) }),
    )
    .await;
    assert_eq!(error_code(&registration), "PERSISTED_QUERY_REQUIRED");

    let known = post(
        &app,
        json!({ "extensions": persisted(&document_hash(MANIFEST_QUERY)) }),
    )
    .await;
    assert!(known.get("errors").is_none(), "{known}");
    assert!(known["data"]["events"]["edges"].is_array());
    let known_raw = post(&app, json!({ "query": MANIFEST_QUERY })).await;
    assert!(known_raw.get("errors").is_none(), "{known_raw}");
}
