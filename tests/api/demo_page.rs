use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::helpers::TestApp;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    let response = reqwest::get(app.url(path)).await.expect("request");
    assert_eq!(response.status(), 200, "GET {path}");
    response
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_is_served_as_html_that_loads_its_bundle() {
    let app = TestApp::spawn().await;
    for path in ["/demo", "/demo/"] {
        let page = get(&app, path).await;
        assert!(content_type(&page).starts_with("text/html"), "{path}");
        assert!(page.headers().contains_key(CONTENT_SECURITY_POLICY));
        let html = page.text().await.expect("text");
        assert!(html.contains(r#"src="/demo/demo.js""#), "{html}");
        assert!(html.contains(r#"href="/demo/demo.css""#), "{html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_bundle_and_stylesheet_are_served_with_their_content_types() {
    let app = TestApp::spawn().await;

    let script = get(&app, "/demo/demo.js").await;
    assert!(content_type(&script).starts_with("text/javascript"));
    let body = script.text().await.expect("text");
    // The bundle carries graphql-ws and speaks its protocol to /graphql.
    assert!(
        body.contains("graphql-transport-ws"),
        "not the built bundle"
    );
    assert!(body.contains("seatMapChanged"));

    let style = get(&app, "/demo/demo.css").await;
    assert!(content_type(&style).starts_with("text/css"));
    assert!(!style.text().await.expect("text").is_empty());
}
