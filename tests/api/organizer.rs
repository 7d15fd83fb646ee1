//! Organizer management: venues, events, tiers, publishing, cancelling, deleting; roles and ownership.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, error_code};

const CREATE_VENUE: &str = "mutation($input: CreateVenueInput!) { createVenue(input: $input) {
    id name capacity sections { id name kind capacity } } }";
const CREATE_EVENT: &str = "mutation($input: CreateEventInput!) { createEvent(input: $input) {
    id status tiers { id name kind capacity available } } }";

fn venue_input(name: &str) -> Value {
    json!({
        "name": name, "city": "Lyon", "address": "1 Quai", "timezone": "Europe/Paris",
        "sections": [
            { "name": "Stalls", "kind": "RESERVED", "grid": { "rows": 4, "seatsPerRow": 5 } },
            { "name": "Box", "kind": "RESERVED", "x": 20.0, "seats": [
                { "row": "1", "number": 1, "x": 20.0, "y": 0.0, "accessible": true },
                { "row": "1", "number": 2, "x": 21.0, "y": 0.0 },
                { "row": "2", "number": 1, "x": 20.0, "y": 1.0 }
            ] },
            { "name": "Pit", "kind": "GENERAL_ADMISSION", "standingCapacity": 50 }
        ]
    })
}

struct Setup {
    organizer: Session,
    venue_id: String,
    sections: Value,
}

async fn organizer_with_venue(app: &TestApp) -> Setup {
    let organizer = app.organizer().await;
    let data = app
        .data_as(
            &organizer.access_token,
            CREATE_VENUE,
            json!({ "input": venue_input("Théâtre Test") }),
        )
        .await;
    Setup {
        organizer,
        venue_id: data["createVenue"]["id"].as_str().expect("id").to_owned(),
        sections: data["createVenue"]["sections"].clone(),
    }
}

fn section_id(sections: &Value, name: &str) -> String {
    sections
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["id"].as_str())
        .expect("section exists")
        .to_owned()
}

fn event_input(setup: &Setup) -> Value {
    let starts = chrono::Utc::now() + chrono::Duration::days(20);
    json!({
        "venueId": setup.venue_id, "title": "Opening Night", "performer": "The Testers",
        "category": "THEATRE", "startsAt": starts.to_rfc3339(),
        "endsAt": (starts + chrono::Duration::hours(3)).to_rfc3339(),
        "saleStartsAt": chrono::Utc::now().to_rfc3339(),
        "tiers": [
            { "name": "Reserved", "kind": "RESERVED", "priceCents": 4200,
              "sectionIds": [section_id(&setup.sections, "Stalls"), section_id(&setup.sections, "Box")] },
            { "name": "Pit", "kind": "GENERAL_ADMISSION", "priceCents": 1500, "capacity": 50,
              "sectionIds": [section_id(&setup.sections, "Pit")] }
        ]
    })
}

async fn create_event(app: &TestApp, setup: &Setup) -> String {
    let data = app
        .data_as(
            &setup.organizer.access_token,
            CREATE_EVENT,
            json!({ "input": event_input(setup) }),
        )
        .await;
    data["createEvent"]["id"].as_str().expect("id").to_owned()
}

async fn publish(app: &TestApp, token: &str, id: &str) -> Value {
    app.graphql_as(
        token,
        "mutation($id: ID!) { publishEvent(id: $id) { status tiers { name capacity available } } }",
        json!({ "id": id }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizer_builds_a_venue_and_puts_an_event_on_sale() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let event_id = create_event(&app, &setup).await;

    // A draft: the public cannot see it, its organizer can.
    let public = app
        .graphql(
            "query($id: ID!) { event(id: $id) { title } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(error_code(&public), "NOT_FOUND");
    let mine = app
        .data_as(
            &setup.organizer.access_token,
            "{ myEvents { edges { node { id status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["myEvents"]["edges"][0]["node"]["status"], "DRAFT");

    let published = publish(&app, &setup.organizer.access_token, &event_id).await;
    assert!(published.get("errors").is_none(), "{published}");
    assert_eq!(published["data"]["publishEvent"]["status"], "ON_SALE");
    assert_eq!(
        published["data"]["publishEvent"]["tiers"],
        json!([
            { "name": "Reserved", "capacity": 23, "available": 23 },
            { "name": "Pit", "capacity": 50, "available": 50 }
        ]),
        "publishing creates one inventory row per seat"
    );
    let map = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { sections { section { name } seats { row number accessible } } } }",
            json!({ "id": event_id }),
        )
        .await;
    let seats: usize = map["seatMap"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["seats"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(seats, 23);
    let republish = publish(&app, &setup.organizer.access_token, &event_id).await;
    assert_eq!(error_code(&republish), "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_and_anonymous_callers_cannot_manage_events() {
    let app = TestApp::spawn().await;
    let customer = app.customer().await;
    let forbidden = app
        .graphql_as(
            &customer.access_token,
            CREATE_VENUE,
            json!({ "input": venue_input("Nope") }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let anonymous = app
        .graphql(CREATE_VENUE, json!({ "input": venue_input("Nope") }))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let my_events = app
        .graphql_as(
            &customer.access_token,
            "{ myEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&my_events), "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizer_cannot_touch_another_organizers_event() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let event_id = create_event(&app, &setup).await;
    let rival = app.organizer().await;
    let attempts = [
        (
            "mutation($id: ID!) { updateEvent(id: $id, input: { title: \"Mine now\" }) { id } }",
            json!({ "id": event_id }),
        ),
        (
            "mutation($id: ID!) { publishEvent(id: $id) { id } }",
            json!({ "id": event_id }),
        ),
        (
            "mutation($id: ID!) { cancelEvent(id: $id) { id } }",
            json!({ "id": event_id }),
        ),
        (
            "mutation($id: ID!) { deleteEvent(id: $id) }",
            json!({ "id": event_id }),
        ),
        (
            "mutation($id: ID!) { createTicketTier(eventId: $id, input: { name: \"X\", kind: GENERAL_ADMISSION, priceCents: 1, capacity: 1 }) { id } }",
            json!({ "id": event_id }),
        ),
    ];
    for (query, variables) in attempts {
        let body = app.graphql_as(&rival.access_token, query, variables).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}");
    }
    // A rival cannot even see the draft.
    let peek = app
        .graphql_as(
            &rival.access_token,
            "query($id: ID!) { event(id: $id) { title } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(error_code(&peek), "NOT_FOUND");
    // And an admin can manage it.
    let admin = app.admin().await;
    let renamed = app
        .data_as(
            &admin.access_token,
            "mutation($id: ID!) { updateEvent(id: $id, input: { title: \"Admin edit\" }) { title } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(renamed["updateEvent"]["title"], "Admin edit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_venues_and_events_are_bad_user_input_and_write_nothing() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let token = &setup.organizer.access_token;
    let mut duplicate_seat = venue_input("Broken");
    duplicate_seat["sections"][1]["seats"][1]["number"] = json!(1);
    let mut both_layouts = venue_input("Broken");
    both_layouts["sections"][0]["seats"] = json!([{ "row": "A", "number": 1, "x": 0.0, "y": 0.0 }]);
    let mut huge_grid = venue_input("Broken");
    huge_grid["sections"][0]["grid"] = json!({ "rows": 1000, "seatsPerRow": 1000 });
    for input in [duplicate_seat, both_layouts, huge_grid] {
        let body = app
            .graphql_as(token, CREATE_VENUE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
    let venues = app.data_as(token, "{ myVenues { name } }", json!({})).await;
    assert_eq!(
        venues["myVenues"].as_array().map(Vec::len),
        Some(1),
        "no half-written venue"
    );

    let mut ends_before_start = event_input(&setup);
    ends_before_start["endsAt"] = json!("2000-01-01T00:00:00Z");
    let mut foreign_section = event_input(&setup);
    foreign_section["tiers"][0]["sectionIds"] = json!([Uuid::now_v7()]);
    let mut wrong_kind = event_input(&setup);
    wrong_kind["tiers"][1]["sectionIds"] = json!([section_id(&setup.sections, "Stalls")]);
    let mut negative_price = event_input(&setup);
    negative_price["tiers"][0]["priceCents"] = json!(-1);
    for input in [
        ends_before_start,
        foreign_section,
        wrong_kind,
        negative_price,
    ] {
        let body = app
            .graphql_as(token, CREATE_EVENT, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    let events = app
        .data_as(token, "{ myEvents { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(
        events["myEvents"]["edges"],
        json!([]),
        "no half-written event"
    );
}

/// Marks `count` GA tickets of a tier as taken, standing in for holds and sales until booking lands.
async fn take_stock(app: &TestApp, tier_id: &str, count: i32) {
    use sea_orm::{
        ColumnTrait, EntityTrait, QueryFilter,
        sea_query::{Expr, ExprTrait},
    };
    let tier_id = Uuid::parse_str(tier_id).expect("uuid");
    entity::prelude::TicketTier::update_many()
        .col_expr(
            entity::ticket_tier::Column::Available,
            Expr::col(entity::ticket_tier::Column::Available).sub(count),
        )
        .filter(entity::ticket_tier::Column::Id.eq(tier_id))
        .exec(&app.state.db)
        .await
        .expect("stock taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_capacity_can_grow_but_never_drop_below_what_is_taken() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let event_id = create_event(&app, &setup).await;
    let token = &setup.organizer.access_token;
    let published = publish(&app, token, &event_id).await;
    assert!(published.get("errors").is_none());
    let event = app
        .data(
            "query($id: ID!) { event(id: $id) { tiers { id name } } }",
            json!({ "id": event_id }),
        )
        .await;
    let pit = event["event"]["tiers"][1]["id"]
        .as_str()
        .expect("pit tier")
        .to_owned();
    take_stock(&app, &pit, 30).await;

    let update = "mutation($id: ID!, $capacity: Int) { updateTicketTier(id: $id, input: { capacity: $capacity }) { capacity available } }";
    let shrunk = app
        .data_as(token, update, json!({ "id": pit, "capacity": 40 }))
        .await;
    assert_eq!(
        shrunk["updateTicketTier"],
        json!({ "capacity": 40, "available": 10 })
    );
    let too_small = app
        .graphql_as(token, update, json!({ "id": pit, "capacity": 29 }))
        .await;
    assert_eq!(error_code(&too_small), "CONFLICT");
    let grown = app
        .data_as(token, update, json!({ "id": pit, "capacity": 45 }))
        .await;
    assert_eq!(
        grown["updateTicketTier"],
        json!({ "capacity": 45, "available": 15 })
    );

    let reserved = event["event"]["tiers"][0]["id"]
        .as_str()
        .expect("reserved tier");
    let reserved_resize = app
        .graphql_as(token, update, json!({ "id": reserved, "capacity": 5 }))
        .await;
    assert_eq!(error_code(&reserved_resize), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_added_to_a_published_event_goes_on_sale_at_once() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let token = &setup.organizer.access_token;
    let mut input = event_input(&setup);
    input["tiers"] = json!([input["tiers"][1].clone()]);
    let event_id = app
        .data_as(token, CREATE_EVENT, json!({ "input": input }))
        .await["createEvent"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        publish(&app, token, &event_id)
            .await
            .get("errors")
            .is_none()
    );
    let created = app
        .data_as(
            token,
            "mutation($id: ID!, $input: TicketTierInput!) { createTicketTier(eventId: $id, input: $input) { name capacity available } }",
            json!({ "id": event_id, "input": { "name": "Stalls", "kind": "RESERVED", "priceCents": 3000,
                                               "sectionIds": [section_id(&setup.sections, "Stalls")] } }),
        )
        .await;
    assert_eq!(
        created["createTicketTier"],
        json!({ "name": "Stalls", "capacity": 20, "available": 20 })
    );
    let again = app
        .graphql_as(
            token,
            "mutation($id: ID!, $input: TicketTierInput!) { createTicketTier(eventId: $id, input: $input) { name } }",
            json!({ "id": event_id, "input": { "name": "Stalls again", "kind": "RESERVED", "priceCents": 3000,
                                               "sectionIds": [section_id(&setup.sections, "Stalls")] } }),
        )
        .await;
    assert_eq!(
        error_code(&again),
        "BAD_USER_INPUT",
        "a section is sold by one tier only"
    );
}

/// Arranges a paid order for `buyer` directly in the database (booking lands in a later issue).
async fn insert_paid_order(app: &TestApp, event_id: &str, buyer: Uuid) -> Uuid {
    use sea_orm::{ActiveModelTrait, Set};
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    entity::order::ActiveModel {
        id: Set(id),
        user_id: Set(buyer),
        event_id: Set(Uuid::parse_str(event_id).expect("uuid")),
        hold_id: Set(None),
        status: Set(entity::enums::OrderStatus::Paid),
        total_cents: Set(3000),
        refunded_cents: Set(0),
        currency: Set("USD".into()),
        payment_reference: Set(Some("sim_ch_test".into())),
        created_at: Set(now),
        updated_at: Set(now),
        cancelled_at: Set(None),
    }
    .insert(&app.state.db)
    .await
    .expect("order inserted");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_event_cancels_and_refunds_orders_and_notifies_buyers() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let event_id = create_event(&app, &setup).await;
    let token = &setup.organizer.access_token;
    assert!(
        publish(&app, token, &event_id)
            .await
            .get("errors")
            .is_none()
    );
    let buyer = app.customer().await;
    let order_id = insert_paid_order(&app, &event_id, buyer.user_id).await;

    let delete = app
        .graphql_as(
            token,
            "mutation($id: ID!) { deleteEvent(id: $id) }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(
        error_code(&delete),
        "CONFLICT",
        "sold events are cancelled, not deleted"
    );

    let cancelled = app
        .data_as(
            token,
            "mutation($id: ID!) { cancelEvent(id: $id, reason: \"the lead is ill\") { status } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(cancelled["cancelEvent"]["status"], "CANCELLED");

    let order = entity::prelude::Order::find_by_id(order_id)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("order");
    assert_eq!(order.status, entity::enums::OrderStatus::Cancelled);
    assert_eq!(order.refunded_cents, order.total_cents, "refunded in full");
    let notes = entity::prelude::Notification::find()
        .filter(entity::notification::Column::UserId.eq(buyer.user_id))
        .all(&app.state.db)
        .await
        .expect("query");
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("the lead is ill"));

    let again = app
        .graphql_as(
            token,
            "mutation($id: ID!) { cancelEvent(id: $id) { status } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(error_code(&again), "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsold_event_can_be_deleted() {
    let app = TestApp::spawn().await;
    let setup = organizer_with_venue(&app).await;
    let event_id = create_event(&app, &setup).await;
    let token = &setup.organizer.access_token;
    assert!(
        publish(&app, token, &event_id)
            .await
            .get("errors")
            .is_none()
    );
    let deleted = app
        .data_as(
            token,
            "mutation($id: ID!) { deleteEvent(id: $id) }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(deleted["deleteEvent"], true);
    let gone = app
        .graphql(
            "query($id: ID!) { event(id: $id) { id } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(error_code(&gone), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_change_roles() {
    let app = TestApp::spawn().await;
    let customer = app.customer().await;
    let query = "mutation($id: ID!) { setUserRole(userId: $id, role: STAFF) { role } }";
    let refused = app
        .graphql_as(
            &customer.access_token,
            query,
            json!({ "id": customer.user_id }),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let admin = app.admin().await;
    let changed = app
        .data_as(
            &admin.access_token,
            query,
            json!({ "id": customer.user_id }),
        )
        .await;
    assert_eq!(changed["setUserRole"]["role"], "STAFF");
}
