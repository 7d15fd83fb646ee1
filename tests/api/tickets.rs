//! Tickets at the door: signed codes verified offline, exactly-once check-in, cancelled and reissued
//! codes refused, offline batches, and who may scan.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::booking::tiers;
use crate::helpers::{Shape, TestApp, create_event_shaped, error_code, hand_over};
use crate::subscriptions::{connect, next_for, send};

const BOOK: &str = "mutation($input: BookTicketsInput!) { bookTickets(input: $input) { id tickets { id qrPayload } } }";
const VERIFY: &str = "mutation($e: ID!, $p: String!) { verifyTicket(eventId: $e, payload: $p) { verdict checkedInAt gate reason ticket { id } } }";
const CHECK_IN: &str = "mutation($e: ID!, $p: String!, $g: String!) { checkInTicket(eventId: $e, payload: $p, gate: $g) { verdict checkedInAt gate ticket { id status } } }";

/// The door of an event of one organizer: (app, event, organizer token, staff token).
struct Door {
    event_id: Uuid,
    tier: Uuid,
    organizer: String,
    organizer_id: Uuid,
    staff: String,
}

async fn door(app: &TestApp, title: &str) -> Door {
    let organizer = app.organizer().await;
    door_for(app, title, organizer.user_id, organizer.access_token).await
}

async fn door_for(app: &TestApp, title: &str, organizer_id: Uuid, organizer: String) -> Door {
    let event = create_event_shaped(app, title, 5, Shape::default()).await;
    hand_over(app, event.event_id, organizer_id).await;
    Door {
        event_id: event.event_id,
        tier: tiers(app, event.event_id).await.standing,
        staff: app.staff_of(organizer_id).await,
        organizer,
        organizer_id,
    }
}

/// Books `n` tickets; returns the order.
async fn book(app: &TestApp, buyer: &str, tier: Uuid, n: i32) -> Value {
    app.data_as(
        buyer,
        BOOK,
        json!({ "input": { "tierId": tier, "quantity": n, "paymentToken": "tok_visa", "idempotencyKey": Uuid::new_v4().to_string() } }),
    )
    .await["bookTickets"]
        .clone()
}

async fn check_in(
    app: &TestApp,
    token: &str,
    event_id: Uuid,
    payload: &Value,
    gate: &str,
) -> Value {
    app.data_as(
        token,
        CHECK_IN,
        json!({ "e": event_id, "p": payload, "g": gate }),
    )
    .await["checkInTicket"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_verifies_offline_and_admits_once_with_every_verdict() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Door").await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 2).await;
    let (first, second) = (&order["tickets"][0], &order["tickets"][1]);

    // The scanner fetches the public key once and checks codes with nothing else.
    let key = app
        .data_as(
            &door.staff,
            "query($e: ID!) { eventVerificationKey(eventId: $e) { algorithm publicKey } }",
            json!({ "e": door.event_id }),
        )
        .await;
    assert_eq!(key["eventVerificationKey"]["algorithm"], "Ed25519");
    let key = seatstorm::tickets::signing::decode_key(
        key["eventVerificationKey"]["publicKey"]
            .as_str()
            .expect("a key"),
    )
    .expect("a valid key");
    let claims =
        seatstorm::tickets::signing::verify(&key, first["qrPayload"].as_str().expect("payload"))
            .expect("a genuine code");
    assert_eq!(
        claims.ticket_id.to_string(),
        first["id"].as_str().expect("id")
    );

    let svg = app
        .data_as(
            &buyer,
            "query($id: ID!) { ticket(id: $id) { qrSvg } }",
            json!({ "id": first["id"] }),
        )
        .await;
    assert!(
        svg["ticket"]["qrSvg"]
            .as_str()
            .expect("svg")
            .contains("<svg")
    );

    let verified = app
        .data_as(
            &door.staff,
            VERIFY,
            json!({ "e": door.event_id, "p": first["qrPayload"] }),
        )
        .await;
    assert_eq!(verified["verifyTicket"]["verdict"], "VALID");
    let admitted = check_in(
        &app,
        &door.staff,
        door.event_id,
        &first["qrPayload"],
        "North",
    )
    .await;
    assert_eq!(admitted["verdict"], "ADMITTED");
    let again = check_in(
        &app,
        &door.organizer,
        door.event_id,
        &first["qrPayload"],
        "South",
    )
    .await;
    assert_eq!(again["verdict"], "ALREADY_CHECKED_IN");
    assert_eq!(again["gate"], "North");
    assert_eq!(again["checkedInAt"], admitted["checkedInAt"]);

    let mut tampered = first["qrPayload"].as_str().expect("payload").to_owned();
    let last = tampered.pop().expect("a character");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let forged = check_in(&app, &door.staff, door.event_id, &json!(tampered), "North").await;
    assert_eq!(forged["verdict"], "INVALID");

    // A genuine ticket of another event of the same organizer.
    let elsewhere = door_for(
        &app,
        "Other Door",
        door.organizer_id,
        door.organizer.clone(),
    )
    .await;
    let other = book(&app, &buyer, elsewhere.tier, 1).await;
    let wrong = check_in(
        &app,
        &door.staff,
        door.event_id,
        &other["tickets"][0]["qrPayload"],
        "North",
    )
    .await;
    assert_eq!(wrong["verdict"], "WRONG_EVENT");

    // A ticket reduced away never admits.
    app.data_as(
        &buyer,
        "mutation($o: ID!, $t: [ID!]!) { reduceOrder(orderId: $o, ticketIds: $t) { id } }",
        json!({ "o": order["id"], "t": [second["id"]] }),
    )
    .await;
    let cancelled = check_in(
        &app,
        &door.staff,
        door.event_id,
        &second["qrPayload"],
        "North",
    )
    .await;
    assert_eq!(cancelled["verdict"], "CANCELLED");

    // A mistaken scan is undone, and the ticket admits again.
    let undone = app
        .data_as(
            &door.staff,
            "mutation($t: ID!) { undoCheckIn(ticketId: $t) { checkedInAt } }",
            json!({ "t": first["id"] }),
        )
        .await;
    assert_eq!(undone["undoCheckIn"]["checkedInAt"], Value::Null);
    let twice = app
        .graphql_as(
            &door.staff,
            "mutation($t: ID!) { undoCheckIn(ticketId: $t) { id } }",
            json!({ "t": first["id"] }),
        )
        .await;
    assert_eq!(error_code(&twice), "CONFLICT");
    assert_eq!(
        check_in(
            &app,
            &door.staff,
            door.event_id,
            &first["qrPayload"],
            "East"
        )
        .await["verdict"],
        "ADMITTED"
    );

    let stats = app
        .data_as(
            &door.organizer,
            "query($e: ID!) { checkInStats(eventId: $e) { sold admitted gates { gate admitted } } }",
            json!({ "e": door.event_id }),
        )
        .await;
    assert_eq!(
        stats["checkInStats"],
        json!({ "sold": 1, "admitted": 1, "gates": [{ "gate": "East", "admitted": 1 }] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissued_order_voids_its_old_codes() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Reissue").await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 1).await;
    let old = order["tickets"][0]["qrPayload"].clone();
    app.data_as(
        &buyer,
        "mutation($o: ID!) { cancelOrder(orderId: $o) { id } }",
        json!({ "o": order["id"] }),
    )
    .await;
    let cancelled = check_in(&app, &door.staff, door.event_id, &old, "Main").await;
    assert_eq!(cancelled["verdict"], "CANCELLED");
    let restored = app
        .data_as(
            &buyer,
            "mutation($o: ID!) { undoCancellation(orderId: $o) { tickets { qrPayload } } }",
            json!({ "o": order["id"] }),
        )
        .await;
    let new = restored["undoCancellation"]["tickets"][0]["qrPayload"].clone();
    assert_ne!(new, old);
    assert_eq!(
        check_in(&app, &door.staff, door.event_id, &old, "Main").await["verdict"],
        "INVALID"
    );
    assert_eq!(
        check_in(&app, &door.staff, door.event_id, &new, "Main").await["verdict"],
        "ADMITTED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_scans_of_one_ticket_admit_it_once() {
    const SCANNERS: usize = 24;
    let app = TestApp::spawn().await;
    let door = door(&app, "Rush").await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 1).await;
    let payload = order["tickets"][0]["qrPayload"].clone();
    let scans = (0..SCANNERS).map(|i| {
        let (app, door, payload) = (&app, &door, &payload);
        async move {
            check_in(
                app,
                &door.staff,
                door.event_id,
                payload,
                &format!("Gate {}", i % 4),
            )
            .await
        }
    });
    let verdicts: Vec<Value> = futures::future::join_all(scans)
        .await
        .iter()
        .map(|check| check["verdict"].clone())
        .collect();
    assert_eq!(
        verdicts.iter().filter(|v| *v == "ADMITTED").count(),
        1,
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| *v == "ALREADY_CHECKED_IN")
            .count(),
        SCANNERS - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_batch_admits_in_scan_order_and_reports_the_duplicate() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Offline").await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 3).await;
    let code = |i: usize| order["tickets"][i]["qrPayload"].clone();
    let at =
        |minutes: i64| (Utc::now() - Duration::hours(1) + Duration::minutes(minutes)).to_rfc3339();
    let scans = json!([
        { "payload": code(0), "gate": "A", "scannedAt": at(1) },
        { "payload": code(1), "gate": "B", "scannedAt": at(2) },
        { "payload": code(0), "gate": "B", "scannedAt": at(3) },
        { "payload": code(2), "gate": "A", "scannedAt": at(0) },
        { "payload": "ST1.garbage.garbage", "gate": "A", "scannedAt": at(4) },
    ]);
    let results = app
        .data_as(
            &door.staff,
            "mutation($e: ID!, $s: [OfflineScanInput!]!) { checkInBatch(eventId: $e, scans: $s) {
                index conflict check { verdict gate checkedInAt } } }",
            json!({ "e": door.event_id, "s": scans }),
        )
        .await;
    let results = results["checkInBatch"].as_array().expect("results").clone();
    let verdicts: Vec<&str> = results
        .iter()
        .map(|r| r["check"]["verdict"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        verdicts,
        [
            "ADMITTED",
            "ADMITTED",
            "ALREADY_CHECKED_IN",
            "ADMITTED",
            "INVALID"
        ]
    );
    assert_eq!(
        results[2]["conflict"], true,
        "the same ticket at another gate"
    );
    assert_eq!(results[2]["check"]["gate"], "A");
    let admitted_at = chrono::DateTime::parse_from_rfc3339(
        results[0]["check"]["checkedInAt"].as_str().expect("time"),
    )
    .expect("a timestamp");
    let scanned_at = chrono::DateTime::parse_from_rfc3339(&at(1)).expect("a timestamp");
    assert!(
        (admitted_at - scanned_at).num_seconds().abs() <= 1,
        "admitted at the scan time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_events_own_organizer_and_staff_work_its_door() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Guarded").await;
    let rival = app.organizer().await;
    let rival_staff = app.staff_of(rival.user_id).await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 1).await;
    let payload = order["tickets"][0]["qrPayload"].clone();
    for (token, code) in [
        (rival_staff.as_str(), "FORBIDDEN"),
        (rival.access_token.as_str(), "FORBIDDEN"),
        (buyer.as_str(), "FORBIDDEN"),
    ] {
        let refused = app
            .graphql_as(
                token,
                CHECK_IN,
                json!({ "e": door.event_id, "p": payload, "g": "Main" }),
            )
            .await;
        assert_eq!(error_code(&refused), code);
    }
    let anonymous = app
        .graphql(
            CHECK_IN,
            json!({ "e": door.event_id, "p": payload, "g": "Main" }),
        )
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let no_gate = app
        .graphql_as(
            &door.staff,
            CHECK_IN,
            json!({ "e": door.event_id, "p": payload, "g": " " }),
        )
        .await;
    assert_eq!(error_code(&no_gate), "BAD_USER_INPUT");
    let someone_elses = app
        .graphql_as(
            &rival.access_token,
            "query($id: ID!) { ticket(id: $id) { id } }",
            json!({ "id": order["tickets"][0]["id"] }),
        )
        .await;
    assert_eq!(error_code(&someone_elses), "NOT_FOUND");
    // Nothing was admitted by the refused scans.
    assert_eq!(
        check_in(&app, &door.staff, door.event_id, &payload, "Main").await["verdict"],
        "ADMITTED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_dashboard_sees_check_ins_live() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Dashboard").await;
    let buyer = app.buyers(1).await.remove(0);
    let order = book(&app, &buyer, door.tier, 2).await;
    let mut socket = connect(
        &app,
        "graphql-transport-ws",
        json!({ "Authorization": format!("Bearer {}", door.staff) }),
    )
    .await;
    send(
        &mut socket,
        json!({ "id": "d", "type": "subscribe", "payload": {
            "query": "subscription($e: ID!) { checkInsChanged(eventId: $e) { sold admitted gates { gate admitted } } }",
            "variables": { "e": door.event_id } } }),
    )
    .await;
    // The current figures come first, so the subscription is live once they arrive.
    let current = next_for(&mut socket, "d").await;
    assert_eq!(current["payload"]["data"]["checkInsChanged"]["admitted"], 0);
    check_in(
        &app,
        &door.staff,
        door.event_id,
        &order["tickets"][0]["qrPayload"],
        "West",
    )
    .await;
    let pushed = next_for(&mut socket, "d").await;
    assert_eq!(
        pushed["payload"]["data"]["checkInsChanged"],
        json!({ "sold": 2, "admitted": 1, "gates": [{ "gate": "West", "admitted": 1 }] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizer_creates_staff_who_then_work_its_doors() {
    let app = TestApp::spawn().await;
    let door = door(&app, "Hiring").await;
    let email = format!("{}@door.test", Uuid::new_v4());
    let create =
        "mutation($input: StaffAccountInput!) { createStaffAccount(input: $input) { role email } }";
    let input =
        json!({ "input": { "email": email, "password": "scan-all-night", "name": "Night Shift" } });
    let created = app.data_as(&door.organizer, create, input.clone()).await;
    assert_eq!(created["createStaffAccount"]["role"], "STAFF");
    let taken = app.graphql_as(&door.organizer, create, input.clone()).await;
    assert_eq!(error_code(&taken), "CONFLICT");
    let customer = app.buyers(1).await.remove(0);
    let not_an_organizer = app.graphql_as(&customer, create, input).await;
    assert_eq!(error_code(&not_an_organizer), "FORBIDDEN");

    let staff = app.login(&email, "scan-all-night").await;
    let order = book(&app, &customer, door.tier, 1).await;
    let admitted = check_in(
        &app,
        &staff.access_token,
        door.event_id,
        &order["tickets"][0]["qrPayload"],
        "Side",
    )
    .await;
    assert_eq!(admitted["verdict"], "ADMITTED");
}
