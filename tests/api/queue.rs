//! The virtual waiting room: positions, the pre-queue shuffle, paced admission, queue passes, and
//! live position updates.

use chrono::{Duration, Utc};
use futures::StreamExt;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::tiers;
use crate::helpers::{Options, Shape, TestApp, create_event_shaped, error_code};
use crate::subscriptions::{connect, next_for, send};

const JOIN: &str = "mutation($e: ID!) { joinQueue(eventId: $e) { status position aheadOfYou estimatedWaitSeconds pass } }";
const TICKET: &str = "query($e: ID!) { myQueueTicket(eventId: $e) { status position aheadOfYou pass passExpiresAt } }";

/// An event behind a waiting room, on sale since `sale_started` ago (negative: in the future).
async fn queued_event(app: &TestApp, rate: i32, cap: i32, sale_started: Duration) -> (Uuid, Uuid) {
    let event = create_event_shaped(app, "Waiting Room", 5, Shape::default()).await;
    let model = entity::prelude::Event::find_by_id(event.event_id)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("event");
    let mut active: entity::event::ActiveModel = model.into();
    active.waiting_room_required = Set(true);
    active.admission_rate_per_minute = Set(rate);
    active.max_active_shoppers = Set(cap);
    active.sale_starts_at = Set(Utc::now() - sale_started);
    active.update(&app.state.db).await.expect("update");
    let tier = tiers(app, event.event_id).await.standing;
    (event.event_id, tier)
}

async fn set_sale_start(app: &TestApp, event_id: Uuid, at: chrono::DateTime<Utc>) {
    let model = entity::prelude::Event::find_by_id(event_id)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("event");
    let mut active: entity::event::ActiveModel = model.into();
    active.sale_starts_at = Set(at);
    active.update(&app.state.db).await.expect("update");
}

async fn event_model(app: &TestApp, event_id: Uuid) -> entity::event::Model {
    entity::prelude::Event::find_by_id(event_id)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("event")
}

/// One admission pass at `now`; returns the statuses of `tokens`' tickets.
async fn admit_at(app: &TestApp, event_id: Uuid, now: chrono::DateTime<Utc>) {
    let event = event_model(app, event_id).await;
    seatstorm::queue::service::admit(&app.state.db, &app.state.config.queue_policy(), &event, now)
        .await
        .expect("an admission pass");
}

async fn ticket(app: &TestApp, token: &str, event_id: Uuid) -> Value {
    app.data_as(token, TICKET, json!({ "e": event_id })).await["myQueueTicket"].clone()
}

async fn admitted(app: &TestApp, tokens: &[String], event_id: Uuid) -> usize {
    let mut n = 0;
    for token in tokens {
        if ticket(app, token, event_id).await["status"] == "ADMITTED" {
            n += 1;
        }
    }
    n
}

fn quiet() -> Options {
    // Admission runs only when a test asks for it.
    Options {
        sweep_interval_ms: Some(3_600_000),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_joins_get_unique_contiguous_positions() {
    let app = TestApp::spawn_with(Options {
        mutations_per_minute: Some(100_000),
        ..quiet()
    })
    .await;
    let (event_id, _) = queued_event(&app, 10, 10, Duration::minutes(1)).await;
    let buyers = app.buyers(1000).await;
    // 200 in flight at once: enough to race, and within what one SQLite connection answers before the
    // pool's acquire timeout on a loaded machine.
    let joins = buyers
        .iter()
        .map(|token| app.data_as(token, JOIN, json!({ "e": event_id })));
    let joined: Vec<Value> = futures::stream::iter(joins)
        .buffer_unordered(200)
        .collect()
        .await;
    let mut positions: Vec<i64> = joined
        .iter()
        .map(|joined| {
            joined["joinQueue"]["position"]
                .as_i64()
                .expect("a position")
        })
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=1000).collect::<Vec<i64>>());
    // Joining again keeps the place.
    let again = app
        .data_as(&buyers[0], JOIN, json!({ "e": event_id }))
        .await;
    let first = ticket(&app, &buyers[0], event_id).await;
    assert_eq!(again["joinQueue"]["position"], first["position"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_queue_is_shuffled_at_the_on_sale_and_later_arrivals_keep_their_order() {
    let app = TestApp::spawn_with(quiet()).await;
    let (event_id, _) = queued_event(&app, 100, 100, -Duration::minutes(10)).await;
    let early = app.buyers(40).await;
    for token in &early {
        let joined = app.data_as(token, JOIN, json!({ "e": event_id })).await;
        assert_eq!(
            joined["joinQueue"]["position"],
            Value::Null,
            "no number before the on-sale"
        );
        assert_eq!(joined["joinQueue"]["status"], "WAITING");
    }
    set_sale_start(&app, event_id, Utc::now() - Duration::seconds(1)).await;
    let late = app.buyers(15).await;
    let mut late_positions = Vec::new();
    for token in &late {
        let joined = app.data_as(token, JOIN, json!({ "e": event_id })).await;
        late_positions.push(
            joined["joinQueue"]["position"]
                .as_i64()
                .expect("a position"),
        );
    }
    assert_eq!(
        late_positions,
        (41..=55).collect::<Vec<i64>>(),
        "arrival order after the pre-queue"
    );
    let mut early_positions = Vec::new();
    for token in &early {
        early_positions.push(
            ticket(&app, token, event_id).await["position"]
                .as_i64()
                .expect("numbered"),
        );
    }
    let mut sorted = early_positions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=40).collect::<Vec<i64>>());
    assert_ne!(
        early_positions, sorted,
        "the pre-queue is not in arrival order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_follows_the_rate_and_the_cap() {
    let app = TestApp::spawn_with(quiet()).await;
    let (event_id, _) = queued_event(&app, 6, 4, Duration::zero()).await;
    let sale = event_model(&app, event_id).await.sale_starts_at;
    let shoppers = app.buyers(12).await;
    for token in &shoppers {
        app.data_as(token, JOIN, json!({ "e": event_id })).await;
    }
    // At the on-sale: the first minute's quota is 6, but only 4 may shop at once.
    admit_at(&app, event_id, sale).await;
    assert_eq!(admitted(&app, &shoppers, event_id).await, 4);
    for token in &shoppers[..4] {
        assert_eq!(
            ticket(&app, token, event_id).await["status"],
            "ADMITTED",
            "in position order"
        );
    }
    // Two leave: two more may come in, which uses up the first minute's 6.
    for token in &shoppers[..2] {
        app.data_as(
            token,
            "mutation($e: ID!) { leaveQueue(eventId: $e) { status } }",
            json!({ "e": event_id }),
        )
        .await;
    }
    admit_at(&app, event_id, sale).await;
    assert_eq!(admitted(&app, &shoppers, event_id).await, 4);
    for token in &shoppers[2..4] {
        app.data_as(
            token,
            "mutation($e: ID!) { leaveQueue(eventId: $e) { status } }",
            json!({ "e": event_id }),
        )
        .await;
    }
    admit_at(&app, event_id, sale).await;
    assert_eq!(
        admitted(&app, &shoppers, event_id).await,
        2,
        "the rate holds the rest back"
    );
    // Ten seconds later the rate (6 a minute) allows one more.
    admit_at(&app, event_id, sale + Duration::seconds(10)).await;
    assert_eq!(admitted(&app, &shoppers, event_id).await, 3);
    // When passes run out, their shoppers stop counting and the line moves on.
    let after_passes = sale + app.state.config.queue_policy().pass_ttl + Duration::seconds(11);
    admit_at(&app, event_id, after_passes).await;
    let statuses: Vec<Value> = {
        let mut all = Vec::new();
        for token in &shoppers {
            all.push(ticket(&app, token, event_id).await["status"].clone());
        }
        all
    };
    assert_eq!(statuses.iter().filter(|s| *s == "EXPIRED").count(), 3);
    assert_eq!(
        statuses.iter().filter(|s| *s == "ADMITTED").count(),
        4,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_a_waiting_room_event_need_a_valid_pass() {
    let app = TestApp::spawn_with(quiet()).await;
    let (event_id, tier) = queued_event(&app, 60, 10, Duration::minutes(1)).await;
    let (other_event, _) = queued_event(&app, 60, 10, Duration::minutes(1)).await;
    let mut buyers = app.buyers(2).await;
    let (shopper, someone_else) = (buyers.remove(0), buyers.remove(0));
    let hold = |token: String, pass: Option<String>| {
        let app = &app;
        async move {
            app.graphql_as(
                &token,
                "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id } }",
                json!({ "input": { "tierId": tier, "quantity": 1, "idempotencyKey": Uuid::new_v4().to_string(), "queuePass": pass } }),
            )
            .await
        }
    };
    assert_eq!(
        error_code(&hold(shopper.clone(), None).await),
        "QUEUE_REQUIRED"
    );

    app.data_as(&shopper, JOIN, json!({ "e": event_id })).await;
    app.data_as(&shopper, JOIN, json!({ "e": other_event }))
        .await;
    admit_at(&app, event_id, Utc::now()).await;
    admit_at(&app, other_event, Utc::now()).await;
    let pass = ticket(&app, &shopper, event_id).await["pass"]
        .as_str()
        .expect("an admitted shopper has a pass")
        .to_owned();
    let wrong_event = ticket(&app, &shopper, other_event).await["pass"]
        .as_str()
        .expect("a pass")
        .to_owned();
    let mut forged = pass.clone();
    forged.pop();
    forged.push(if pass.ends_with('A') { 'B' } else { 'A' });
    let user_id = app.state.tokens.verify(&shopper).expect("token").sub;
    let expired = app
        .state
        .passes
        .issue(user_id, event_id, Utc::now() - Duration::seconds(1))
        .expect("signed");
    for refused in [forged, expired, wrong_event] {
        let answer = hold(shopper.clone(), Some(refused.clone())).await;
        assert_eq!(error_code(&answer), "QUEUE_REQUIRED", "{refused}: {answer}");
    }
    let borrowed = hold(someone_else.clone(), Some(pass.clone())).await;
    assert_eq!(
        error_code(&borrowed),
        "QUEUE_REQUIRED",
        "a pass is personal"
    );
    let held = hold(shopper.clone(), Some(pass)).await;
    assert!(held.get("errors").is_none(), "{held}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_updates_arrive_over_the_subscription() {
    let app = TestApp::spawn_with(Options {
        sweep_interval_ms: Some(200),
        ..Options::default()
    })
    .await;
    // One shopper at a time: the line moves when the one shopping leaves.
    let (event_id, _) = queued_event(&app, 60, 1, Duration::zero()).await;
    let buyers = app.buyers(3).await;
    for token in &buyers {
        app.data_as(token, JOIN, json!({ "e": event_id })).await;
    }
    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {}", buyers[2]) }),
    )
    .await;
    send(
        &mut socket,
        json!({ "id": "q", "type": "subscribe", "payload": { "query":
            "subscription($e: ID!) { queuePosition(eventId: $e) { status position aheadOfYou pass } }",
            "variables": { "e": event_id } } }),
    )
    .await;
    let mut next = {
        let mut last_ahead = i64::MAX;
        move |message: Value| {
            let ticket = message["payload"]["data"]["queuePosition"].clone();
            assert_eq!(ticket["position"], 3, "{message}");
            if let Some(ahead) = ticket["aheadOfYou"].as_i64() {
                assert!(ahead <= last_ahead, "the wait only shrinks: {message}");
                last_ahead = ahead;
            }
            ticket
        }
    };
    let first = next(next_for(&mut socket, "q").await);
    assert_eq!(first["status"], "WAITING");
    let leave = "mutation($e: ID!) { leaveQueue(eventId: $e) { status } }";
    app.data_as(&buyers[0], leave, json!({ "e": event_id }))
        .await;
    loop {
        let ticket = next(next_for(&mut socket, "q").await);
        if ticket["aheadOfYou"] == 0 {
            break;
        }
    }
    app.data_as(&buyers[1], leave, json!({ "e": event_id }))
        .await;
    let admitted = loop {
        let ticket = next(next_for(&mut socket, "q").await);
        if ticket["status"] == "ADMITTED" {
            break ticket;
        }
    };
    assert!(
        admitted["pass"].is_string(),
        "admission brings the pass: {admitted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_room_refusals_have_their_codes() {
    let app = TestApp::spawn_with(quiet()).await;
    let (event_id, _) = queued_event(&app, 60, 10, -Duration::hours(3)).await;
    let plain = create_event_shaped(&app, "No Queue", 5, Shape::default()).await;
    let token = app.buyers(1).await.remove(0);
    let too_early = app.graphql_as(&token, JOIN, json!({ "e": event_id })).await;
    assert_eq!(
        error_code(&too_early),
        "CONFLICT",
        "the pre-queue opens an hour before"
    );
    let no_queue = app
        .graphql_as(&token, JOIN, json!({ "e": plain.event_id }))
        .await;
    assert_eq!(error_code(&no_queue), "CONFLICT");
    let unknown = app
        .graphql_as(&token, JOIN, json!({ "e": Uuid::new_v4() }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let anonymous = app.graphql(JOIN, json!({ "e": event_id })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let not_in = app
        .graphql_as(
            &token,
            "mutation($e: ID!) { leaveQueue(eventId: $e) { status } }",
            json!({ "e": plain.event_id }),
        )
        .await;
    assert_eq!(error_code(&not_in), "NOT_FOUND", "no ticket for that event");
    set_sale_start(&app, event_id, Utc::now()).await;
    // Every attempt counts, refused ones too: a fresh user gets ten a minute.
    let token = app.buyers(1).await.remove(0);
    let mut codes = Vec::new();
    for _ in 0..12 {
        let joined = app.graphql_as(&token, JOIN, json!({ "e": event_id })).await;
        codes.push(if joined.get("errors").is_some() {
            error_code(&joined)
        } else {
            "OK".into()
        });
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "TOO_MANY_REQUESTS").count(),
        2,
        "{codes:?}"
    );
    let leave = "mutation($e: ID!) { leaveQueue(eventId: $e) { status } }";
    let left = app.data_as(&token, leave, json!({ "e": event_id })).await;
    assert_eq!(left["leaveQueue"]["status"], "LEFT");
    let twice = app
        .graphql_as(&token, leave, json!({ "e": event_id }))
        .await;
    assert_eq!(error_code(&twice), "CONFLICT");
    let customer = app.customer().await;
    let stats = app
        .graphql_as(
            &customer.access_token,
            "query($e: ID!) { queueStats(eventId: $e) { waiting } }",
            json!({ "e": event_id }),
        )
        .await;
    assert_eq!(error_code(&stats), "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lives_in_the_database_for_every_instance_and_its_organizer() {
    let app = TestApp::spawn_with(quiet()).await;
    let (event_id, _) = queued_event(&app, 60, 2, Duration::minutes(1)).await;
    let buyers = app.buyers(3).await;
    for token in &buyers {
        app.data_as(token, JOIN, json!({ "e": event_id })).await;
    }
    admit_at(&app, event_id, Utc::now()).await;
    // A fresh instance (a restart, or another replica) sees the same places and passes.
    let restarted = app.spawn_sibling().await;
    let seen = ticket(&restarted, &buyers[2], event_id).await;
    assert_eq!(seen["position"], 3);
    assert_eq!(seen["status"], "WAITING");
    assert!(ticket(&restarted, &buyers[0], event_id).await["pass"].is_string());

    let organizer = app.organizer().await;
    crate::helpers::hand_over(&app, event_id, organizer.user_id).await;
    let stats = app
        .data_as(
            &organizer.access_token,
            "query($e: ID!) { queueStats(eventId: $e) { waiting shopping admittedTotal lastPosition admittedThrough maxActiveShoppers } }",
            json!({ "e": event_id }),
        )
        .await;
    assert_eq!(
        stats["queueStats"],
        json!({ "waiting": 1, "shopping": 2, "admittedTotal": 2, "lastPosition": 3, "admittedThrough": 2, "maxActiveShoppers": 2 })
    );
}
