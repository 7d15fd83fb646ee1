//! Booking under contention, with many real HTTP clients, then the books are checked.

use std::collections::{HashMap, HashSet};

use entity::enums::{HoldStatus, SeatStatus, TicketStatus};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use seatstorm::booking::coalesce::BookingPath;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Options, Shape, TestApp, create_event_shaped, error_code};

const BOOK: &str = "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id status totalCents tickets { id } } }";
const HOLD_TICKETS: &str = "mutation($input: HoldTicketsInput!) { holdTickets(input: $input) { id status quantity expiresAt totalCents } }";
const HOLD_SEATS: &str = "mutation($input: HoldSeatsInput!) { holdSeats(input: $input) { id status quantity seats { id row number } } }";
const HOLD_BEST: &str = "mutation($input: HoldBestAvailableInput!) { holdBestAvailable(input: $input) { id quantity seats { id row number } } }";
const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkout(input: $input) { id status totalCents tickets { id status seat { row number } } } }";

fn key() -> String {
    Uuid::new_v4().to_string()
}

pub struct Tiers {
    pub reserved: Uuid,
    pub standing: Uuid,
}

pub async fn tiers(app: &TestApp, event_id: Uuid) -> Tiers {
    let data = app
        .data(
            "query($id: ID!) { event(id: $id) { tiers { id kind } } }",
            json!({ "id": event_id }),
        )
        .await;
    let id_of = |kind: &str| {
        data["event"]["tiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .find(|t| t["kind"] == kind)
            .and_then(|t| t["id"].as_str())
            .and_then(|id| Uuid::parse_str(id).ok())
            .expect("tier of that kind")
    };
    Tiers {
        reserved: id_of("RESERVED"),
        standing: id_of("GENERAL_ADMISSION"),
    }
}

/// The books of one event: for every tier, sold + held + available = capacity; no seat is sold or
/// ticketed twice; seat statuses agree with tickets and holds. Returns tickets sold per tier.
pub async fn check_books(app: &TestApp, event_id: Uuid) -> Vec<(Uuid, i64)> {
    let db = &app.state.db;
    let tiers = entity::prelude::TicketTier::find()
        .filter(entity::ticket_tier::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("tiers");
    let tickets = entity::prelude::Ticket::find()
        .filter(entity::ticket::Column::EventId.eq(event_id))
        .filter(entity::ticket::Column::Status.eq(TicketStatus::Valid))
        .all(db)
        .await
        .expect("tickets");
    let holds = entity::prelude::Hold::find()
        .filter(entity::hold::Column::EventId.eq(event_id))
        .filter(entity::hold::Column::Status.eq(HoldStatus::Active))
        .all(db)
        .await
        .expect("holds");
    let seats = entity::prelude::EventSeat::find()
        .filter(entity::event_seat::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("seats");
    let mut sold_per_tier = Vec::new();
    for tier in &tiers {
        let sold = tickets.iter().filter(|t| t.tier_id == tier.id).count() as i64;
        let held = holds
            .iter()
            .filter(|h| h.tier_id == Some(tier.id))
            .map(|h| i64::from(h.quantity))
            .sum::<i64>()
            + seats
                .iter()
                .filter(|s| s.tier_id == tier.id && s.status == SeatStatus::Held)
                .count() as i64;
        assert_eq!(
            sold + held + i64::from(tier.available),
            i64::from(tier.capacity),
            "tier {}: sold {sold} + held {held} + available {} != capacity {}",
            tier.name,
            tier.available,
            tier.capacity
        );
        sold_per_tier.push((tier.id, sold));
    }
    let mut ticketed = HashSet::new();
    for ticket in tickets.iter().filter(|t| t.seat_id.is_some()) {
        assert!(
            ticketed.insert(ticket.seat_id),
            "seat {:?} has two valid tickets",
            ticket.seat_id
        );
        let seat = seats
            .iter()
            .find(|s| Some(s.seat_id) == ticket.seat_id)
            .expect("ticketed seat is in the inventory");
        assert_eq!(seat.status, SeatStatus::Sold, "a ticketed seat is sold");
        assert_eq!(
            seat.order_id,
            Some(ticket.order_id),
            "and sold to the ticket's order"
        );
    }
    let sold_seats = seats
        .iter()
        .filter(|s| s.status == SeatStatus::Sold)
        .count();
    assert_eq!(
        sold_seats,
        ticketed.len(),
        "every sold seat has exactly one valid ticket"
    );
    check_buyer_counts(app, event_id, &tickets).await;
    sold_per_tier
}

/// The per-person cap reads each buyer's count kept by the ticket triggers: it must equal their valid
/// tickets, whatever path sold, cancelled or restored them.
async fn check_buyer_counts(app: &TestApp, event_id: Uuid, valid: &[entity::ticket::Model]) {
    let db = &app.state.db;
    let orders: HashMap<Uuid, Uuid> = entity::prelude::Order::find()
        .filter(entity::order::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("orders")
        .into_iter()
        .map(|order| (order.id, order.user_id))
        .collect();
    let mut expected: HashMap<Uuid, i32> = HashMap::new();
    for ticket in valid {
        *expected.entry(orders[&ticket.order_id]).or_default() += 1;
    }
    let counted: HashMap<Uuid, i32> = entity::prelude::BuyerTicketCount::find()
        .filter(entity::buyer_ticket_count::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("counts")
        .into_iter()
        .filter(|count| count.valid_tickets != 0)
        .map(|count| (count.user_id, count.valid_tickets))
        .collect();
    assert_eq!(counted, expected, "buyer ticket counts agree with tickets");
}

fn count_codes(results: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut codes = std::collections::BTreeMap::new();
    for body in results {
        let code = if body.get("errors").is_some() {
            error_code(body)
        } else {
            "OK".to_owned()
        };
        *codes.entry(code).or_default() += 1;
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_buyers_racing_for_fifty_tickets_buy_exactly_fifty() {
    let app = race_for_fifty(BookingPath::Coalesced, 500).await;
    let stats = app.state.direct_booking.stats();
    assert_eq!(stats.requests, 500, "every booking went through a lane");
    assert!(
        stats.batches < stats.requests,
        "concurrent bookings share batches: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simple_booking_path_sells_exactly_fifty_too() {
    // Fewer buyers: one transaction pair each is slow on SQLite, and 500 at once outlast the request
    // timeout on a loaded two-core machine.
    let app = race_for_fifty(BookingPath::Simple, 200).await;
    assert_eq!(app.state.direct_booking.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_every_buyer_with_their_own_outcome() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Mixed Batch", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let book = |token: String, quantity: i32, payment: &'static str| {
        let app = &app;
        let input = json!({ "input": { "tierId": tiers.standing, "quantity": quantity, "paymentToken": payment, "idempotencyKey": key() } });
        async move { app.graphql_as(&token, BOOK, input).await }
    };
    let payers = app.buyers(30).await;
    let decliners = app.buyers(5).await;
    let greedy = app.buyers(1).await.remove(0);
    let holder = app.buyers(1).await.remove(0);
    app.data_as(
        &holder,
        HOLD_TICKETS,
        json!({ "input": { "tierId": tiers.standing, "quantity": 1, "idempotencyKey": key() } }),
    )
    .await;

    let (paid, declined, over_cap, already_holding) = futures::join!(
        futures::future::join_all(payers.iter().map(|t| book(t.clone(), 2, "tok_visa"))),
        futures::future::join_all(decliners.iter().map(|t| book(t.clone(), 1, "tok_decline"))),
        book(greedy, 9, "tok_visa"),
        book(holder.clone(), 1, "tok_visa"),
    );
    assert_eq!(count_codes(&paid).get("OK"), Some(&30), "{paid:?}");
    assert_eq!(
        count_codes(&declined).get("PAYMENT_DECLINED"),
        Some(&5),
        "{declined:?}"
    );
    assert_eq!(error_code(&over_cap), "LIMIT_EXCEEDED");
    assert_eq!(error_code(&already_holding), "CONFLICT");
    // 100 - 60 sold - 1 held: 39 left, so of 25 more pairs 19 sell and 6 are refused.
    let late = app.buyers(25).await;
    let late = futures::future::join_all(late.into_iter().map(|t| book(t, 2, "tok_visa"))).await;
    let codes = count_codes(&late);
    assert_eq!(codes.get("OK"), Some(&19), "{codes:?}");
    assert_eq!(codes.get("SOLD_OUT"), Some(&6), "{codes:?}");

    let sold = check_books(&app, event.event_id).await;
    assert!(sold.contains(&(tiers.standing, 98)), "{sold:?}");
    let active_holds = entity::prelude::Hold::find()
        .filter(entity::hold::Column::EventId.eq(event.event_id))
        .filter(entity::hold::Column::Status.eq(HoldStatus::Active))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(active_holds, 1, "only the holder's own hold is left");
    let declines = entity::prelude::Payment::find()
        .filter(entity::payment::Column::Status.eq(entity::enums::PaymentStatus::Declined))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(declines, 5, "every decline is on record");
    let in_flight = entity::prelude::IdempotencyKey::find()
        .filter(
            entity::idempotency_key::Column::Status.eq(entity::enums::IdempotencyStatus::InFlight),
        )
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(in_flight, 0, "no idempotency key is left claimed");
    // A failed booking's key is forgotten, so the same request runs again instead of replaying.
    let retry = json!({ "input": { "tierId": tiers.standing, "quantity": 1, "paymentToken": "tok_decline", "idempotencyKey": "declined-twice" } });
    for _ in 0..2 {
        let declined = app.graphql_as(&decliners[0], BOOK, retry.clone()).await;
        assert_eq!(error_code(&declined), "PAYMENT_DECLINED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_buyers_racing_bookings_never_pass_the_per_person_cap() {
    for path in [BookingPath::Coalesced, BookingPath::Simple] {
        let app = TestApp::spawn_with(Options {
            booking_path: Some(path),
            // The tabs retry quickly; the per-user mutation limit is not what is under test.
            mutations_per_minute: Some(100_000),
            ..Options::default()
        })
        .await;
        let event = create_event_shaped(
            &app,
            "Capped",
            5,
            Shape {
                max_tickets_per_user: 5,
                ..Shape::default()
            },
        )
        .await;
        let tiers = tiers(&app, event.event_id).await;
        let buyer = app.buyers(1).await.remove(0);
        // Eight tabs of one buyer, each asking for 3 of at most 5; a tab told CONFLICT (another of
        // its bookings is in flight) tries again, so later tries meet the first one converting.
        let results = futures::future::join_all((0..8).map(|_| {
            let (app, buyer) = (&app, &buyer);
            let input = json!({ "input": { "tierId": tiers.standing, "quantity": 3, "paymentToken": "tok_visa", "idempotencyKey": key() } });
            async move {
                // Patient as a real tab: on a loaded machine the first booking can take longer to
                // convert than a fixed count of quick retries lasts.
                let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let mut answer = app.graphql_as(buyer, BOOK, input.clone()).await;
                while std::time::Instant::now() < give_up {
                    let code = answer.get("errors").map(|_| error_code(&answer));
                    if !matches!(code.as_deref(), Some("CONFLICT" | "SERVER_BUSY")) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    answer = app.graphql_as(buyer, BOOK, input.clone()).await;
                }
                answer
            }
        }))
        .await;
        let codes = count_codes(&results);
        assert_eq!(codes.get("OK"), Some(&1), "{path:?}: {codes:?}");
        assert_eq!(codes.get("LIMIT_EXCEEDED"), Some(&7), "{path:?}: {codes:?}");
        let owned = entity::prelude::Ticket::find()
            .filter(entity::ticket::Column::EventId.eq(event.event_id))
            .filter(entity::ticket::Column::Status.eq(TicketStatus::Valid))
            .count(&app.state.db)
            .await
            .expect("count");
        assert_eq!(owned, 3, "{path:?}: one booking of 3, never a second");
        check_books(&app, event.event_id).await;
    }
}

/// 500 buyers race for 50 general-admission tickets on `path`; exactly 50 win, with an order each.
async fn race_for_fifty(path: BookingPath, buyers: usize) -> TestApp {
    let app = TestApp::spawn_with(Options {
        booking_path: Some(path),
        ..Options::default()
    })
    .await;
    let event = create_event_shaped(
        &app,
        "GA Race",
        5,
        Shape {
            standing: 50,
            ..Shape::default()
        },
    )
    .await;
    let tiers = tiers(&app, event.event_id).await;
    let buyers = app.buyers(buyers).await;
    let results = futures::future::join_all(buyers.iter().map(|token| async {
        let input = json!({ "input": { "tierId": tiers.standing, "quantity": 1, "paymentToken": "tok_visa", "idempotencyKey": key() } });
        // SERVER_BUSY (SQLite's single writer under 500 at once) asks the client to retry; a real one
        // does, with the same key.
        let mut answer = app.graphql_as(token, BOOK, input.clone()).await;
        for _ in 0..20 {
            if answer.get("errors").is_none() || error_code(&answer) != "SERVER_BUSY" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            answer = app.graphql_as(token, BOOK, input.clone()).await;
        }
        answer
    }))
    .await;
    let codes = count_codes(&results);
    assert_eq!(codes.get("OK"), Some(&50), "{codes:?}");
    assert_eq!(
        codes.get("SOLD_OUT"),
        Some(&(buyers.len() - 50)),
        "{codes:?}"
    );
    let sold = check_books(&app, event.event_id).await;
    assert!(sold.contains(&(tiers.standing, 50)));
    let orders = entity::prelude::Order::find()
        .filter(entity::order::Column::EventId.eq(event.event_id))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(
        orders, 50,
        "every confirmation has its order, and nothing else does"
    );
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_racing_for_ten_seats_sell_each_seat_once() {
    let app = TestApp::spawn().await;
    let (event_id, seat_ids) = seated_event(&app, "Seat Race", 1, 10).await;
    let buyers = app.buyers(200).await;
    let attempts = futures::future::join_all(buyers.iter().enumerate().map(|(n, token)| {
        let app = &app;
        let seat = seat_ids[n % 10].clone();
        async move {
            let hold = app
                .graphql_as(token, HOLD_SEATS, json!({ "input": { "eventId": event_id, "seatIds": [seat], "idempotencyKey": key() } }))
                .await;
            if hold.get("errors").is_some() {
                return hold;
            }
            let hold_id = hold["data"]["holdSeats"]["id"].clone();
            app.graphql_as(token, CHECKOUT, json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
                .await
        }
    }))
    .await;
    let codes = count_codes(&attempts);
    assert_eq!(codes.get("OK"), Some(&10), "{codes:?}");
    assert!(
        codes
            .keys()
            .all(|code| ["OK", "SOLD_OUT", "CONFLICT"].contains(&code.as_str())),
        "{codes:?}"
    );
    let sold = check_books(&app, event_id).await;
    let tiers = tiers(&app, event_id).await;
    assert!(sold.contains(&(tiers.reserved, 10)));
}

/// A new event of `rows` × `seats_per_row` reserved seats, and its seat ids in map order.
async fn seated_event(
    app: &TestApp,
    name: &str,
    rows: u32,
    seats_per_row: u32,
) -> (Uuid, Vec<String>) {
    let event = create_event_shaped(
        app,
        name,
        5,
        Shape {
            rows,
            seats_per_row,
            ..Shape::default()
        },
    )
    .await;
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { seats { id } } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    let seat_ids: Vec<String> = map["seatMap"]["sections"][0]["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(seat_ids.len(), (rows * seats_per_row) as usize);
    (event.event_id, seat_ids)
}

/// 120 buyers name two seats each of 100, overlapping, while 40 others ask for the best pair: every
/// seat is held at most once, a named hold gets exactly the seats it named, and a refusal names seats
/// that someone else really holds.
async fn race_named_seats(path: BookingPath) -> TestApp {
    let app = TestApp::spawn_with(Options {
        booking_path: Some(path),
        ..Options::default()
    })
    .await;
    let (event_id, seat_ids) = seated_event(&app, "Named Seats", 10, 10).await;
    let named: Vec<[String; 2]> = (0..120)
        .map(|n| {
            [
                seat_ids[(n * 7) % 100].clone(),
                seat_ids[(n * 13 + 51) % 100].clone(),
            ]
        })
        .collect();
    let namers = app.buyers(named.len()).await;
    let best_buyers = app.buyers(40).await;
    let (named_results, best_results) = futures::join!(
        futures::future::join_all(namers.iter().zip(&named).map(|(token, seats)| {
            app.graphql_as(
                token,
                HOLD_SEATS,
                json!({ "input": { "eventId": event_id, "seatIds": seats, "idempotencyKey": key() } }),
            )
        })),
        futures::future::join_all(best_buyers.iter().map(|token| {
            app.graphql_as(
                token,
                HOLD_BEST,
                json!({ "input": { "eventId": event_id, "quantity": 2, "idempotencyKey": key() } }),
            )
        })),
    );
    let named_codes = count_codes(&named_results);
    assert!(
        named_codes
            .keys()
            .all(|code| ["OK", "CONFLICT"].contains(&code.as_str())),
        "nothing is sold, so a named seat is free or held: {named_codes:?}"
    );
    let best_codes = count_codes(&best_results);
    assert!(
        best_codes
            .keys()
            .all(|code| ["OK", "SOLD_OUT", "CONFLICT"].contains(&code.as_str())),
        "{best_codes:?}"
    );
    // Who holds each seat, by the answers.
    let mut holder: HashMap<String, usize> = HashMap::new();
    let mut take = |who: usize, seats: &Value| {
        for seat in seats.as_array().expect("seats") {
            let id = seat["id"].as_str().expect("seat id").to_owned();
            assert!(holder.insert(id, who).is_none(), "a seat was held twice");
        }
    };
    for (who, (body, asked)) in named_results.iter().zip(&named).enumerate() {
        if body.get("errors").is_none() {
            let seats = &body["data"]["holdSeats"]["seats"];
            let mut got: Vec<&str> = seats
                .as_array()
                .expect("seats")
                .iter()
                .filter_map(|seat| seat["id"].as_str())
                .collect();
            got.sort();
            let mut want: Vec<&str> = asked.iter().map(String::as_str).collect();
            want.sort();
            assert_eq!(got, want, "a named hold gets exactly its seats");
            take(who, seats);
        }
    }
    for (n, body) in best_results.iter().enumerate() {
        if body.get("errors").is_none() {
            take(named.len() + n, &body["data"]["holdBestAvailable"]["seats"]);
        }
    }
    for (who, (body, asked)) in named_results.iter().zip(&named).enumerate() {
        if body.get("errors").is_some() {
            let unavailable = body["errors"][0]["extensions"]["unavailableSeatIds"]
                .as_array()
                .expect("a CONFLICT names the seats");
            assert!(!unavailable.is_empty(), "{body}");
            for seat in unavailable {
                let seat = seat.as_str().expect("seat id");
                assert!(asked.iter().any(|a| a == seat), "names a seat it asked for");
                assert!(
                    holder.get(seat).is_some_and(|other| *other != who),
                    "a refusal names a seat someone else holds: {body}"
                );
            }
        }
    }
    assert!(
        named_codes.get("OK").copied().unwrap_or(0) >= 10,
        "{named_codes:?}"
    );
    check_books(&app, event_id).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_best_available_holds_racing_in_one_lane_never_double_assign() {
    let app = race_named_seats(BookingPath::Coalesced).await;
    let stats = app.state.seat_holding.stats();
    assert_eq!(
        stats.requests, 160,
        "named and best-available holds share the event's lane"
    );
    assert!(
        stats.batches < stats.requests,
        "concurrent holds share batches: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_seat_holds_one_at_a_time_never_double_assign_either() {
    let app = race_named_seats(BookingPath::Simple).await;
    assert_eq!(app.state.seat_holding.stats().requests, 0);
}

/// 40 seat holds and 20 general-admission holds of one event check out at once, one of them twice
/// with two keys and one with a declined card: each paid hold becomes its own order with its own
/// seats, a hold is never converted twice, and the books balance.
async fn race_checkouts(path: BookingPath) -> TestApp {
    let app = TestApp::spawn_with(Options {
        booking_path: Some(path),
        ..Options::default()
    })
    .await;
    let (event_id, _) = seated_event(&app, "Checkout Rush", 10, 10).await;
    let tiers = tiers(&app, event_id).await;
    let seat_buyers = app.buyers(40).await;
    let floor_buyers = app.buyers(20).await;
    let mut holds = Vec::new();
    for token in &seat_buyers {
        let hold = app
            .data_as(
                token,
                HOLD_BEST,
                json!({ "input": { "eventId": event_id, "quantity": 2, "idempotencyKey": key() } }),
            )
            .await["holdBestAvailable"]
            .clone();
        holds.push((token.clone(), hold));
    }
    for token in &floor_buyers {
        let hold = app
            .data_as(
                token,
                HOLD_TICKETS,
                json!({ "input": { "tierId": tiers.standing, "quantity": 3, "idempotencyKey": key() } }),
            )
            .await["holdTickets"]
            .clone();
        holds.push((token.clone(), hold));
    }
    let checkout = |token: &str, hold: &Value, card: &str, key: String| {
        let input = json!({ "input": { "holdId": hold["id"], "paymentToken": card, "idempotencyKey": key } });
        let token = token.to_owned();
        let app = &app;
        async move { app.graphql_as(&token, CHECKOUT, input).await }
    };
    let (declined_token, declined_hold) = &holds[1];
    let (twice_token, twice_hold) = &holds[0];
    let keys: Vec<String> = holds.iter().map(|_| key()).collect();
    let (results, declined, again) = futures::join!(
        futures::future::join_all(
            holds
                .iter()
                .zip(&keys)
                .enumerate()
                .filter(|(n, _)| *n != 1)
                .map(|(_, ((token, hold), key))| checkout(token, hold, "tok_visa", key.clone()))
        ),
        checkout(declined_token, declined_hold, "tok_decline", key()),
        checkout(twice_token, twice_hold, "tok_visa", key()),
    );
    assert_eq!(error_code(&declined), "PAYMENT_DECLINED");
    let codes = count_codes(&[&results[..], std::slice::from_ref(&again)].concat());
    assert_eq!(codes.get("OK"), Some(&59), "{codes:?}");
    let first = &results[0];
    let twice_codes = count_codes(&[first.clone(), again.clone()]);
    assert_eq!(
        twice_codes.get("OK"),
        Some(&1),
        "one hold, one order: {first} {again}"
    );
    let mut seen = HashSet::new();
    let mut orders = HashSet::new();
    let paid: Vec<(&(String, Value), &Value)> = holds
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != 1)
        .map(|(_, hold)| hold)
        .zip(&results)
        .collect();
    for ((_, hold), body) in paid {
        let order = &body["data"]["checkout"];
        if body.get("errors").is_some() {
            continue;
        }
        assert!(
            orders.insert(order["id"].clone()),
            "an order answered twice"
        );
        let tickets = order["tickets"].as_array().expect("tickets");
        let label = |seat: &Value| {
            (
                seat["row"].as_str().unwrap_or_default().to_owned(),
                seat["number"].as_i64().unwrap_or_default(),
            )
        };
        let mut held: Vec<(String, i64)> = hold["seats"]
            .as_array()
            .map(|seats| seats.iter().map(label).collect())
            .unwrap_or_default();
        let mut ticketed: Vec<(String, i64)> = tickets
            .iter()
            .filter(|ticket| !ticket["seat"].is_null())
            .map(|ticket| label(&ticket["seat"]))
            .collect();
        held.sort();
        ticketed.sort();
        assert_eq!(held, ticketed, "an order tickets exactly its hold's seats");
        let expected = if hold["seats"].is_array() { 2 } else { 3 };
        assert_eq!(tickets.len(), expected, "{order}");
        for seat in ticketed {
            assert!(seen.insert(seat), "a seat was ticketed twice");
        }
    }
    let still_held = app
        .data_as(declined_token, "query { myHolds { id status } }", json!({}))
        .await;
    assert_eq!(
        still_held["myHolds"][0]["id"], declined_hold["id"],
        "a declined card keeps the hold"
    );
    // Each key completed with its order, in the transaction that made it: a retry gets that order.
    let (token, hold) = &holds[2];
    let retry = checkout(token, hold, "tok_visa", keys[2].clone()).await;
    assert_eq!(
        retry["data"]["checkout"]["id"], results[1]["data"]["checkout"]["id"],
        "{retry}"
    );
    let in_flight = entity::prelude::IdempotencyKey::find()
        .filter(
            entity::idempotency_key::Column::Status.eq(entity::enums::IdempotencyStatus::InFlight),
        )
        .count(&app.state.db)
        .await
        .expect("keys");
    assert_eq!(in_flight, 0, "no key is left in flight");
    let sold = check_books(&app, event_id).await;
    assert!(sold.contains(&(tiers.reserved, 78)), "{sold:?}");
    assert!(sold.contains(&(tiers.standing, 60)), "{sold:?}");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkouts_of_one_event_share_transactions_each_with_its_own_order() {
    let app = race_checkouts(BookingPath::Coalesced).await;
    let stats = app.state.checkouts.stats();
    // 59 paid checkouts, and the second one of the hold paid twice if it was charged before the
    // first converted it (otherwise its check before the payment refuses it).
    assert!(
        (59..=60).contains(&stats.requests),
        "every paid checkout went through the lane: {stats:?}"
    );
    assert!(
        stats.batches < stats.requests,
        "concurrent checkouts share batches: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_one_at_a_time_balance_the_books_too() {
    let app = race_checkouts(BookingPath::Simple).await;
    assert_eq!(app.state.checkouts.stats().requests, 0);
}

/// A buyer whose hold ran out can hold the same seats again before the sweeper comes round: their
/// own stale hold is expired first, on both paths.
async fn rehold_own_expired_seats(path: BookingPath) {
    let app = TestApp::spawn_with(Options {
        booking_path: Some(path),
        sweep_interval_ms: Some(3_600_000),
        ..Options::default()
    })
    .await;
    let (event_id, seat_ids) = seated_event(&app, "Second Try", 1, 4).await;
    let token = app.buyers(1).await.remove(0);
    let hold_two = || {
        let input = json!({ "input": { "eventId": event_id, "seatIds": &seat_ids[..2], "idempotencyKey": key() } });
        app.graphql_as(&token, HOLD_SEATS, input)
    };
    let first = hold_two().await;
    assert!(first.get("errors").is_none(), "{first}");
    let first_id: Uuid = first["data"]["holdSeats"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("hold id");
    entity::hold::ActiveModel {
        id: Set(first_id),
        expires_at: Set(chrono::Utc::now() - chrono::Duration::seconds(1)),
        ..Default::default()
    }
    .update(&app.state.db)
    .await
    .expect("hold ran out");
    let again = hold_two().await;
    assert!(again.get("errors").is_none(), "{path:?}: {again}");
    assert_ne!(
        again["data"]["holdSeats"]["id"],
        first["data"]["holdSeats"]["id"]
    );
    check_books(&app, event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_can_hold_their_own_expired_seats_again_before_the_sweep() {
    rehold_own_expired_seats(BookingPath::Coalesced).await;
    rehold_own_expired_seats(BookingPath::Simple).await;
}

/// Free seats left in the event as (row, number), after a race.
async fn free_seats(app: &TestApp, event_id: Uuid) -> Vec<(String, i64)> {
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { seats { row number status } } } }",
            json!({ "id": event_id }),
        )
        .await;
    map["seatMap"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
        .filter(|seat| seat["status"] == "AVAILABLE")
        .map(|seat| {
            (
                seat["row"].as_str().unwrap_or("").to_owned(),
                seat["number"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

async fn race_best_available(adjacent: bool, path: BookingPath) -> TestApp {
    let app = TestApp::spawn_with(Options {
        booking_path: Some(path),
        ..Options::default()
    })
    .await;
    let event = create_event_shaped(
        &app,
        "Best Race",
        5,
        Shape {
            rows: 10,
            seats_per_row: 10,
            ..Shape::default()
        },
    )
    .await;
    let buyers = app.buyers(80).await;
    let results = futures::future::join_all(buyers.iter().map(|token| {
        app.graphql_as(
            token,
            HOLD_BEST,
            json!({ "input": { "eventId": event.event_id, "quantity": 2, "adjacent": adjacent, "idempotencyKey": key() } }),
        )
    }))
    .await;
    let codes = count_codes(&results);
    // CONFLICT is the documented "seats are going fast, try again" when every pick was beaten.
    assert!(
        codes
            .keys()
            .all(|code| ["OK", "SOLD_OUT", "CONFLICT"].contains(&code.as_str())),
        "{codes:?}"
    );
    let mut seen = HashSet::new();
    for body in results.iter().filter(|b| b.get("errors").is_none()) {
        let seats = body["data"]["holdBestAvailable"]["seats"]
            .as_array()
            .expect("seats");
        assert_eq!(seats.len(), 2);
        if adjacent {
            assert_eq!(
                seats[0]["row"], seats[1]["row"],
                "adjacent seats share a row"
            );
            let numbers: Vec<i64> = seats.iter().filter_map(|s| s["number"].as_i64()).collect();
            assert_eq!(
                (numbers[0] - numbers[1]).abs(),
                1,
                "adjacent seats are side by side"
            );
        }
        for seat in seats {
            assert!(
                seen.insert(seat["id"].as_str().map(str::to_owned)),
                "a seat was held twice"
            );
        }
    }
    check_books(&app, event.event_id).await;
    // SOLD_OUT must be true: once a buyer heard it, no fitting seats may be left over.
    let free = free_seats(&app, event.event_id).await;
    if codes.contains_key("SOLD_OUT") {
        if adjacent {
            let pair_left = free
                .iter()
                .any(|(row, n)| free.contains(&(row.clone(), n + 1)));
            assert!(
                !pair_left,
                "told SOLD_OUT while an adjacent pair was free: {free:?}"
            );
        } else {
            assert!(
                free.len() < 2,
                "told SOLD_OUT while {} seats were free",
                free.len()
            );
        }
    }
    let sold = codes.get("OK").copied().unwrap_or(0);
    match path {
        // One lane chooses for everyone: 10 rows of 10 take exactly 50 pairs, and no buyer is told
        // to try again.
        BookingPath::Coalesced => assert_eq!(sold, 50, "{codes:?}"),
        BookingPath::Simple => assert!(sold >= 40, "most buyers get seats: {codes:?}"),
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_adjacent_pairs_under_contention_never_double_assign() {
    let app = race_best_available(true, BookingPath::Coalesced).await;
    let stats = app.state.seat_holding.stats();
    assert_eq!(
        stats.requests, 80,
        "every hold went through the event's lane"
    );
    assert!(
        stats.batches < stats.requests,
        "concurrent holds share batches: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_any_seats_under_contention_sell_the_house() {
    race_best_available(false, BookingPath::Coalesced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_one_at_a_time_never_double_assigns_either() {
    let app = race_best_available(true, BookingPath::Simple).await;
    assert_eq!(app.state.seat_holding.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_available_batch_answers_every_buyer_with_their_own_outcome() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(
        &app,
        "Mixed Seats",
        5,
        Shape {
            rows: 10,
            seats_per_row: 10,
            ..Shape::default()
        },
    )
    .await;
    let hold_best = |token: String, quantity: i32, key: String| {
        let app = &app;
        let input = json!({ "input": { "eventId": event.event_id, "quantity": quantity, "adjacent": true, "idempotencyKey": key } });
        async move { app.graphql_as(&token, HOLD_BEST, input).await }
    };
    let buyers = app.buyers(20).await;
    let holder = app.buyers(1).await.remove(0);
    let retrier = app.buyers(1).await.remove(0);
    app.data_as(
        &holder,
        HOLD_BEST,
        json!({ "input": { "eventId": event.event_id, "quantity": 1, "idempotencyKey": key() } }),
    )
    .await;
    let retried_key = key();
    let (held, already_holding, first, retry) = futures::join!(
        futures::future::join_all(buyers.iter().map(|t| hold_best(t.clone(), 3, key()))),
        hold_best(holder.clone(), 2, key()),
        hold_best(retrier.clone(), 2, retried_key.clone()),
        hold_best(retrier.clone(), 2, retried_key.clone()),
    );
    assert_eq!(count_codes(&held).get("OK"), Some(&20), "{held:?}");
    assert_eq!(error_code(&already_holding), "CONFLICT");
    assert!(first.get("errors").is_none(), "{first:?}");
    assert_eq!(
        first["data"]["holdBestAvailable"]["id"], retry["data"]["holdBestAvailable"]["id"],
        "one key, one hold: {retry:?}"
    );
    let mut seen = HashSet::new();
    for body in held.iter().chain([&first]) {
        let seats = body["data"]["holdBestAvailable"]["seats"]
            .as_array()
            .expect("seats");
        let rows: HashSet<&Value> = seats.iter().map(|seat| &seat["row"]).collect();
        assert_eq!(rows.len(), 1, "adjacent seats share a row: {seats:?}");
        for seat in seats {
            assert!(seen.insert(seat["id"].clone()), "a seat was held twice");
        }
    }
    check_books(&app, event.event_id).await;
    let holds = entity::prelude::Hold::find()
        .filter(entity::hold::Column::EventId.eq(event.event_id))
        .all(&app.state.db)
        .await
        .expect("holds");
    assert_eq!(
        holds.len(),
        22,
        "the holder's first, 20 buyers and one retrier"
    );
    let keys = entity::prelude::IdempotencyKey::find()
        .filter(
            entity::idempotency_key::Column::Status.eq(entity::enums::IdempotencyStatus::InFlight),
        )
        .all(&app.state.db)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "no key is left in flight: {keys:?}");
}

/// The event's lane keeps the free seats it read between batches; seats taken or given back
/// elsewhere must reach it before it chooses again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_follows_seats_taken_and_freed_outside_its_lane() {
    let app = TestApp::spawn().await;
    // Rows A-C of four seats: a pair at either end of a row leaves no orphan.
    let event = create_event_shaped(&app, "Kept Seats", 5, Shape::default()).await;
    let [first, second, outsider, third, fourth] =
        <[String; 5]>::try_from(app.buyers(5).await).expect("five buyers");
    let hold_pair = |token: &str| {
        let app = &app;
        let input = json!({ "input": { "eventId": event.event_id, "quantity": 2, "adjacent": true, "idempotencyKey": key() } });
        let token = token.to_owned();
        async move { app.data_as(&token, HOLD_BEST, input).await["holdBestAvailable"].clone() }
    };
    let rows_of = |hold: &Value| -> Vec<String> {
        hold["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|seat| seat["row"].as_str().expect("row").to_owned())
            .collect()
    };
    let front = hold_pair(&first).await;
    assert_eq!(rows_of(&front), ["A", "A"]);
    assert_eq!(rows_of(&hold_pair(&second).await), ["A", "A"]);

    // Taken outside the lane, as by another instance: the whole of row B.
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { seats { id row } } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    let row_b: Vec<Uuid> = map["seatMap"]["sections"][0]["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .filter(|seat| seat["row"] == "B")
        .filter_map(|seat| seat["id"].as_str()?.parse().ok())
        .collect();
    let outsider_id = app.state.tokens.verify(&outsider).expect("token").sub;
    seatstorm::booking::service::hold_seats(
        &app.state.db,
        &app.state.config.hold_policy(),
        seatstorm::booking::service::Buyer::without_pass(outsider_id),
        event.event_id,
        &row_b,
    )
    .await
    .expect("row B held outside the lane");
    assert_eq!(rows_of(&hold_pair(&third).await), ["C", "C"]);

    // Given back outside the lane: the front pair is the best again.
    let released = app
        .data_as(
            &first,
            "mutation($id: ID!) { releaseHold(holdId: $id) { status } }",
            json!({ "id": front["id"] }),
        )
        .await;
    assert_eq!(released["releaseHold"]["status"], "RELEASED");
    let again = hold_pair(&fourth).await;
    assert_eq!(rows_of(&again), ["A", "A"], "the freed front pair: {again}");
    let numbers = |hold: &Value| -> HashSet<i64> {
        hold["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .filter_map(|seat| seat["number"].as_i64())
            .collect()
    };
    assert_eq!(numbers(&again), numbers(&front));
    check_books(&app, event.event_id).await;
}

/// On PostgreSQL a seat batch commits while the lane places the next one, which already counts the
/// committing batch's seats as gone. A batch that fails at its commit must cost its buyers nothing
/// but a retry, and must not leave the next batch answering SOLD_OUT for seats that came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_batch_that_fails_at_commit_leaves_no_buyer_short() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    if !seatstorm::db::is_postgres(&app.state.db) {
        // SQLite has no deferred triggers to fail a commit with, and commits in line anyway.
        return;
    }
    let event = create_event_shaped(
        &app,
        "Doomed Batch",
        5,
        Shape {
            rows: 10,
            seats_per_row: 10,
            ..Shape::default()
        },
    )
    .await;
    let hold_pair = |token: String| {
        let app = &app;
        let input = json!({ "input": { "eventId": event.event_id, "quantity": 2, "adjacent": false, "idempotencyKey": key() } });
        async move {
            // CONFLICT is "try again": the failed batch's buyers, retried one at a time, race the lane.
            let mut answer = app.graphql_as(&token, HOLD_BEST, input.clone()).await;
            for _ in 0..5 {
                if answer.get("errors").is_none() || error_code(&answer) != "CONFLICT" {
                    break;
                }
                answer = app.graphql_as(&token, HOLD_BEST, input.clone()).await;
            }
            answer
        }
    };
    let early = futures::future::join_all(app.buyers(40).await.into_iter().map(hold_pair)).await;
    assert_eq!(count_codes(&early).get("OK"), Some(&40), "{early:?}");

    let doomed = app.buyers(1).await.remove(0);
    let doomed_id = app.state.tokens.verify(&doomed).expect("token").sub;
    // The doomed buyer's batch takes a while to fail at its commit, so the lane places the next
    // batch meanwhile, counting the doomed seats as gone.
    app.state
        .db
        .execute_unprepared(&format!(
            "CREATE FUNCTION doom_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.user_id = '{doomed_id}' THEN \
                 PERFORM pg_sleep(0.3); RAISE EXCEPTION 'doomed at commit'; \
               END IF; \
               RETURN NEW; END $$; \
             CREATE CONSTRAINT TRIGGER doom_hold AFTER INSERT ON holds \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION doom_hold();"
        ))
        .await
        .expect("trigger");
    // 20 seats left: the next batch's ten pairs fit only once the doomed pair is back.
    let behind = app.buyers(10).await;
    let (first, second) = futures::join!(hold_pair(doomed), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        futures::future::join_all(behind.into_iter().map(hold_pair)).await
    });
    // Its retry fails at commit too, unless the house filled up before it ran.
    let doomed_answer = error_code(&first);
    assert!(
        ["INTERNAL_SERVER_ERROR", "SOLD_OUT"].contains(&doomed_answer.as_str()),
        "{first:?}"
    );
    // A SOLD_OUT here would be for seats the failed batch never held.
    assert_eq!(count_codes(&second).get("OK"), Some(&10), "{second:?}");
    assert!(free_seats(&app, event.event_id).await.is_empty());
    check_books(&app, event.event_id).await;
    let doomed_holds = entity::prelude::Hold::find()
        .filter(entity::hold::Column::UserId.eq(doomed_id))
        .count(&app.state.db)
        .await
        .expect("holds");
    assert_eq!(doomed_holds, 0);
}

/// A key PostgreSQL cannot store must be refused on its own, not fail the batch it would have joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_idempotency_key_is_refused_without_failing_anyone_else() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Bad Keys", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let buyers = app.buyers(23).await;
    let book = |token: String, key: String| {
        let app = &app;
        let input = json!({ "input": { "tierId": tiers.standing, "quantity": 1, "paymentToken": "tok_visa", "idempotencyKey": key } });
        async move { app.graphql_as(&token, BOOK, input).await }
    };
    let (fine, nul, tab, too_long) = futures::join!(
        futures::future::join_all(buyers[3..].iter().map(|token| book(token.clone(), key()))),
        book(buyers[0].clone(), "nul\u{0}key".into()),
        book(buyers[1].clone(), "tab\tkey".into()),
        book(buyers[2].clone(), "k".repeat(256)),
    );
    assert_eq!(count_codes(&fine).get("OK"), Some(&20), "{fine:?}");
    assert_eq!(error_code(&nul), "BAD_USER_INPUT", "{nul}");
    assert_eq!(error_code(&tab), "BAD_USER_INPUT", "{tab}");
    assert_eq!(error_code(&too_long), "BAD_USER_INPUT", "{too_long}");
    let sold = check_books(&app, event.event_id).await;
    assert!(sold.contains(&(tiers.standing, 20)), "{sold:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_one_idempotency_key_never_create_a_second_order() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Retry", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let token = app.buyers(1).await.remove(0);
    let input = json!({ "input": { "tierId": tiers.standing, "quantity": 2, "paymentToken": "tok_visa", "idempotencyKey": "retry-1" } });
    let results =
        futures::future::join_all((0..10).map(|_| app.graphql_as(&token, BOOK, input.clone())))
            .await;
    let ids: HashSet<String> = results
        .iter()
        .map(|body| {
            assert!(body.get("errors").is_none(), "{body}");
            body["data"]["bookTickets"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry returns the first order");
    let again = app.graphql_as(&token, BOOK, input).await;
    assert_eq!(
        again["data"]["bookTickets"]["id"].as_str(),
        ids.iter().next().map(String::as_str)
    );
    let orders = entity::prelude::Order::find()
        .filter(entity::order::Column::EventId.eq(event.event_id))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(orders, 1);
    let different = app
        .graphql_as(
            &token,
            BOOK,
            json!({ "input": { "tierId": tiers.standing, "quantity": 3, "paymentToken": "tok_visa", "idempotencyKey": "retry-1" } }),
        )
        .await;
    assert_eq!(error_code(&different), "CONFLICT");
    check_books(&app, event.event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_claimed_by_a_request_that_died_is_taken_over_by_the_retry() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Crashed", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let token = app.buyers(1).await.remove(0);
    let me = app.data_as(&token, "{ me { id } }", json!({})).await;
    let user_id: Uuid = me["me"]["id"].as_str().expect("id").parse().expect("uuid");
    // What an instance that crashed between claiming the key and answering leaves behind.
    let claimed_at = chrono::Utc::now() - chrono::Duration::minutes(10);
    entity::idempotency_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        key: Set("died-1".into()),
        operation: Set("bookTickets".into()),
        request_hash: Set("whatever the dead request hashed to".into()),
        status: Set(entity::enums::IdempotencyStatus::InFlight),
        response: Set(None),
        created_at: Set(claimed_at),
        expires_at: Set(claimed_at + chrono::Duration::hours(24)),
    }
    .insert(&app.state.db)
    .await
    .expect("a stale claim");
    // Before the lease, this waited 15 s for the dead request and then answered CONFLICT.
    let retry = app
        .graphql_as(
            &token,
            BOOK,
            json!({ "input": { "tierId": tiers.standing, "quantity": 2, "paymentToken": "tok_visa", "idempotencyKey": "died-1" } }),
        )
        .await;
    assert!(retry.get("errors").is_none(), "{retry}");
    assert_eq!(retry["data"]["bookTickets"]["status"], "PAID");
    check_books(&app, event.event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_keeps_the_hold_for_another_try() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Declined", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let token = app.buyers(1).await.remove(0);
    let hold = app
        .data_as(&token, HOLD_TICKETS, json!({ "input": { "tierId": tiers.standing, "quantity": 2, "idempotencyKey": key() } }))
        .await;
    let hold_id = hold["holdTickets"]["id"].clone();
    assert_eq!(hold["holdTickets"]["totalCents"], 5000);
    let declined = app
        .graphql_as(&token, CHECKOUT, json!({ "input": { "holdId": hold_id, "paymentToken": "tok_decline", "idempotencyKey": key() } }))
        .await;
    assert_eq!(error_code(&declined), "PAYMENT_DECLINED");
    check_books(&app, event.event_id).await;
    let paid = app
        .data_as(&token, CHECKOUT, json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    assert_eq!(paid["checkout"]["status"], "PAID");
    assert_eq!(
        paid["checkout"]["tickets"].as_array().map(Vec::len),
        Some(2)
    );
    let twice = app
        .graphql_as(&token, CHECKOUT, json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    assert_eq!(error_code(&twice), "CONFLICT", "a hold is checked out once");
    check_books(&app, event.event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_rules_are_enforced_with_their_codes() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(
        &app,
        "Rules",
        5,
        Shape {
            max_tickets_per_user: 4,
            ..Shape::default()
        },
    )
    .await;
    let tiers = tiers(&app, event.event_id).await;
    let token = app.buyers(1).await.remove(0);
    let hold = |quantity: i32| {
        app.graphql_as(&token, HOLD_TICKETS, json!({ "input": { "tierId": tiers.standing, "quantity": quantity, "idempotencyKey": key() } }))
    };
    assert_eq!(error_code(&hold(0).await), "BAD_USER_INPUT");
    assert_eq!(error_code(&hold(11).await), "BAD_USER_INPUT");
    assert_eq!(
        error_code(&hold(5).await),
        "LIMIT_EXCEEDED",
        "the per-user cap of the event"
    );
    let first = hold(2).await;
    assert!(first.get("errors").is_none(), "{first}");
    assert_eq!(
        error_code(&hold(1).await),
        "CONFLICT",
        "one active hold per event"
    );
    let reserved_as_ga = app
        .graphql_as(&token, HOLD_TICKETS, json!({ "input": { "tierId": tiers.reserved, "quantity": 1, "idempotencyKey": key() } }))
        .await;
    assert_eq!(error_code(&reserved_as_ga), "BAD_USER_INPUT");
    let anonymous = app
        .graphql(HOLD_TICKETS, json!({ "input": { "tierId": tiers.standing, "quantity": 1, "idempotencyKey": key() } }))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let hold_id = first["data"]["holdTickets"]["id"].clone();
    let released = app
        .data_as(
            &token,
            "mutation($id: ID!) { releaseHold(holdId: $id) { status } }",
            json!({ "id": hold_id }),
        )
        .await;
    assert_eq!(released["releaseHold"]["status"], "RELEASED");
    check_books(&app, event.event_id).await;
    let someone_else = app.buyers(1).await.remove(0);
    let foreign = app
        .graphql_as(
            &someone_else,
            "mutation($id: ID!) { releaseHold(holdId: $id) { status } }",
            json!({ "id": hold_id }),
        )
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_holds_and_checkout_then_fails_cleanly() {
    let app = TestApp::spawn_with(Options {
        hold_ttl_seconds: Some(1),
        sweep_interval_ms: Some(100),
        ..Options::default()
    })
    .await;
    let event = create_event_shaped(&app, "Expiry", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let token = app.buyers(1).await.remove(0);
    let hold = app
        .data_as(&token, HOLD_TICKETS, json!({ "input": { "tierId": tiers.standing, "quantity": 3, "idempotencyKey": key() } }))
        .await;
    let hold_id = Uuid::parse_str(hold["holdTickets"]["id"].as_str().expect("id")).expect("uuid");
    // Wait, bounded, for the background sweeper to expire it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let current = entity::prelude::Hold::find_by_id(hold_id)
            .one(&app.state.db)
            .await
            .expect("query")
            .expect("hold");
        if current.status == HoldStatus::Expired {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper did not expire the hold"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check_books(&app, event.event_id).await;
    let available = app
        .data(
            "query($id: ID!) { event(id: $id) { tiers { kind available } } }",
            json!({ "id": event.event_id }),
        )
        .await;
    assert!(
        available["event"]["tiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .any(|t| t["kind"] == "GENERAL_ADMISSION" && t["available"] == 100)
    );
    let late = app
        .graphql_as(&token, CHECKOUT, json!({ "input": { "holdId": hold_id, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    assert_eq!(error_code(&late), "HOLD_EXPIRED");
    assert_eq!(
        entity::prelude::Order::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        0,
        "no order from an expired hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_undo_reduce_and_expiry_interleaved_keep_the_books_balanced() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(
        &app,
        "Interleave",
        5,
        Shape {
            rows: 2,
            seats_per_row: 5,
            standing: 20,
            max_tickets_per_user: 10,
        },
    )
    .await;
    let tiers = tiers(&app, event.event_id).await;
    let buyers = app.buyers(3).await;
    let (alice, bob, carol) = (&buyers[0], &buyers[1], &buyers[2]);

    // Alice buys 4 best seats, Bob 5 GA tickets.
    let hold = app
        .data_as(alice, HOLD_BEST, json!({ "input": { "eventId": event.event_id, "quantity": 4, "idempotencyKey": key() } }))
        .await;
    let alice_order = app
        .data_as(alice, CHECKOUT, json!({ "input": { "holdId": hold["holdBestAvailable"]["id"], "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    let alice_order_id = alice_order["checkout"]["id"].clone();
    let bob_order = app
        .data_as(bob, BOOK, json!({ "input": { "tierId": tiers.standing, "quantity": 5, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    let bob_order_id = bob_order["bookTickets"]["id"].clone();
    check_books(&app, event.event_id).await;

    // Bob gives two tickets back: refunded at once, stock returns.
    let bob_tickets: Vec<Value> = bob_order["bookTickets"]["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    let reduced = app
        .data_as(
            bob,
            "mutation($o: ID!, $t: [ID!]!) { reduceOrder(orderId: $o, ticketIds: $t) { status refundedCents tickets { status } } }",
            json!({ "o": bob_order_id, "t": [bob_tickets[0], bob_tickets[1]] }),
        )
        .await;
    assert_eq!(reduced["reduceOrder"]["status"], "PAID");
    assert_eq!(reduced["reduceOrder"]["refundedCents"], 5000);
    check_books(&app, event.event_id).await;

    // Alice cancels; Carol holds two of the freed seats; Alice's undo must now fail.
    let cancelled = app
        .data_as(
            alice,
            "mutation($o: ID!) { cancelOrder(orderId: $o) { status undoableUntil } }",
            json!({ "o": alice_order_id }),
        )
        .await;
    assert_eq!(cancelled["cancelOrder"]["status"], "CANCELLED");
    assert!(cancelled["cancelOrder"]["undoableUntil"].is_string());
    check_books(&app, event.event_id).await;
    let freed: Vec<Value> = alice_order["checkout"]["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["seat"].clone())
        .collect();
    assert_eq!(freed.len(), 4);
    let carol_hold = app
        .data_as(carol, HOLD_BEST, json!({ "input": { "eventId": event.event_id, "quantity": 2, "idempotencyKey": key() } }))
        .await;
    check_books(&app, event.event_id).await;
    let carol_seats: Vec<Value> = carol_hold["holdBestAvailable"]["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| json!({ "row": s["row"], "number": s["number"] }))
        .collect();
    let overlap = carol_seats.iter().any(|s| freed.contains(s));
    let undo = app
        .graphql_as(
            alice,
            "mutation($o: ID!) { undoCancellation(orderId: $o) { status } }",
            json!({ "o": alice_order_id }),
        )
        .await;
    if overlap {
        assert_eq!(error_code(&undo), "CONFLICT", "the seats went to Carol");
    } else {
        assert!(undo.get("errors").is_none(), "{undo}");
    }
    check_books(&app, event.event_id).await;

    // Carol's hold expires (swept as if its time had come); Alice can then undo.
    seatstorm::booking::sweeper::expire_due(
        &app.state.db,
        chrono::Duration::minutes(30),
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .expect("sweep");
    check_books(&app, event.event_id).await;
    if overlap {
        let undo = app
            .data_as(
                alice,
                "mutation($o: ID!) { undoCancellation(orderId: $o) { status tickets { status } } }",
                json!({ "o": alice_order_id }),
            )
            .await;
        assert_eq!(undo["undoCancellation"]["status"], "PAID");
        check_books(&app, event.event_id).await;
    }
    let undo_again = app
        .graphql_as(
            alice,
            "mutation($o: ID!) { undoCancellation(orderId: $o) { status } }",
            json!({ "o": alice_order_id }),
        )
        .await;
    assert_eq!(
        error_code(&undo_again),
        "CONFLICT",
        "only a cancelled order can be restored"
    );
    let sold = check_books(&app, event.event_id).await;
    assert!(sold.contains(&(tiers.reserved, 4)));
    assert!(sold.contains(&(tiers.standing, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_listed_for_their_buyer_only() {
    let app = TestApp::spawn().await;
    let event = create_event_shaped(&app, "Mine", 5, Shape::default()).await;
    let tiers = tiers(&app, event.event_id).await;
    let buyers = app.buyers(2).await;
    let order = app
        .data_as(&buyers[0], BOOK, json!({ "input": { "tierId": tiers.standing, "quantity": 1, "paymentToken": "tok_visa", "idempotencyKey": key() } }))
        .await;
    let order_id = order["bookTickets"]["id"].clone();
    let mine = app
        .data_as(&buyers[0], "{ myOrders(filter: UPCOMING) { edges { node { id event { title } lines { quantity unitPriceCents } } } } }", json!({}))
        .await;
    assert_eq!(mine["myOrders"]["edges"][0]["node"]["id"], order_id);
    assert_eq!(
        mine["myOrders"]["edges"][0]["node"]["event"]["title"],
        "Mine"
    );
    let past = app
        .data_as(
            &buyers[0],
            "{ myOrders(filter: PAST) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(past["myOrders"]["edges"], json!([]));
    let theirs = app
        .graphql_as(
            &buyers[1],
            "query($id: ID!) { order(id: $id) { id } }",
            json!({ "id": order_id }),
        )
        .await;
    assert_eq!(error_code(&theirs), "NOT_FOUND");
    let holds = app
        .data_as(&buyers[1], "{ myHolds { id } }", json!({}))
        .await;
    assert_eq!(holds["myHolds"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_person_cap_follows_cancelled_reduced_and_restored_tickets() {
    let app = TestApp::spawn().await;
    let shape = Shape {
        max_tickets_per_user: 4,
        ..Shape::default()
    };
    let event = create_event_shaped(&app, "Cap Follows Tickets", 5, shape).await;
    let standing = tiers(&app, event.event_id).await.standing;
    let buyer = app.buyers(1).await.remove(0);
    let book = |quantity: i32| {
        let (app, buyer) = (&app, &buyer);
        let input = json!({ "input": { "tierId": standing, "quantity": quantity, "paymentToken": "tok_visa", "idempotencyKey": key() } });
        async move { app.graphql_as(buyer, BOOK, input).await }
    };
    let first = book(4).await;
    let first_id = first["data"]["bookTickets"]["id"].clone();
    let first_tickets = first["data"]["bookTickets"]["tickets"].clone();
    assert_eq!(error_code(&book(1).await), "LIMIT_EXCEEDED");

    app.data_as(
        &buyer,
        "mutation($o: ID!, $t: [ID!]!) { reduceOrder(orderId: $o, ticketIds: $t) { id } }",
        json!({ "o": first_id, "t": [first_tickets[0]["id"], first_tickets[1]["id"]] }),
    )
    .await;
    check_books(&app, event.event_id).await;
    assert!(book(2).await.get("errors").is_none(), "two were given back");
    assert_eq!(error_code(&book(1).await), "LIMIT_EXCEEDED");

    app.data_as(
        &buyer,
        "mutation($o: ID!) { cancelOrder(orderId: $o) { id } }",
        json!({ "o": first_id }),
    )
    .await;
    check_books(&app, event.event_id).await;
    app.data_as(
        &buyer,
        "mutation($o: ID!) { undoCancellation(orderId: $o) { id } }",
        json!({ "o": first_id }),
    )
    .await;
    check_books(&app, event.event_id).await;
    assert_eq!(
        error_code(&book(1).await),
        "LIMIT_EXCEEDED",
        "the restored two count again"
    );
}

/// `myHolds` with each hold's seats, price and event: the statements issued do not grow with the
/// number of holds, and every hold shows its own seats in seat order and its own total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_holds_load_seats_and_totals_in_a_bounded_number_of_statements() {
    // The sweeper shares the statement counter: its first pass is an hour away.
    let app = TestApp::spawn_with(Options {
        sweep_interval_ms: Some(3_600_000),
        ..Options::default()
    })
    .await;
    let buyer = app.buyers(1).await.remove(0);
    let mut held = Vec::new();
    for n in 0..6 {
        let (event_id, seat_ids) = seated_event(&app, &format!("Held {n}"), 2, 5).await;
        // Named out of order: the answer lists them in seat order.
        let named = vec![seat_ids[3].clone(), seat_ids[1].clone()];
        let hold = app
            .data_as(
                &buyer,
                HOLD_SEATS,
                json!({ "input": { "eventId": event_id, "seatIds": named, "idempotencyKey": key() } }),
            )
            .await;
        held.push((
            hold["holdSeats"]["id"].clone(),
            vec![seat_ids[1].clone(), seat_ids[3].clone()],
        ));
    }
    let query = "{ myHolds { id totalCents seats { id number } event { title } } }";
    let count = |holds: usize| {
        let app = &app;
        let buyer = &buyer;
        let held = &held;
        async move {
            let before = app.statements();
            let data = app.data_as(buyer, query, json!({})).await;
            let after = app.statements();
            let listed = data["myHolds"].as_array().expect("holds");
            assert!(listed.len() >= holds);
            for (hold_id, seats) in held {
                let hold = listed
                    .iter()
                    .find(|hold| hold["id"] == *hold_id)
                    .expect("every hold listed");
                let shown: Vec<&str> = hold["seats"]
                    .as_array()
                    .expect("seats")
                    .iter()
                    .filter_map(|seat| seat["id"].as_str())
                    .collect();
                assert_eq!(shown, *seats, "the hold's own seats, in seat order");
                assert!(hold["totalCents"].as_i64().is_some_and(|cents| cents > 0));
            }
            after - before
        }
    };
    let few = {
        // The same buyer with one hold: a second buyer holding in the first event.
        let other = app.buyers(1).await.remove(0);
        let (event_id, seat_ids) = seated_event(&app, "Held alone", 2, 5).await;
        app.data_as(
            &other,
            HOLD_SEATS,
            json!({ "input": { "eventId": event_id, "seatIds": [seat_ids[0]], "idempotencyKey": key() } }),
        )
        .await;
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements();
            let data = app.data_as(&other, query, json!({})).await;
            fewest = fewest.min(app.statements() - before);
            assert_eq!(data["myHolds"].as_array().map(Vec::len), Some(1));
        }
        fewest
    };
    let mut many = u64::MAX;
    for _ in 0..3 {
        many = many.min(count(held.len()).await);
    }
    // The holds, then one batch each of seats (two statements), tiers and events; a loader may split
    // over two batches when resolution straddles its delay. An N+1 would cost four per hold.
    let bound = 1 + 2 * 4;
    assert!(
        few <= bound && many <= bound,
        "statements must not grow with the holds: {few} for one hold, {many} for six"
    );
}
