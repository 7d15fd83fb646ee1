//! Waitlists: joining by the rules, promotion of freed stock in order and exactly once, offers that
//! pass on when unclaimed, and the live push of an offer.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::{check_books, tiers};
use crate::helpers::{Options, Shape, TestApp, create_event_shaped, error_code, hand_over};
use crate::subscriptions::{connect, next_for, subscribe};

const JOIN: &str = "mutation($input: JoinWaitlistInput!) { joinWaitlist(input: $input) { id status position quantity } }";
const MY_ENTRIES: &str = "query($all: Boolean) { myWaitlistEntries(includeClosed: $all) { id status position offerExpiresAt offer { id status expiresAt } } }";
const BOOK: &str =
    "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id tickets { id } } }";

fn key() -> String {
    Uuid::new_v4().to_string()
}

async fn book(app: &TestApp, token: &str, tier: Uuid, quantity: i32) -> Value {
    app.data_as(
        token,
        BOOK,
        json!({ "input": { "tierId": tier, "quantity": quantity, "paymentToken": "tok_visa", "idempotencyKey": key() } }),
    )
    .await["bookTickets"]
        .clone()
}

async fn join(app: &TestApp, token: &str, tier: Uuid, quantity: i32) -> Value {
    app.data_as(
        token,
        JOIN,
        json!({ "input": { "tierId": tier, "quantity": quantity } }),
    )
    .await["joinWaitlist"]
        .clone()
}

async fn my_entry(app: &TestApp, token: &str) -> Value {
    app.data_as(token, MY_ENTRIES, json!({ "all": true })).await["myWaitlistEntries"][0].clone()
}

/// A standing-only event of `standing` places (plus a small reserved grid nobody uses).
async fn ga_event(app: &TestApp, title: &str, standing: i32) -> (Uuid, Uuid) {
    let event = create_event_shaped(
        app,
        title,
        5,
        Shape {
            rows: 1,
            seats_per_row: 2,
            standing,
            max_tickets_per_user: 8,
        },
    )
    .await;
    let tier = tiers(app, event.event_id).await.standing;
    (event.event_id, tier)
}

/// Every OFFERED entry owns one active waitlist hold of its size, and no waitlist hold is orphaned.
async fn check_offers(app: &TestApp, event_id: Uuid) {
    use entity::enums::{HoldSource, HoldStatus, WaitlistStatus};
    let entries = entity::prelude::WaitlistEntry::find()
        .filter(entity::waitlist_entry::Column::EventId.eq(event_id))
        .all(&app.state.db)
        .await
        .expect("entries");
    let holds = entity::prelude::Hold::find()
        .filter(entity::hold::Column::EventId.eq(event_id))
        .filter(entity::hold::Column::Source.eq(HoldSource::Waitlist))
        .filter(entity::hold::Column::Status.eq(HoldStatus::Active))
        .all(&app.state.db)
        .await
        .expect("holds");
    let offered: Vec<_> = entries
        .iter()
        .filter(|e| e.status == WaitlistStatus::Offered)
        .collect();
    assert_eq!(offered.len(), holds.len(), "one live hold per open offer");
    for entry in offered {
        let hold = holds
            .iter()
            .find(|h| Some(h.id) == entry.offered_hold_id)
            .expect("the offer's hold is live");
        assert_eq!(hold.user_id, entry.user_id);
        assert_eq!(hold.quantity, entry.quantity);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_waitlist_follows_the_rules_with_their_codes() {
    let app = TestApp::spawn().await;
    let (event_id, tier) = ga_event(&app, "Waitlist Rules", 2).await;
    let mut buyers = app.buyers(4).await;
    let (owner, first, second, late) = (
        buyers.remove(0),
        buyers.remove(0),
        buyers.remove(0),
        buyers.remove(0),
    );

    let reserved = tiers(&app, event_id).await.reserved;
    let too_early = app
        .graphql_as(
            &first,
            JOIN,
            json!({ "input": { "tierId": reserved, "quantity": 1 } }),
        )
        .await;
    assert_eq!(
        error_code(&too_early),
        "CONFLICT",
        "seats are free: hold them"
    );

    book(&app, &owner, tier, 2).await;
    let entry = join(&app, &first, tier, 1).await;
    assert_eq!(entry["status"], "WAITING");
    assert_eq!(entry["position"], 1);

    for (token, input, code) in [
        (&first, json!({ "tierId": tier, "quantity": 1 }), "CONFLICT"),
        (&owner, json!({ "tierId": tier, "quantity": 1 }), "CONFLICT"),
        (
            &second,
            json!({ "tierId": tier, "quantity": 0 }),
            "BAD_USER_INPUT",
        ),
        (
            &second,
            json!({ "tierId": tier, "quantity": 9 }),
            "BAD_USER_INPUT",
        ),
        (
            &second,
            json!({ "tierId": tier, "sectionId": tier, "quantity": 1 }),
            "BAD_USER_INPUT",
        ),
        (
            &second,
            json!({ "tierId": Uuid::new_v4(), "quantity": 1 }),
            "NOT_FOUND",
        ),
    ] {
        let refused = app.graphql_as(token, JOIN, json!({ "input": input })).await;
        assert_eq!(error_code(&refused), code, "{input}: {refused}");
    }
    let anonymous = app
        .graphql(JOIN, json!({ "input": { "tierId": tier, "quantity": 1 } }))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    // A sold-out booking can join in the same call, and a retry finds the same place.
    let mut places = Vec::new();
    for _ in 0..2 {
        let sold_out = app
            .graphql_as(
                &second,
                BOOK,
                json!({ "input": { "tierId": tier, "quantity": 2, "paymentToken": "tok_visa",
                    "idempotencyKey": key(), "joinWaitlistIfSoldOut": true } }),
            )
            .await;
        assert_eq!(error_code(&sold_out), "SOLD_OUT");
        let extensions = &sold_out["errors"][0]["extensions"];
        assert_eq!(extensions["waitlistPosition"], 2, "{sold_out}");
        places.push(extensions["waitlistEntryId"].clone());
    }
    assert_eq!(places[0], places[1]);
    let held = app
        .graphql_as(
            &late,
            "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id } }",
            json!({ "input": { "tierId": tier, "quantity": 1, "idempotencyKey": key(), "joinWaitlistIfSoldOut": true } }),
        )
        .await;
    assert_eq!(error_code(&held), "SOLD_OUT");
    assert_eq!(held["errors"][0]["extensions"]["waitlistPosition"], 3);

    let left = app
        .data_as(
            &first,
            "mutation($id: ID!) { leaveWaitlist(entryId: $id) { status position } }",
            json!({ "id": entry["id"] }),
        )
        .await;
    assert_eq!(left["leaveWaitlist"]["status"], "LEFT");
    assert_eq!(my_entry(&app, &second).await["position"], 1);
    let again = app
        .graphql_as(
            &first,
            "mutation($id: ID!) { leaveWaitlist(entryId: $id) { status } }",
            json!({ "id": entry["id"] }),
        )
        .await;
    assert_eq!(error_code(&again), "CONFLICT");
    let not_yours = app
        .graphql_as(
            &late,
            "mutation($id: ID!) { leaveWaitlist(entryId: $id) { status } }",
            json!({ "id": entry["id"] }),
        )
        .await;
    assert_eq!(error_code(&not_yours), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freed_tickets_go_to_the_first_entry_that_fits_and_are_pushed_live() {
    let app = TestApp::spawn_with(Options {
        sweep_interval_ms: Some(100),
        ..Options::default()
    })
    .await;
    let (event_id, tier) = ga_event(&app, "Waitlist Promotion", 2).await;
    let mut buyers = app.buyers(4).await;
    let (owner, one, pair, another_one) = (
        buyers.remove(0),
        buyers.remove(0),
        buyers.remove(0),
        buyers.remove(0),
    );
    let order = book(&app, &owner, tier, 2).await;
    join(&app, &one, tier, 1).await;
    join(&app, &pair, tier, 2).await;
    join(&app, &another_one, tier, 1).await;

    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {one}") }),
    )
    .await;
    subscribe(
        &mut socket,
        "1",
        "subscription { waitlistPromoted { id status offer { id status } } }",
        json!({}),
    )
    .await;

    // One ticket comes back: the first entry gets it.
    app.data_as(
        &owner,
        "mutation($o: ID!, $t: [ID!]!) { reduceOrder(orderId: $o, ticketIds: $t) { id } }",
        json!({ "o": order["id"], "t": [order["tickets"][0]["id"]] }),
    )
    .await;
    let pushed = next_for(&mut socket, "1").await;
    let promoted = &pushed["payload"]["data"]["waitlistPromoted"];
    assert_eq!(promoted["status"], "OFFERED", "{pushed}");
    assert_eq!(promoted["offer"]["status"], "ACTIVE");
    check_books(&app, event_id).await;
    check_offers(&app, event_id).await;

    let inbox = app
        .data_as(
            &one,
            "{ myNotifications { edges { node { kind data } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        inbox["myNotifications"]["edges"][0]["node"]["kind"],
        "waitlist_offer"
    );
    assert_eq!(my_entry(&app, &pair).await["status"], "WAITING");

    // The offer is claimed by checking its hold out.
    let claimed = app
        .data_as(
            &one,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { status } }",
            json!({ "input": { "holdId": promoted["offer"]["id"], "paymentToken": "tok_visa", "idempotencyKey": key() } }),
        )
        .await;
    assert_eq!(claimed["checkout"]["status"], "PAID");
    assert_eq!(my_entry(&app, &one).await["status"], "CLAIMED");

    // The last ticket comes back: the pair cannot use one, so the next single gets it.
    app.data_as(
        &owner,
        "mutation($o: ID!) { cancelOrder(orderId: $o) { id } }",
        json!({ "o": order["id"] }),
    )
    .await;
    assert_eq!(my_entry(&app, &pair).await["status"], "WAITING");
    assert_eq!(my_entry(&app, &pair).await["position"], 1);
    assert_eq!(my_entry(&app, &another_one).await["status"], "OFFERED");
    check_books(&app, event_id).await;
    check_offers(&app, event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclaimed_offer_passes_to_the_next_in_line() {
    let app = TestApp::spawn_with(Options {
        waitlist_claim_seconds: Some(1),
        sweep_interval_ms: Some(100),
        ..Options::default()
    })
    .await;
    let (event_id, tier) = ga_event(&app, "Waitlist Expiry", 1).await;
    let mut buyers = app.buyers(3).await;
    let (owner, first, second) = (buyers.remove(0), buyers.remove(0), buyers.remove(0));
    let order = book(&app, &owner, tier, 1).await;
    join(&app, &first, tier, 1).await;
    join(&app, &second, tier, 1).await;
    app.data_as(
        &owner,
        "mutation($o: ID!) { cancelOrder(orderId: $o) { id } }",
        json!({ "o": order["id"] }),
    )
    .await;
    assert_eq!(my_entry(&app, &first).await["status"], "OFFERED");
    assert_eq!(my_entry(&app, &second).await["status"], "WAITING");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let entry = my_entry(&app, &second).await;
        if entry["status"] == "OFFERED" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the offer never passed on: {entry}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = my_entry(&app, &first).await;
    assert_eq!(expired["status"], "EXPIRED");
    assert_eq!(expired["offer"]["status"], "EXPIRED");
    check_books(&app, event_id).await;
    check_offers(&app, event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancellations_on_two_instances_promote_each_entry_exactly_once() {
    const SOLD: usize = 24;
    const WAITING: usize = 36;
    const CANCELLED: usize = 16;
    let a = TestApp::spawn().await;
    // Two instances need a shared database that takes concurrent writers: PostgreSQL.
    let b = if a.uses_redis() {
        Some(a.spawn_sibling().await)
    } else {
        None
    };
    let (event_id, tier) = ga_event(&a, "Waitlist Race", SOLD as i32).await;
    let owners = a.buyers(SOLD).await;
    let mut orders = Vec::new();
    for owner in &owners {
        orders.push(book(&a, owner, tier, 1).await["id"].clone());
    }
    let waiters = a.buyers(WAITING).await;
    let mut entries = Vec::new();
    for waiter in &waiters {
        entries.push(join(&a, waiter, tier, 1).await["id"].clone());
    }

    let cancels = (0..CANCELLED).map(|i| {
        let app = match (&b, i % 2) {
            (Some(b), 1) => b,
            _ => &a,
        };
        let (owner, order) = (owners[i].clone(), orders[i].clone());
        async move {
            app.data_as(
                &owner,
                "mutation($o: ID!) { cancelOrder(orderId: $o) { status } }",
                json!({ "o": order }),
            )
            .await
        }
    });
    // Sweeper passes on both instances race the cancellations.
    let sweeps = [&a, b.as_ref().unwrap_or(&a)].map(|app| {
        let state = app.state.clone();
        async move {
            for _ in 0..5 {
                seatstorm::booking::sweeper::sweep_once(&state, chrono::Utc::now())
                    .await
                    .expect("a sweep");
            }
        }
    });
    let (cancelled, _) = tokio::join!(
        futures::future::join_all(cancels),
        futures::future::join_all(sweeps)
    );
    assert!(
        cancelled
            .iter()
            .all(|c| c["cancelOrder"]["status"] == "CANCELLED")
    );

    let mut offered = Vec::new();
    for (waiter, entry) in waiters.iter().zip(&entries) {
        let mine = my_entry(&a, waiter).await;
        assert_eq!(&mine["id"], entry);
        if mine["status"] == "OFFERED" {
            offered.push(entry.clone());
        }
    }
    assert_eq!(
        offered,
        entries[..CANCELLED].to_vec(),
        "exactly the first {CANCELLED} in line get an offer"
    );
    let holds: HashSet<String> = {
        let mut ids = HashSet::new();
        for waiter in &waiters[..CANCELLED] {
            let hold = my_entry(&a, waiter).await["offer"]["id"].clone();
            assert!(ids.insert(hold.to_string()), "one hold per offer");
        }
        ids
    };
    assert_eq!(holds.len(), CANCELLED);
    let sold = check_books(&a, event_id).await;
    assert!(sold.contains(&(tier, (SOLD - CANCELLED) as i64)));
    check_offers(&a, event_id).await;
    let tier_row = entity::prelude::TicketTier::find_by_id(tier)
        .one(&a.state.db)
        .await
        .expect("query")
        .expect("tier");
    assert_eq!(
        tier_row.available, 0,
        "every freed ticket went to the waitlist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_seat_goes_to_the_section_waitlist_and_shows_held_on_the_map() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(
        &app,
        "Section Waitlist",
        5,
        Shape {
            rows: 1,
            seats_per_row: 2,
            standing: 5,
            max_tickets_per_user: 8,
        },
    )
    .await;
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { section { id kind } seats { id } } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    let reserved = map["seatMap"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["section"]["kind"] == "RESERVED")
        .expect("a reserved section")
        .clone();
    let seats: Vec<Value> = reserved["seats"].as_array().expect("seats").clone();
    let mut buyers = app.buyers(2).await;
    let (owner, waiter) = (buyers.remove(0), buyers.remove(0));
    let hold = app
        .data_as(
            &owner,
            "mutation($input: HoldSeatsInput!) { holdSeats(input: $input) { id } }",
            json!({ "input": { "eventId": event.event_id, "seatIds": seats.iter().map(|s| s["id"].clone()).collect::<Vec<_>>(), "idempotencyKey": key() } }),
        )
        .await;
    let order = app
        .data_as(
            &owner,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { id tickets { id seat { id } } } }",
            json!({ "input": { "holdId": hold["holdSeats"]["id"], "paymentToken": "tok_visa", "idempotencyKey": key() } }),
        )
        .await;
    let entry = app
        .data_as(
            &waiter,
            JOIN,
            json!({ "input": { "eventId": event.event_id, "sectionId": reserved["section"]["id"], "quantity": 1 } }),
        )
        .await;
    assert_eq!(entry["joinWaitlist"]["status"], "WAITING");

    let given_back = &order["checkout"]["tickets"][0];
    app.data_as(
        &owner,
        "mutation($o: ID!, $t: [ID!]!) { reduceOrder(orderId: $o, ticketIds: $t) { id } }",
        json!({ "o": order["checkout"]["id"], "t": [given_back["id"]] }),
    )
    .await;
    let offered = app
        .data_as(
            &waiter,
            "{ myWaitlistEntries { status offer { seats { id } } } }",
            json!({}),
        )
        .await;
    let offer = &offered["myWaitlistEntries"][0];
    assert_eq!(offer["status"], "OFFERED");
    assert_eq!(offer["offer"]["seats"][0]["id"], given_back["seat"]["id"]);
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { seats { id status } } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    let status = map["seatMap"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
        .find(|s| s["id"] == given_back["seat"]["id"])
        .expect("the seat is on the map")["status"]
        .clone();
    assert_eq!(status, "HELD", "the seat never went back on public sale");
    check_books(&app, event.event_id).await;
    check_offers(&app, event.event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_capacity_goes_to_the_waitlist_before_public_sale() {
    let app = TestApp::spawn().await;
    let organizer = app.organizer().await;
    let (event_id, tier) = ga_event(&app, "Waitlist Capacity", 1).await;
    hand_over(&app, event_id, organizer.user_id).await;
    let mut buyers = app.buyers(2).await;
    let (owner, waiter) = (buyers.remove(0), buyers.remove(0));
    book(&app, &owner, tier, 1).await;
    join(&app, &waiter, tier, 2).await;
    let grown = app
        .data_as(
            &organizer.access_token,
            "mutation($id: ID!) { updateTicketTier(id: $id, input: { capacity: 3 }) { capacity available } }",
            json!({ "id": tier }),
        )
        .await;
    assert_eq!(
        grown["updateTicketTier"],
        json!({ "capacity": 3, "available": 0 })
    );
    assert_eq!(my_entry(&app, &waiter).await["status"], "OFFERED");
    check_books(&app, event_id).await;
    check_offers(&app, event_id).await;
}
