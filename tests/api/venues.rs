use serde_json::json;

use crate::helpers::{TestApp, create_small_event, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_shows_its_sections_and_capacity() {
    let app = TestApp::spawn().await;
    let small = create_small_event(&app, "Venue Test", 3).await;
    let data = app
        .data(
            "query($id: ID!) { venue(id: $id) { name city capacity sections { name kind capacity } } }",
            json!({ "id": small.venue_id }),
        )
        .await;
    let venue = &data["venue"];
    assert_eq!(venue["name"], "Venue Test Hall");
    assert_eq!(venue["capacity"], 112);
    assert_eq!(
        venue["sections"],
        json!([
            { "name": "Stalls", "kind": "RESERVED", "capacity": 12 },
            { "name": "Standing", "kind": "GENERAL_ADMISSION", "capacity": 100 },
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn venues_page_through_by_name() {
    let app = TestApp::spawn().await;
    for title in ["Alpha", "Bravo", "Charlie"] {
        create_small_event(&app, title, 3).await;
    }
    let query = "query($after: String) { venues(first: 2, after: $after) {
        edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage } } }";
    let first = app.data(query, json!({})).await;
    let names: Vec<&str> = first["venues"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["name"].as_str())
        .collect();
    assert_eq!(names, ["Alpha Hall", "Bravo Hall"]);
    assert_eq!(first["venues"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["venues"]["edges"][1]["cursor"].clone();
    let second = app.data(query, json!({ "after": cursor })).await;
    assert_eq!(second["venues"]["edges"][0]["node"]["name"], "Charlie Hall");
    assert_eq!(second["venues"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(second["venues"]["pageInfo"]["hasPreviousPage"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_venue_is_not_found() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql(
            "query($id: ID!) { venue(id: $id) { name } }",
            json!({ "id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}
