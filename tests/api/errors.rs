//! Every error code that the read API can produce reaches the client as `extensions.code`.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_id_is_bad_user_input() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql("{ event(id: \"not-a-uuid\") { title } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["data"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_cursor_is_bad_user_input() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql(
            "{ events(after: \"definitely-not-a-cursor\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_size_out_of_bounds_is_bad_user_input() {
    let app = TestApp::spawn().await;
    for first in [0, -1, 101] {
        let body = app
            .graphql(
                "query($first: Int) { events(first: $first) { edges { cursor } } }",
                json!({ "first": first }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "first = {first}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inverted_date_range_is_bad_user_input() {
    let app = TestApp::spawn().await;
    let body = app
        .graphql(
            "query($f: EventFilterInput) { events(filter: $f) { edges { cursor } } }",
            json!({ "f": { "startsAfter": "2030-01-02T00:00:00Z", "startsBefore": "2030-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_event_and_its_seat_map_are_not_found() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7();
    let event = app
        .graphql(
            "query($id: ID!) { event(id: $id) { title } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&event), "NOT_FOUND");
    let map = app
        .graphql(
            "query($id: ID!) { seatMap(eventId: $id) { eventId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&map), "NOT_FOUND");
}

/// PostgreSQL text cannot hold NUL: a string with one, in the variables or in the document, is refused
/// before any resolver runs, never left to fail as a database error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_any_string_is_bad_user_input_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let input = |name: &str| json!({ "input": { "email": "nul@example.test", "password": PASSWORD, "name": name } });
    let refused = app.graphql(register, input("Nul\u{0}Name")).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    let in_the_document = app
        .graphql(
            r#"{ events(filter: { search: "a\u0000b" }) { edges { cursor } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&in_the_document),
        "BAD_USER_INPUT",
        "{in_the_document}"
    );
    let nested = app
        .graphql(
            "query($f: EventFilterInput) { events(filter: $f) { edges { cursor } } }",
            json!({ "f": { "search": "a\u{0}b" } }),
        )
        .await;
    assert_eq!(error_code(&nested), "BAD_USER_INPUT", "{nested}");
    // Other control characters are ordinary text.
    let newline = app
        .graphql(
            "query($f: EventFilterInput) { events(filter: $f) { edges { cursor } } }",
            json!({ "f": { "search": "a\nb" } }),
        )
        .await;
    assert!(newline.get("errors").is_none(), "{newline}");
    // Nothing of the refused registration was written: the email is still free.
    let registered = app.graphql(register, input("Nul Name")).await;
    assert!(registered.get("errors").is_none(), "{registered}");
}
