//! Guardrails: query depth and complexity, parse and validation codes, mutation rate limit,
//! introspection switch, CORS.

use seatstorm::config::CorsOrigins;
use serde_json::json;

use crate::helpers::{Options, TestApp, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_deep_queries_are_refused_with_a_clear_code() {
    let app = TestApp::spawn_with(Options {
        max_query_depth: Some(4),
        ..Options::default()
    })
    .await;
    let shallow = app
        .graphql("{ venues { edges { cursor } } }", json!({}))
        .await;
    assert!(shallow.get("errors").is_none(), "{shallow}");
    let deep = app
        .graphql(
            "{ events { edges { node { venue { sections { name } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&deep), "QUERY_TOO_DEEP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_complex_queries_are_refused_with_a_clear_code() {
    let app = TestApp::spawn_with(Options {
        max_query_complexity: Some(10),
        ..Options::default()
    })
    .await;
    let complex = app
        .graphql(
            "{ events { edges { node { id title performer category description startsAt endsAt status
                venue { id name city address timezone } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&complex), "QUERY_TOO_COMPLEX");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_documents_have_codes() {
    let app = TestApp::spawn().await;
    let unparsable = app.graphql("{ events { ", json!({})).await;
    assert_eq!(error_code(&unparsable), "GRAPHQL_PARSE_FAILED");
    let unknown_field = app
        .graphql("{ events { edges { node { price } } } }", json!({}))
        .await;
    assert_eq!(error_code(&unknown_field), "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(Options {
        mutations_per_minute: Some(3),
        ..Options::default()
    })
    .await;
    let session = app.customer().await;
    let rename = "mutation { updateProfile(input: { name: \"Again\" }) { name } }";
    for _ in 0..3 {
        app.data_as(&session.access_token, rename, json!({})).await;
    }
    let limited = app
        .graphql_as(&session.access_token, rename, json!({}))
        .await;
    assert_eq!(error_code(&limited), "TOO_MANY_REQUESTS");
    // Queries are not mutations, and other users have their own budget.
    app.data_as(&session.access_token, "{ me { name } }", json!({}))
        .await;
    let other = app.customer().await;
    app.data_as(&other.access_token, rename, json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_can_be_switched_off() {
    let app = TestApp::spawn_with(Options {
        introspection: Some(false),
        ..Options::default()
    })
    .await;
    let body = app
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(body["data"]["__schema"], serde_json::Value::Null, "{body}");
    let on = TestApp::spawn().await;
    let allowed = on
        .data("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(allowed["__schema"]["queryType"]["name"], "QueryRoot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(Options {
        cors_origins: Some(CorsOrigins::List(vec!["https://tickets.example".into()])),
        ..Options::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://tickets.example").await.expect("request");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://tickets.example"
    );
    let refused = preflight("https://evil.example").await.expect("request");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
