//! What a `seatMapChanged` subscriber starts from: a compact snapshot that lines up with the seat map,
//! and resumes served from the feed rather than from a read per client.

use futures::StreamExt;
use futures::future::join_all;
use seatstorm::persisted::{PersistedQueries, PersistedQueryConfig};
use seatstorm::schema::build_schema;
use serde_json::{Value, json};

use crate::helpers::{Shape, TestApp, create_event_shaped};
use crate::live::seat_map::{assert_resumed, hold, seat_ids};
use crate::subscriptions::{Socket, connect, next_for, send};

const COMPACT: &str = "subscription($id: ID!) {
    seatMapChanged(eventId: $id, snapshotFormat: STATUSES) { kind seq previousSeq statuses statusChanges seats { seatId status } } }";
const RESUME: &str = "subscription($id: ID!, $since: Int) {
    seatMapChanged(eventId: $id, sinceSeq: $since) { kind seq previousSeq seats { seatId status } statusChanges } }";

async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
}

/// The data of the next message of subscription `id`, which must not be an error.
async fn next_data(socket: &mut Socket, id: &str) -> Value {
    let message = next_for(socket, id).await;
    assert_eq!(message["type"], "next", "{message}");
    assert!(message["payload"].get("errors").is_none(), "{message}");
    message["payload"]["data"]["seatMapChanged"].clone()
}

/// A client following the event's seat map, and the seq of its first message.
async fn watch_seat_map(app: &TestApp, event_id: uuid::Uuid) -> (Socket, i64) {
    let mut watcher = connect(app, "graphql-transport-ws", json!({})).await;
    subscribe(&mut watcher, "map", RESUME, json!({ "id": event_id })).await;
    let seq = next_data(&mut watcher, "map").await["seq"]
        .as_i64()
        .expect("seq");
    (watcher, seq)
}

/// An event on a 5 x 7 seat map (35 seats), with the seats at `held` (seat-map positions) held by
/// one buyer; its id and seat ids in seat-map order.
async fn small_map_with_held(
    app: &TestApp,
    title: &str,
    held: &[usize],
) -> (uuid::Uuid, Vec<String>) {
    let shape = Shape {
        rows: 5,
        seats_per_row: 7,
        ..Shape::default()
    };
    let event = create_event_shaped(app, title, 5, shape).await;
    let seats = seat_ids(app, event.event_id).await;
    let buyer = app.buyers(1).await;
    let held: Vec<String> = held.iter().map(|&at| seats[at].clone()).collect();
    hold(app, &buyer[0], event.event_id, &held).await;
    (event.event_id, seats)
}

/// A client subscribed to `query` on the event, and the data of its first message.
async fn first_message(app: &TestApp, event_id: uuid::Uuid, query: &str) -> (Socket, Value) {
    let mut socket = connect(app, "graphql-transport-ws", json!({})).await;
    subscribe(&mut socket, "map", query, json!({ "id": event_id })).await;
    let first = next_data(&mut socket, "map").await;
    (socket, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_snapshot_gives_each_seat_a_letter_in_seat_map_order() {
    let app = TestApp::spawn().await;
    // Seats from the middle and the end of the map, so an order that only agrees on the first
    // seats is caught.
    let (event_id, seats) = small_map_with_held(&app, "Compact", &[9, 34]).await;
    let (mut socket, snapshot) = first_message(&app, event_id, COMPACT).await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    assert_eq!(
        snapshot["seats"],
        json!([]),
        "the statuses replace the list"
    );
    let statuses = snapshot["statuses"].as_str().expect("statuses");
    assert_eq!(statuses.len(), seats.len());
    for (at, letter) in statuses.chars().enumerate() {
        let expected = if at == 9 || at == 34 { 'H' } else { 'A' };
        assert_eq!(letter, expected, "seat {at} of the seat map");
    }

    assert_eq!(snapshot["statusChanges"], Value::Null);

    // Deltas chain on the snapshot's number, as the usual list and as positions in the same order.
    let buyer = app.buyers(1).await;
    hold(
        &app,
        &buyer[0],
        event_id,
        &[seats[20].clone(), seats[3].clone()],
    )
    .await;
    let delta = next_data(&mut socket, "map").await;
    assert_eq!(delta["kind"], "DELTA");
    assert_eq!(delta["previousSeq"], snapshot["seq"]);
    assert_eq!(delta["statuses"], Value::Null);
    let mut listed: Vec<_> = delta["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|seat| {
            (
                seat["seatId"].as_str().expect("id"),
                seat["status"].as_str().expect("status"),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![(seats[3].as_str(), "HELD"), (seats[20].as_str(), "HELD")];
    expected.sort();
    assert_eq!(listed, expected);
    let changes = delta["statusChanges"].as_str().expect("statusChanges");
    assert!(
        changes == "20H3H" || changes == "3H20H",
        "positions in seat map order: {changes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_snapshot_gives_each_stretch_of_one_status_a_letter_and_a_count() {
    let app = TestApp::spawn().await;
    let (event_id, _) = small_map_with_held(&app, "Runs", &[9, 10, 34]).await;
    let query = "subscription($id: ID!) {
        seatMapChanged(eventId: $id, snapshotFormat: RUNS) { kind statuses seats { seatId } } }";
    let (_socket, snapshot) = first_message(&app, event_id, query).await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    assert_eq!(snapshot["seats"], json!([]));
    // 9 free, 2 held, 23 free, the last one held: 35 seats in seat map order.
    assert_eq!(snapshot["statuses"], "A9H2A23H");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_resuming_from_a_recent_number_is_served_from_the_feed() {
    const CROWD: usize = 40;
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Blip", 5, Shape::default()).await;
    let seats = seat_ids(&app, event.event_id).await;
    // One client stays connected, so the event's feed keeps running through the crowd's blip.
    let (mut watcher, seq) = watch_seat_map(&app, event.event_id).await;

    let buyers = app.buyers(3).await;
    for (n, token) in buyers.iter().enumerate() {
        hold(&app, token, event.event_id, &seats[n..n + 1]).await;
    }
    // Once the watcher has everything, so has the feed.
    let mut seen = seq;
    while seen < seq + 3 {
        seen = next_data(&mut watcher, "map").await["seq"]
            .as_i64()
            .expect("seq");
    }

    let mut crowd =
        join_all((0..CROWD).map(|_| connect(&app, "graphql-transport-ws", json!({})))).await;
    let statements_before = app.statements();
    for socket in &mut crowd {
        let variables = json!({ "id": event.event_id, "since": seq });
        subscribe(socket, "map", RESUME, variables).await;
    }
    let resumed = join_all(crowd.iter_mut().map(|socket| next_data(socket, "map"))).await;
    let statements = app.statements() - statements_before;

    for first in &resumed {
        assert_resumed(first, seq, &seats[..3]);
    }
    // Three reads of the change log per client was the old way; the crowd shares the event's row.
    assert!(
        statements < CROWD as u64,
        "{statements} statements for {CROWD} resuming subscribers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_lists_a_seat_that_changed_several_times_once_at_its_last_status() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Churn", 5, Shape::default()).await;
    let seats = seat_ids(&app, event.event_id).await;
    // One client stays connected, so the resume is served from the feed's kept batches.
    let (mut watcher, seq) = watch_seat_map(&app, event.event_id).await;

    // The same seat held, released and held again by someone else: three changes, one seat.
    let buyers = app.buyers(2).await;
    let held = app
        .data_as(
            &buyers[0],
            "mutation($input: HoldSeatsInput!) { holdSeats(input: $input) { id } }",
            json!({ "input": { "eventId": event.event_id, "seatIds": &seats[..1],
                "idempotencyKey": uuid::Uuid::new_v4().to_string() } }),
        )
        .await;
    app.data_as(
        &buyers[0],
        "mutation($id: ID!) { releaseHold(holdId: $id) { status } }",
        json!({ "id": held["holdSeats"]["id"] }),
    )
    .await;
    hold(&app, &buyers[1], event.event_id, &seats[..1]).await;
    let mut seen = seq;
    while seen < seq + 3 {
        let delta = next_data(&mut watcher, "map").await;
        assert_eq!(delta["previousSeq"], seen, "no gap between messages");
        seen = delta["seq"].as_i64().expect("seq");
    }

    let mut resumer = connect(&app, "graphql-transport-ws", json!({})).await;
    subscribe(
        &mut resumer,
        "map",
        RESUME,
        json!({ "id": event.event_id, "since": seq }),
    )
    .await;
    let first = next_data(&mut resumer, "map").await;
    assert_eq!(first["kind"], "DELTA", "{first}");
    assert_eq!(first["previousSeq"], seq);
    assert_eq!(first["seq"], seq + 3);
    assert_eq!(
        first["seats"],
        json!([{ "seatId": seats[0], "status": "HELD" }])
    );
    assert_eq!(first["statusChanges"], "0H");
}

/// The (position, letter) pairs of a `statusChanges` string, sorted.
fn decode_status_changes(changes: &str) -> Vec<(usize, char)> {
    let mut decoded = Vec::new();
    let mut digits = String::new();
    for c in changes.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            decoded.push((digits.parse().expect("a position before each letter"), c));
            digits.clear();
        }
    }
    assert!(digits.is_empty(), "{changes} ends with a letter");
    decoded.sort_unstable();
    decoded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_fell_behind_gets_one_delta_with_every_change_it_missed() {
    let app = TestApp::spawn().await;
    let (event_id, seats) = small_map_with_held(&app, "Behind", &[20]).await;
    // A subscriber whose stream is polled only when the test says so: what a client whose socket
    // cannot keep up looks like to the server, without depending on timing.
    let schema = build_schema(
        app.state.clone(),
        PersistedQueries::load(&PersistedQueryConfig::default()).expect("no persisted queries"),
    );
    let query = "subscription($id: ID!) { seatMapChanged(eventId: $id, snapshotFormat: RUNS) {
        kind seq previousSeq statusChanges seats { seatId status } } }";
    let request = async_graphql::Request::new(query).variables(
        async_graphql::Variables::from_json(json!({ "id": event_id })),
    );
    let mut behind = schema.execute_stream(request);
    let first = behind.next().await.expect("a first message");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let first = first.data.into_json().expect("JSON")["seatMapChanged"].clone();
    assert_eq!(first["kind"], "SNAPSHOT");
    let start = first["seq"].as_i64().expect("seq");

    // Three changes, each broadcast on its own: the watcher reads every one before the next.
    let (mut watcher, _) = watch_seat_map(&app, event_id).await;
    let buyers = app.buyers(3).await;
    let mut last = start;
    for (token, positions) in buyers.iter().zip([[0, 1], [10, 11], [33, 34]]) {
        let held: Vec<String> = positions.iter().map(|&at| seats[at].clone()).collect();
        hold(&app, token, event_id, &held).await;
        let delta = next_data(&mut watcher, "map").await;
        assert_eq!(delta["previousSeq"], last, "one batch per hold");
        last = delta["seq"].as_i64().expect("seq");
    }

    let caught_up = behind.next().await.expect("a second message");
    assert!(caught_up.errors.is_empty(), "{:?}", caught_up.errors);
    let caught_up = caught_up.data.into_json().expect("JSON")["seatMapChanged"].clone();
    assert_eq!(caught_up["kind"], "DELTA", "{caught_up}");
    assert_eq!(
        caught_up["previousSeq"], start,
        "continues from the snapshot"
    );
    assert_eq!(caught_up["seq"], last, "and reaches the last batch");
    assert_eq!(caught_up["seats"].as_array().map(Vec::len), Some(6));
    let changes = caught_up["statusChanges"].as_str().expect("statusChanges");
    assert_eq!(
        decode_status_changes(changes),
        [0, 1, 10, 11, 33, 34].map(|at| (at, 'H')).to_vec(),
        "positions in seat map order: {changes}"
    );
}
