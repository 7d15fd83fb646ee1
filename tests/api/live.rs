//! The event bus across instances: with Redis, a message published on one instance reaches the
//! subscribers of every instance; in-process, it reaches the instance's own subscribers.

use seatstorm::live::LiveMessage;
use uuid::Uuid;

use crate::helpers::TestApp;

async fn receive(receiver: &mut tokio::sync::broadcast::Receiver<LiveMessage>) -> LiveMessage {
    tokio::time::timeout(std::time::Duration::from_secs(10), receiver.recv())
        .await
        .expect("a message within ten seconds")
        .expect("the channel is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_reaches_subscribers_of_every_instance() {
    let a = TestApp::spawn().await;
    let event_id = Uuid::now_v7();
    let message = LiveMessage::InventoryChanged { event_id };

    let mut on_a = a.state.bus.subscribe();
    if a.uses_redis() {
        let b = a.spawn_sibling().await;
        let mut on_b = b.state.bus.subscribe();
        a.state.bus.publish(message.clone()).await;
        assert_eq!(
            receive(&mut on_b).await,
            message,
            "instance B hears what A published"
        );
        assert_eq!(
            receive(&mut on_a).await,
            message,
            "A hears its own message once, through Redis"
        );
        assert!(
            on_a.try_recv().is_err(),
            "no duplicate delivery on the publishing instance"
        );
    } else {
        a.state.bus.publish(message.clone()).await;
        assert_eq!(receive(&mut on_a).await, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_the_bus() {
    let app = TestApp::spawn().await;
    let body: serde_json::Value = reqwest::get(app.url("/ready"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["bus"], "ok");
}

pub mod seat_map {
    use std::collections::HashMap;

    use serde_json::{Value, json};
    use uuid::Uuid;

    use crate::helpers::{Shape, TestApp, create_event_shaped};
    use crate::subscriptions::{Socket, connect, next_message, send};

    const SEAT_MAP_CHANGED: &str =
        "subscription($id: ID!, $since: Int) { seatMapChanged(eventId: $id, sinceSeq: $since) {
        kind seq previousSeq seats { seatId status seq } } }";
    const HOLD_SEATS: &str =
        "mutation($input: HoldSeatsInput!) { holdSeats(input: $input) { id } }";

    /// A new `seatMapChanged` subscriber of the event (resuming after `since`, if given) with its
    /// first message.
    async fn first_seat_map(app: &TestApp, event_id: Uuid, since: Option<i64>) -> (Socket, Value) {
        let mut socket = connect(app, "graphql-transport-ws", json!({})).await;
        subscribe(
            &mut socket,
            "graphql-transport-ws",
            SEAT_MAP_CHANGED,
            json!({ "id": event_id, "since": since }),
        )
        .await;
        let first = next_data(&mut socket).await["seatMapChanged"].clone();
        (socket, first)
    }

    /// Starts a subscription on a socket that completed `connection_init`.
    async fn subscribe(socket: &mut Socket, protocol: &str, query: &str, variables: Value) {
        let kind = if protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        send(socket, json!({ "id": "1", "type": kind, "payload": { "query": query, "variables": variables } })).await;
    }

    /// The data of the next subscription message.
    async fn next_data(socket: &mut Socket) -> Value {
        let message = next_message(socket).await;
        assert!(
            message["type"] == "next" || message["type"] == "data",
            "{message}"
        );
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"].clone()
    }

    /// Seat ids in the order of the `seatMap` query.
    pub async fn seat_ids(app: &TestApp, event_id: Uuid) -> Vec<String> {
        let map = app
            .data(
                "query($id: ID!) { seatMap(eventId: $id) { sections { seats { id status } } } }",
                json!({ "id": event_id }),
            )
            .await;
        map["seatMap"]["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
            .filter_map(|seat| seat["id"].as_str().map(str::to_owned))
            .collect()
    }

    pub async fn hold(app: &TestApp, token: &str, event_id: Uuid, seats: &[String]) {
        app.data_as(
            token,
            HOLD_SEATS,
            json!({ "input": { "eventId": event_id, "seatIds": seats, "idempotencyKey": Uuid::new_v4().to_string() } }),
        )
        .await;
    }

    async fn snapshot_then_a_delta_with_the_next_number(protocol: &str) {
        let app = TestApp::spawn().await;
        let event = create_event_shaped(&app, "Live", 5, Shape::default()).await;
        let seats = seat_ids(&app, event.event_id).await;
        let mut socket = connect(&app, protocol, json!({})).await;
        subscribe(
            &mut socket,
            protocol,
            SEAT_MAP_CHANGED,
            json!({ "id": event.event_id }),
        )
        .await;
        let first = next_data(&mut socket).await;
        let snapshot = &first["seatMapChanged"];
        assert_eq!(snapshot["kind"], "SNAPSHOT");
        assert_eq!(snapshot["seats"].as_array().map(Vec::len), Some(12));
        let seq = snapshot["seq"].as_i64().expect("seq");

        let buyer = app.buyers(1).await.remove(0);
        hold(&app, &buyer, event.event_id, &seats[..2]).await;
        let next = next_data(&mut socket).await;
        let delta = &next["seatMapChanged"];
        assert_eq!(delta["kind"], "DELTA");
        assert_eq!(delta["previousSeq"], seq);
        assert_eq!(delta["seq"], seq + 1, "one transaction, one number");
        let changed: Vec<(&str, &str)> = delta["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|s| {
                (
                    s["seatId"].as_str().unwrap_or(""),
                    s["status"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(changed.len(), 2);
        assert!(
            changed
                .iter()
                .all(|(id, status)| seats[..2].contains(&id.to_string()) && *status == "HELD")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn graphql_transport_ws_gets_a_snapshot_then_numbered_deltas() {
        snapshot_then_a_delta_with_the_next_number("graphql-transport-ws").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_graphql_ws_gets_a_snapshot_then_numbered_deltas() {
        snapshot_then_a_delta_with_the_next_number("graphql-ws").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_booking_through_one_instance_reaches_a_subscriber_on_another() {
        let a = TestApp::spawn().await;
        if !a.uses_redis() {
            // Two instances need a shared bus; the embedded mode has one instance by design.
            return;
        }
        let b = a.spawn_sibling().await;
        let event = create_event_shaped(&a, "Two Instances", 5, Shape::default()).await;
        let seats = seat_ids(&a, event.event_id).await;
        let (mut socket, first) = first_seat_map(&b, event.event_id, None).await;
        let seq = first["seq"].as_i64().expect("seq");
        let buyers = a.buyers(2).await;
        hold(&a, &buyers[0], event.event_id, &seats[..1]).await;
        hold(&a, &buyers[1], event.event_id, &seats[1..3]).await;
        let mut seen = Vec::new();
        let mut last = seq;
        while last < seq + 2 {
            let delta = next_data(&mut socket).await["seatMapChanged"].clone();
            assert_eq!(
                delta["previousSeq"], last,
                "messages follow each other without gaps"
            );
            last = delta["seq"].as_i64().expect("seq");
            seen.extend(delta["seats"].as_array().cloned().unwrap_or_default());
        }
        assert_eq!(last, seq + 2);
        assert_eq!(
            seen.len(),
            3,
            "all three held seats arrive on instance B: {seen:?}"
        );
    }

    /// The feed serves a new subscriber's snapshot from the seat map it keeps in memory, so the map
    /// must carry every change the feed has broadcast, at the number it broadcast it under.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_later_subscriber_snapshot_shows_the_changes_earlier_subscribers_were_sent() {
        let app = TestApp::spawn().await;
        let event = create_event_shaped(&app, "Late Joiner", 5, Shape::default()).await;
        let seats = seat_ids(&app, event.event_id).await;
        let (mut early, first) = first_seat_map(&app, event.event_id, None).await;
        let seq = first["seq"].as_i64().expect("seq");
        let buyers = app.buyers(2).await;
        hold(&app, &buyers[0], event.event_id, &seats[..2]).await;
        hold(&app, &buyers[1], event.event_id, &seats[2..3]).await;
        let mut last = seq;
        while last < seq + 2 {
            last = next_data(&mut early).await["seatMapChanged"]["seq"]
                .as_i64()
                .expect("seq");
        }

        // The early subscriber keeps the feed (and its map) alive while the late one joins.
        let (_late, snapshot) = first_seat_map(&app, event.event_id, None).await;
        assert_eq!(snapshot["kind"], "SNAPSHOT");
        assert_eq!(snapshot["seq"], last);
        let listed = snapshot["seats"].as_array().expect("seats");
        assert_eq!(listed.len(), seats.len(), "every seat, once");
        for seat in listed {
            let id = seat["seatId"].as_str().unwrap_or_default().to_owned();
            let expected = if seats[..3].contains(&id) {
                "HELD"
            } else {
                "AVAILABLE"
            };
            assert_eq!(seat["status"], expected, "{seat}");
            assert_eq!(seat["seq"], last, "a snapshot's seats carry its number");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_resuming_from_its_last_number_gets_exactly_what_it_missed() {
        let app = TestApp::spawn().await;
        let event = create_event_shaped(&app, "Resume", 5, Shape::default()).await;
        let seats = seat_ids(&app, event.event_id).await;
        let seq = missed_holds(&app, event.event_id, &seats[..3]).await;
        let (_socket, resumed) = first_seat_map(&app, event.event_id, Some(seq)).await;
        assert_resumed(&resumed, seq, &seats[..3]);
    }

    /// Reads the seat map's number, leaves, then holds each of `seats` for a buyer of its own (a
    /// change each); returns the number the client left at.
    async fn missed_holds(app: &TestApp, event_id: Uuid, seats: &[String]) -> i64 {
        let (socket, first) = first_seat_map(app, event_id, None).await;
        drop(socket);
        let buyers = app.buyers(seats.len()).await;
        for (seat, token) in seats.iter().zip(&buyers) {
            hold(app, token, event_id, std::slice::from_ref(seat)).await;
        }
        first["seq"].as_i64().expect("seq")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_resuming_past_a_pruned_change_gets_a_snapshot_not_a_partial_delta() {
        use entity::prelude::SeatChange;
        use entity::seat_change;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

        let app = TestApp::spawn().await;
        let event = create_event_shaped(&app, "Pruned", 5, Shape::default()).await;
        let seats = seat_ids(&app, event.event_id).await;
        let seq = missed_holds(&app, event.event_id, &seats[..2]).await;
        // The first change the client missed is gone from the log, as the sweeper's pruning does.
        let pruned = SeatChange::delete_many()
            .filter(seat_change::Column::EventId.eq(event.event_id))
            .filter(seat_change::Column::Seq.eq(seq + 1))
            .exec(&app.state.db)
            .await
            .expect("prune one change");
        assert_eq!(pruned.rows_affected, 1);
        let (_socket, resumed) = first_seat_map(&app, event.event_id, Some(seq)).await;
        assert_eq!(resumed["kind"], "SNAPSHOT", "{resumed}");
        let held: Vec<&str> = resumed["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .filter(|seat| seat["status"] == "HELD")
            .filter_map(|seat| seat["seatId"].as_str())
            .collect();
        assert_eq!(held.len(), 2, "both holds, the pruned one too: {resumed}");
    }

    /// A resume's first message: a DELTA from `since` with exactly the `missed` seats, one number each.
    pub fn assert_resumed(first: &Value, since: i64, missed: &[String]) {
        assert_eq!(first["kind"], "DELTA", "{first}");
        assert_eq!(first["previousSeq"], since);
        assert_eq!(first["seq"], since + missed.len() as i64);
        let mut got: Vec<String> = first["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .filter_map(|s| s["seatId"].as_str().map(str::to_owned))
            .collect();
        got.sort();
        let mut expected = missed.to_vec();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_a_thousand_changes_arrives_coalesced_and_complete() {
        let app = TestApp::spawn().await;
        let event = create_event_shaped(
            &app,
            "Burst",
            5,
            Shape {
                rows: 40,
                seats_per_row: 25,
                max_tickets_per_user: 10,
                ..Shape::default()
            },
        )
        .await;
        let (mut socket, snapshot) = first_seat_map(&app, event.event_id, None).await;
        let mut replayed: HashMap<String, String> = snapshot["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|s| {
                (
                    s["seatId"].as_str().unwrap_or("").to_owned(),
                    s["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(replayed.len(), 1000);
        let mut last = snapshot["seq"].as_i64().expect("seq");

        let buyers = app.buyers(100).await;
        let results = futures::future::join_all(buyers.iter().map(|token| {
            app.graphql_as(
                token,
                "mutation($input: HoldBestAvailableInput!) { holdBestAvailable(input: $input) { id } }",
                json!({ "input": { "eventId": event.event_id, "quantity": 10, "adjacent": false, "idempotencyKey": Uuid::new_v4().to_string() } }),
            )
        }))
        .await;
        let held = results.iter().filter(|b| b.get("errors").is_none()).count();
        assert!(held >= 90, "most holds succeed: {held}");
        let final_seq = seatstorm::events::changelog::current_seq(&app.state.db, event.event_id)
            .await
            .expect("seq");
        let mut messages = 0;
        while last < final_seq {
            let delta = next_data(&mut socket).await["seatMapChanged"].clone();
            assert_eq!(delta["previousSeq"], last, "no gap between messages");
            last = delta["seq"].as_i64().expect("seq");
            for seat in delta["seats"].as_array().cloned().unwrap_or_default() {
                replayed.insert(
                    seat["seatId"].as_str().unwrap_or("").to_owned(),
                    seat["status"].as_str().unwrap_or("").to_owned(),
                );
            }
            messages += 1;
        }
        assert!(
            messages < held,
            "{held} transactions arrived in {messages} coalesced messages"
        );
        let map = app
            .data(
                "query($id: ID!) { seatMap(eventId: $id) { sections { seats { id status } } } }",
                json!({ "id": event.event_id }),
            )
            .await;
        let actual: HashMap<String, String> = map["seatMap"]["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or("").to_owned(),
                    s["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            replayed, actual,
            "the client's replayed map equals the seat map"
        );
        assert_eq!(actual.values().filter(|s| *s == "HELD").count(), held * 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn availability_follows_bookings() {
        let app = TestApp::spawn().await;
        let event = create_event_shaped(&app, "Counts", 5, Shape::default()).await;
        let mut socket = connect(&app, "graphql-transport-ws", json!({})).await;
        subscribe(
            &mut socket,
            "graphql-transport-ws",
            "subscription($id: ID!) { availabilityChanged(eventId: $id) { seq tiers { tierId capacity available } sections { available held sold } } }",
            json!({ "id": event.event_id }),
        )
        .await;
        let first = next_data(&mut socket).await["availabilityChanged"].clone();
        let standing = first["tiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .find(|t| t["capacity"] == 100)
            .expect("the standing tier")
            .clone();
        assert_eq!(standing["available"], 100);
        let buyer = app.buyers(1).await.remove(0);
        app.data_as(
            &buyer,
            "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id } }",
            json!({ "input": { "tierId": standing["tierId"], "quantity": 3, "paymentToken": "tok_visa", "idempotencyKey": Uuid::new_v4().to_string() } }),
        )
        .await;
        // A hold and its checkout may arrive as one message or two; wait for the settled count.
        loop {
            let update = next_data(&mut socket).await["availabilityChanged"].clone();
            let tier = update["tiers"]
                .as_array()
                .expect("tiers")
                .iter()
                .find(|t| t["tierId"] == standing["tierId"])
                .expect("tier")
                .clone();
            if tier["available"] == 97 {
                break;
            }
            assert_eq!(
                tier["available"], 97,
                "only the booked three leave: {update}"
            );
        }
    }
}

mod redis_outage {
    use std::collections::HashMap;
    use std::process::{Child, Command, Stdio};

    use serde_json::{Value, json};
    use uuid::Uuid;

    use crate::helpers::{Options, Shape, TestApp, create_event_shaped};
    use crate::subscriptions::{connect, next_message, send};

    /// A Redis server of this test's own, so stopping it disturbs no other test.
    struct OwnRedis {
        port: u16,
        child: Option<Child>,
    }

    impl OwnRedis {
        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        async fn start(&mut self) {
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs (it is installed wherever TEST_REDIS_URL is set)");
            self.child = Some(child);
            let client = redis::Client::open(self.url()).expect("url");
            for _ in 0..100 {
                if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("redis-server did not start");
        }

        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port")
    }

    fn apply(map: &mut HashMap<String, String>, update: &Value) {
        for seat in update["seats"].as_array().cloned().unwrap_or_default() {
            map.insert(
                seat["seatId"].as_str().unwrap_or("").to_owned(),
                seat["status"].as_str().unwrap_or("").to_owned(),
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restarting_redis_loses_no_booking_and_subscribers_catch_up() {
        if std::env::var("TEST_REDIS_URL").map_or(true, |url| url.is_empty()) {
            // Only the PostgreSQL + Redis run has a redis-server to restart.
            return;
        }
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.start().await;
        let a = TestApp::spawn_with(Options {
            redis_url: Some(redis.url()),
            ..Options::default()
        })
        .await;
        let b = a.spawn_sibling().await;
        let event = create_event_shaped(
            &a,
            "Outage",
            5,
            Shape {
                rows: 2,
                seats_per_row: 5,
                ..Shape::default()
            },
        )
        .await;
        let mut socket = connect(&b, "graphql-transport-ws", json!({})).await;
        send(
            &mut socket,
            json!({ "id": "1", "type": "subscribe", "payload": { "query":
                "subscription($id: ID!) { seatMapChanged(eventId: $id) { kind seq seats { seatId status } } }",
                "variables": { "id": event.event_id } } }),
        )
        .await;
        let snapshot = next_message(&mut socket).await["payload"]["data"]["seatMapChanged"].clone();
        let mut replayed = HashMap::new();
        apply(&mut replayed, &snapshot);

        redis.stop();
        let buyers = a.buyers(4).await;
        let hold =
            "mutation($input: HoldBestAvailableInput!) { holdBestAvailable(input: $input) { id } }";
        for token in &buyers[..3] {
            a.data_as(token, hold, json!({ "input": { "eventId": event.event_id, "quantity": 2, "idempotencyKey": Uuid::new_v4().to_string() } }))
                .await;
        }
        redis.start().await;
        a.data_as(&buyers[3], hold, json!({ "input": { "eventId": event.event_id, "quantity": 2, "idempotencyKey": Uuid::new_v4().to_string() } }))
            .await;

        let final_seq = seatstorm::events::changelog::current_seq(&a.state.db, event.event_id)
            .await
            .expect("seq");
        let mut seq = snapshot["seq"].as_i64().expect("seq");
        while seq < final_seq {
            let update =
                next_message(&mut socket).await["payload"]["data"]["seatMapChanged"].clone();
            if update["kind"] == "SNAPSHOT" {
                replayed.clear();
            }
            apply(&mut replayed, &update);
            seq = update["seq"].as_i64().expect("seq");
        }
        let held = replayed.values().filter(|status| *status == "HELD").count();
        assert_eq!(
            held, 8,
            "all four bookings, made with Redis down and after, reached instance B"
        );
        let holds = entity::prelude::Hold::find()
            .count(&a.state.db)
            .await
            .expect("count");
        assert_eq!(holds, 4, "no booking was lost while Redis was down");
    }

    use sea_orm::{EntityTrait, PaginatorTrait};
}
