use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, create_draft_event, create_small_event};

fn titles(data: &Value) -> Vec<String> {
    data["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|edge| edge["node"]["title"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_by_start_time_and_page_with_cursors() {
    let app = TestApp::spawn().await;
    create_small_event(&app, "Third", 30).await;
    create_small_event(&app, "First", 10).await;
    create_small_event(&app, "Second", 20).await;

    let query = "query($after: String) { events(first: 2, after: $after) {
        edges { cursor node { title } } pageInfo { hasNextPage endCursor } } }";
    let page = app.data(query, json!({})).await;
    assert_eq!(titles(&page), ["First", "Second"]);
    assert_eq!(page["events"]["pageInfo"]["hasNextPage"], true);
    let end = page["events"]["pageInfo"]["endCursor"].clone();
    let next = app.data(query, json!({ "after": end })).await;
    assert_eq!(titles(&next), ["Third"]);
    assert_eq!(next["events"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_filter_by_text_category_date_and_venue() {
    let app = TestApp::spawn().await;
    let near = create_small_event(&app, "Jazz Night", 5).await;
    create_small_event(&app, "Rock 100% Loud", 40).await;

    let query =
        "query($filter: EventFilterInput) { events(filter: $filter) { edges { node { title } } } }";
    let by_text = app
        .data(query, json!({ "filter": { "search": "jAzZ" } }))
        .await;
    assert_eq!(titles(&by_text), ["Jazz Night"]);

    let by_performer = app
        .data(query, json!({ "filter": { "search": "loud band" } }))
        .await;
    assert_eq!(titles(&by_performer), ["Rock 100% Loud"]);

    // A literal percent sign matches itself, not "anything".
    let literal = app
        .data(query, json!({ "filter": { "search": "100%" } }))
        .await;
    assert_eq!(titles(&literal), ["Rock 100% Loud"]);
    let no_wildcard = app
        .data(query, json!({ "filter": { "search": "%" } }))
        .await;
    assert_eq!(titles(&no_wildcard), ["Rock 100% Loud"]);

    let by_category = app
        .data(query, json!({ "filter": { "category": "COMEDY" } }))
        .await;
    assert!(titles(&by_category).is_empty());

    let soon = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let by_date = app
        .data(query, json!({ "filter": { "startsBefore": soon } }))
        .await;
    assert_eq!(titles(&by_date), ["Jazz Night"]);

    let by_venue = app
        .data(query, json!({ "filter": { "venueId": near.venue_id } }))
        .await;
    assert_eq!(titles(&by_venue), ["Jazz Night"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_invisible_to_the_public() {
    let app = TestApp::spawn().await;
    let draft_id = create_draft_event(&app).await;
    let list = app
        .data(
            "{ events(filter: { statuses: [DRAFT, ON_SALE] }) { edges { node { title } } } }",
            json!({}),
        )
        .await;
    assert!(!titles(&list).contains(&"Secret Draft".to_owned()));
    let body = app
        .graphql(
            "query($id: ID!) { event(id: $id) { title } }",
            json!({ "id": draft_id }),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_shows_its_tiers_and_live_availability() {
    let app = TestApp::spawn().await;
    let small = create_small_event(&app, "Detail", 3).await;
    let data = app
        .data(
            "query($id: ID!) { event(id: $id) {
                title status capacity available soldOut venue { name }
                tiers { name kind priceCents currency capacity available soldOut }
                sectionAvailability { available held sold } } }",
            json!({ "id": small.event_id }),
        )
        .await;
    let event = &data["event"];
    assert_eq!(event["status"], "ON_SALE");
    assert_eq!(event["capacity"], 112);
    assert_eq!(event["available"], 112);
    assert_eq!(event["soldOut"], false);
    assert_eq!(event["venue"]["name"], "Detail Hall");
    assert_eq!(
        event["tiers"],
        json!([
            { "name": "Stalls", "kind": "RESERVED", "priceCents": 5000, "currency": "USD",
              "capacity": 12, "available": 12, "soldOut": false },
            { "name": "Standing", "kind": "GENERAL_ADMISSION", "priceCents": 2500, "currency": "USD",
              "capacity": 100, "available": 100, "soldOut": false },
        ])
    );
    assert_eq!(
        event["sectionAvailability"],
        json!([{ "available": 12, "held": 0, "sold": 0 }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_map_has_every_seat_with_position_and_status() {
    let app = TestApp::spawn().await;
    let small = create_small_event(&app, "Map", 3).await;
    let data = app
        .data(
            "query($id: ID!) { seatMap(eventId: $id) { eventId sections {
                section { name kind } available seats { id row number x y status } } } }",
            json!({ "id": small.event_id }),
        )
        .await;
    let sections = data["seatMap"]["sections"].as_array().expect("sections");
    assert_eq!(sections.len(), 2);
    let stalls = &sections[0];
    assert_eq!(stalls["section"]["name"], "Stalls");
    let seats = stalls["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 12);
    assert!(seats.iter().all(|s| s["status"] == "AVAILABLE"));
    let labels: std::collections::BTreeSet<String> = seats
        .iter()
        .map(|s| format!("{}{}", s["row"].as_str().unwrap_or("?"), s["number"]))
        .collect();
    assert_eq!(labels.len(), 12, "no seat appears twice");
    assert_eq!(seats[0]["row"], "A");
    assert_eq!(seats[0]["number"], 1);

    let standing = &sections[1];
    assert_eq!(standing["section"]["kind"], "GENERAL_ADMISSION");
    assert_eq!(standing["available"], 100);
    assert_eq!(standing["seats"], json!([]));
}

/// Nested events -> venue/tiers/sections: the statements issued must not grow with the page size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_event_queries_issue_a_bounded_number_of_statements() {
    // The sweeper shares the statement counter: its first pass is an hour away.
    let app = TestApp::spawn_with(Options {
        sweep_interval_ms: Some(3_600_000),
        ..Options::default()
    })
    .await;
    for n in 0..12 {
        create_small_event(&app, &format!("Show {n:02}"), 3 + n).await;
    }
    let query = "query($first: Int) { events(first: $first) { edges { node {
        title available tiers { name available } sectionAvailability { available }
        venue { name capacity sections { name } } } } } }";

    let count = |first: i64| {
        let app = &app;
        async move {
            let before = app.statements();
            let data = app.data(query, json!({ "first": first })).await;
            let after = app.statements();
            assert_eq!(
                data["events"]["edges"].as_array().map(Vec::len),
                Some(first as usize)
            );
            after - before
        }
    };
    // A loader split is timing (its batching delay on a loaded machine), an N+1 is not: the fewest
    // statements of three tries.
    let (mut small_page, mut large_page) = (u64::MAX, u64::MAX);
    for _ in 0..3 {
        small_page = small_page.min(count(2).await);
        large_page = large_page.min(count(12).await);
    }
    // One list query plus one batch per loader (tiers, section availability, venues, sections). A
    // loader may split a page over two batches when resolution straddles its batching delay, so the
    // bound allows that; an N+1 would cost four statements per event, 48 for this page.
    let bound = 1 + 4 * 2;
    assert!(
        small_page <= bound && large_page <= bound,
        "statements must not grow with the page size: {small_page} for 2 events, {large_page} for 12"
    );
}
