//! `seatMapChanged` documents the WebSocket serves itself (`events::direct_seat_map`): the same
//! messages as async-graphql sends for them, the same errors, the same lifecycle. Each check runs a
//! document twice on one socket, once as it is (served directly) and once with `@include(if: true)`
//! on a field, which changes nothing in the answer but is a directive, so async-graphql executes it.

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Shape, TestApp, create_event_shaped};
use crate::live::seat_map::{hold, seat_ids};
use crate::ops::{sample, scrape};
use crate::subscriptions::{Socket, connect, next_message, send};

fn document(format: &str, executed: bool) -> String {
    let directive = if executed { " @include(if: true)" } else { "" };
    format!(
        "subscription Follow($id: ID!, $since: Int) {{ map: seatMapChanged(eventId: $id, sinceSeq: $since, \
         snapshotFormat: {format}) {{ __typename eventId kind{directive} seq previousSeq statuses statusChanges }} }}"
    )
}

async fn start(socket: &mut Socket, legacy: bool, id: &str, query: &str, variables: Value) {
    let kind = if legacy { "start" } else { "subscribe" };
    send(
        socket,
        json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }),
    )
    .await;
}

/// Subscribes `name` to the document in `format` served directly, and `name-executed` to the same
/// document executed by async-graphql.
async fn start_both(socket: &mut Socket, legacy: bool, name: &str, format: &str, variables: Value) {
    start(
        socket,
        legacy,
        name,
        &document(format, false),
        variables.clone(),
    )
    .await;
    let executed = format!("{name}-executed");
    start(
        socket,
        legacy,
        &executed,
        &document(format, true),
        variables,
    )
    .await;
}

/// The gauge of direct subscriptions, and of all subscriptions.
async fn gauges(app: &TestApp) -> (f64, f64) {
    let metrics = scrape(app).await;
    let gauge = |name| sample(&metrics, name, &[]).expect("exposed");
    (
        gauge("seatstorm_websocket_direct_seat_maps"),
        gauge("seatstorm_graphql_active_subscriptions"),
    )
}

/// The next message of each of `ids`, in whatever order they come.
async fn next_of_each(socket: &mut Socket, ids: &[String]) -> HashMap<String, Value> {
    let mut messages = HashMap::new();
    while messages.len() < ids.len() {
        let message = next_message(socket).await;
        let id = message["id"].as_str().unwrap_or_default().to_owned();
        assert!(
            ids.contains(&id),
            "a message for an unexpected id: {message}"
        );
        assert!(
            messages.insert(id, message).is_none(),
            "two messages for one id"
        );
    }
    messages
}

/// The next messages of each of `names` served directly and executed, which must be the same; the
/// direct ones' data, by name.
async fn same_next(socket: &mut Socket, names: &[&str]) -> HashMap<String, Value> {
    let ids: Vec<String> = names
        .iter()
        .flat_map(|name| [name.to_string(), format!("{name}-executed")])
        .collect();
    let mut messages = next_of_each(socket, &ids).await;
    names
        .iter()
        .map(|name| {
            let served = messages.remove(*name).expect("served");
            let reference = messages
                .remove(&format!("{name}-executed"))
                .expect("executed");
            assert_eq!(served["type"], reference["type"], "{served}\n{reference}");
            assert_eq!(
                served["payload"], reference["payload"],
                "{served}\n{reference}"
            );
            (name.to_string(), served["payload"]["data"]["map"].clone())
        })
        .collect()
}

async fn messages_match(protocol: &str) {
    let legacy = protocol == "graphql-ws";
    let app = TestApp::spawn().await;
    let shape = Shape {
        rows: 5,
        seats_per_row: 7,
        ..Shape::default()
    };
    let event = create_event_shaped(&app, "Direct", 5, shape).await;
    let seats = seat_ids(&app, event.event_id).await;
    let buyers = app.buyers(2).await;
    hold(&app, &buyers[0], event.event_id, &seats[3..5]).await;

    let mut socket = connect(&app, protocol, json!({})).await;
    let formats = ["SEATS", "STATUSES", "RUNS"];
    let variables = json!({ "id": event.event_id });
    for format in formats {
        start_both(&mut socket, legacy, format, format, variables.clone()).await;
    }
    let snapshots = same_next(&mut socket, &formats).await;
    assert!(
        snapshots.values().all(|s| s["kind"] == "SNAPSHOT"),
        "{snapshots:?}"
    );
    assert_eq!(snapshots["RUNS"]["statuses"], "A3H2A30");
    let seq = snapshots["RUNS"]["seq"].as_i64().expect("seq");
    assert_eq!(
        gauges(&app).await,
        (3.0, 6.0),
        "three served directly, of six"
    );

    hold(&app, &buyers[1], event.event_id, &seats[20..22]).await;
    for delta in same_next(&mut socket, &formats).await.values() {
        assert_eq!(delta["kind"], "DELTA", "{delta}");
        assert_eq!(delta["previousSeq"], seq, "{delta}");
        assert_eq!(delta["statusChanges"], "20H21H", "{delta}");
    }

    // A resume from before the second hold: the changes after it, as a DELTA.
    let resume = json!({ "id": event.event_id, "since": seq });
    start_both(&mut socket, legacy, "resume", "RUNS", resume).await;
    let resumed = &same_next(&mut socket, &["resume"]).await["resume"];
    assert_eq!(resumed["kind"], "DELTA", "{resumed}");
    assert_eq!(resumed["statusChanges"], "20H21H", "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_are_the_ones_async_graphql_sends() {
    messages_match("graphql-transport-ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_are_the_ones_async_graphql_sends_on_the_legacy_protocol() {
    messages_match("graphql-ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_subscription_fails_and_ends_like_an_executed_one() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Direct ends", 5, Shape::default()).await;
    let seats = seat_ids(&app, event.event_id).await;
    let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;

    // Set-ups that fail are answered by async-graphql, in its words, for both documents.
    for (event_id, code) in [
        (json!(Uuid::new_v4()), "NOT_FOUND"),
        (json!("not-a-uuid"), "BAD_USER_INPUT"),
    ] {
        let variables = json!({ "id": event_id });
        start_both(&mut socket, false, "bad", "RUNS", variables).await;
        // Each: a `next` with the error, then `complete`.
        let mut answers: HashMap<String, Vec<Value>> = HashMap::new();
        for _ in 0..4 {
            let message = next_message(&mut socket).await;
            let id = message["id"].as_str().unwrap_or_default().to_owned();
            answers.entry(id).or_default().push(message);
        }
        let served = &answers["bad"];
        assert_eq!(
            served,
            &answers["bad-executed"]
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    m["id"] = json!("bad");
                    m
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(
            served[0]["payload"]["errors"][0]["extensions"]["code"], code,
            "{served:?}"
        );
        assert_eq!(served[1], json!({ "type": "complete", "id": "bad" }));
    }
    assert_eq!(gauges(&app).await, (0.0, 0.0));

    // Completed by the client: acknowledged with `complete`, then silent.
    let variables = json!({ "id": event.event_id });
    start(
        &mut socket,
        false,
        "map",
        &document("RUNS", false),
        variables.clone(),
    )
    .await;
    start(
        &mut socket,
        false,
        "kept",
        &document("RUNS", false),
        variables,
    )
    .await;
    let firsts = next_of_each(&mut socket, &["map".to_owned(), "kept".to_owned()]).await;
    assert!(firsts.values().all(|m| m["type"] == "next"), "{firsts:?}");
    send(&mut socket, json!({ "id": "map", "type": "complete" })).await;
    assert_eq!(
        next_message(&mut socket).await,
        json!({ "type": "complete", "id": "map" })
    );
    assert_eq!(gauges(&app).await, (1.0, 1.0));
    let buyer = app.buyers(1).await;
    hold(&app, &buyer[0], event.event_id, &seats[..1]).await;
    // The next message on the socket is the kept subscription's: nothing more for "map".
    let next = next_message(&mut socket).await;
    assert_eq!(next["id"], "kept", "{next}");
    assert_eq!(
        next["payload"]["data"]["map"]["statusChanges"], "0H",
        "{next}"
    );

    drop(socket);
    for _ in 0..100 {
        if gauges(&app).await == (0.0, 0.0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("a closed connection's direct subscription is still counted");
}
