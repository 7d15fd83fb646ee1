use crate::helpers::{Options, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(app.url("/health")).await.expect("request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_the_database_reachable() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(app.url("/ready")).await.expect("request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_with_503_once_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.state.db.clone().close().await.expect("the pool closes");
    let response = reqwest::get(app.url("/ready")).await.expect("request");
    assert_eq!(response.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_is_served_on_get_and_the_root_leads_there() {
    let app = TestApp::spawn().await;
    let page = reqwest::get(app.url("/graphql")).await.expect("request");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert!(html.to_lowercase().contains("graphiql"), "{html}");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = client.get(app.url("/")).send().await.expect("request");
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/graphql");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_bodies_are_refused_before_parsing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    // Announce a 4 MiB body and send only its start: the server must answer 413 from the headers alone
    // rather than read (or buffer) the body.
    let mut stream = tokio::net::TcpStream::connect(&app.address)
        .await
        .expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.address,
        4 * 1024 * 1024
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write headers");
    stream
        .write_all(b"{\"query\":\"")
        .await
        .expect("write a little body");
    let mut response = vec![0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read(&mut response),
    )
    .await
    .expect("an answer without the body")
    .expect("read");
    let status_line = String::from_utf8_lossy(&response[..read]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_is_seeded_with_the_demo() {
    let app = TestApp::spawn_with(Options {
        seed_demo: true,
        ..Options::default()
    })
    .await;
    let data = app
        .data(
            "{ venues(first: 10) { edges { node { name capacity sections { name kind } } } }
               events(first: 20) { edges { node { title category waitingRoomRequired tiers { kind } } } } }",
            serde_json::json!({}),
        )
        .await;
    let venues = data["venues"]["edges"].as_array().expect("venues");
    assert_eq!(venues.len(), 4);
    let largest = venues
        .iter()
        .map(|v| v["node"]["capacity"].as_i64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        largest >= 15_000,
        "an arena of at least 15,000 places, got {largest}"
    );

    let events = data["events"]["edges"].as_array().expect("events");
    assert_eq!(events.len(), 6);
    let categories: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["node"]["category"].as_str())
        .collect();
    assert!(
        categories.len() >= 5,
        "events across categories: {categories:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["node"]["waitingRoomRequired"] == true)
            .count(),
        1,
        "one high-demand event is flagged for the waiting room"
    );
    let kinds: Vec<&str> = events
        .iter()
        .flat_map(|e| e["node"]["tiers"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["kind"].as_str().map(str::to_owned))
        .map(|k| {
            if k == "RESERVED" {
                "RESERVED"
            } else {
                "GENERAL_ADMISSION"
            }
        })
        .collect();
    assert!(kinds.contains(&"RESERVED") && kinds.contains(&"GENERAL_ADMISSION"));

    // Seeding is once only: a restart on the same database keeps the data as it is.
    let seeded_again = seatstorm::demo::seed_if_empty(&app.state.db)
        .await
        .expect("seed check");
    assert!(!seeded_again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_responses_worth_compressing_are_gzipped() {
    let app = TestApp::spawn().await;
    // Sees the bytes on the wire: ticket-war, in the same workspace, turns on reqwest's gzip, which
    // would otherwise decode the answer and drop its Content-Encoding.
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("an HTTP client");
    let post = |query: &str| {
        client
            .post(app.url("/graphql"))
            .header("accept-encoding", "gzip")
            .json(&serde_json::json!({ "query": query }))
            .send()
    };

    let small = post("{ __typename }").await.expect("request");
    assert_eq!(small.status(), 200);
    assert_eq!(small.headers().get("content-encoding"), None);
    let body: serde_json::Value = small.json().await.expect("plain json");
    assert_eq!(body["data"]["__typename"], "QueryRoot");

    let large = post("{ __schema { types { name description fields { name description } } } }")
        .await
        .expect("request");
    assert_eq!(large.status(), 200);
    assert_eq!(
        large
            .headers()
            .get("content-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let bytes = large.bytes().await.expect("body");
    assert_eq!(bytes[..2], [0x1f, 0x8b], "a gzip stream");
}
