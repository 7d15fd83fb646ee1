//! ticket-war end to end: the binary against the real app (SQLite, or PostgreSQL + Redis with the
//! suite's TEST_* variables), small storms that must sell out with the books balanced. Speed is not
//! asserted here; that the tool sets up, storms, follows and audits is.

#[path = "../../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::{Options, PASSWORD, TestApp};
use serde_json::Value;

async fn storm(app: &TestApp, args: &[&str]) -> Value {
    let organizer = app.organizer().await;
    let url = app.url("");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ticket-war"))
        .args(["--url", &url, "--json", "--duration", "60"])
        .args(["--organizer-email", &organizer.email])
        .args(["--organizer-password", PASSWORD])
        .args(["--database-url", &app.state.config.database_url])
        .args(args)
        .output()
        .await
        .expect("ticket-war runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ticket-war failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("a JSON report")
}

fn app_options() -> Options {
    Options {
        mutations_per_minute: Some(1_000_000),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_general_admission_storm_sells_out_and_the_books_balance() {
    let app = TestApp::spawn_with(app_options()).await;
    let report = storm(
        &app,
        &["--mode", "ga", "--tickets", "60", "--concurrency", "8"],
    )
    .await;
    assert_eq!(report["tickets"], 60, "{report}");
    assert_eq!(report["outcomes"]["CONFIRMED"], 60, "{report}");
    assert_eq!(
        report["audit"]["violations"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["audit"]["database_checked"], true, "{report}");
    assert_eq!(report["audit"]["sold_per_api"], 60, "{report}");
    assert!(report["sell_out_s"].is_number(), "{report}");
    let timeline = report["timeline"].as_array().expect("a timeline");
    let attempts: u64 = timeline.iter().filter_map(|s| s["attempts"].as_u64()).sum();
    assert_eq!(Some(attempts), report["attempts"].as_u64(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_available_storm_with_subscribers_holds_no_seat_twice() {
    let app = TestApp::spawn_with(app_options()).await;
    let report = storm(
        &app,
        &[
            "--mode",
            "best-available",
            "--rows",
            "4",
            "--seats-per-row",
            "10",
            "--concurrency",
            "6",
            "--subscribers",
            "3",
        ],
    )
    .await;
    assert_eq!(
        report["audit"]["violations"],
        serde_json::json!([]),
        "{report}"
    );
    // Adjacent groups: the storm stops at the first group no row can seat, so not every seat sells.
    let sold = report["audit"]["sold_per_api"]
        .as_u64()
        .expect("seats sold");
    let available = report["audit"]["available_per_api"]
        .as_u64()
        .expect("seats left");
    assert!(sold > 0, "{report}");
    assert_eq!(sold + available, 40, "{report}");
    assert_eq!(report["tickets"].as_u64(), Some(sold), "{report}");
    let subscribers = &report["subscribers"];
    assert_eq!(subscribers["connected"], 3, "{report}");
    assert_eq!(subscribers["refused"], 0, "{report}");
    assert!(subscribers["messages"].as_u64() > Some(0), "{report}");
    assert!(subscribers["delivery"]["p99_ms"].is_number(), "{report}");
}
