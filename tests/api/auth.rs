//! Accounts: register, login, refresh rotation with reuse detection, logout, tokens, profile, avatars.

use chrono::{Duration, Utc};
use seatstorm::auth::tokens::TokenKeys;
use seatstorm::config::Secret;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code};

const ME: &str = "{ me { id email name role avatarUrl } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_and_logout_round_trip() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;

    let me = app.data_as(&session.access_token, ME, json!({})).await;
    assert_eq!(me["me"]["email"], session.email);
    assert_eq!(me["me"]["role"], "CUSTOMER");

    let login = app.login(&session.email.to_uppercase(), PASSWORD).await;
    assert_eq!(
        login.user_id, session.user_id,
        "emails are matched case-insensitively"
    );

    let refreshed = app.data(REFRESH, json!({ "t": login.refresh_token })).await;
    let access = refreshed["refreshToken"]["accessToken"]
        .as_str()
        .expect("token");
    let next_refresh = refreshed["refreshToken"]["refreshToken"]
        .as_str()
        .expect("token");
    assert_ne!(next_refresh, login.refresh_token, "refresh tokens rotate");
    let me_again = app.data_as(access, ME, json!({})).await;
    assert_eq!(me_again["me"]["id"], session.user_id.to_string());

    let logout = app
        .data(
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": next_refresh }),
        )
        .await;
    assert_eq!(logout["logout"], true);
    let after_logout = app.graphql(REFRESH, json!({ "t": next_refresh })).await;
    assert_eq!(error_code(&after_logout), "UNAUTHENTICATED");
    // Other sessions of the same account are untouched.
    let other = app
        .graphql(REFRESH, json!({ "t": session.refresh_token }))
        .await;
    assert!(other.get("errors").is_none(), "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let first = app
        .data(REFRESH, json!({ "t": session.refresh_token }))
        .await;
    let successor = first["refreshToken"]["refreshToken"]
        .as_str()
        .expect("token")
        .to_owned();

    // The stolen original is replayed: refused, and the legitimate successor dies with it.
    let replay = app
        .graphql(REFRESH, json!({ "t": session.refresh_token }))
        .await;
    assert_eq!(error_code(&replay), "UNAUTHENTICATED");
    let successor_use = app.graphql(REFRESH, json!({ "t": successor })).await;
    assert_eq!(error_code(&successor_use), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_token_succeed_at_most_once() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let attempts = futures::future::join_all(
        (0..8).map(|_| app.graphql(REFRESH, json!({ "t": session.refresh_token }))),
    )
    .await;
    let successes = attempts
        .iter()
        .filter(|body| body.get("errors").is_none())
        .count();
    assert!(
        successes <= 1,
        "one token, at most one new session: {attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .filter(|body| body.get("errors").is_some())
            .all(|body| error_code(body) == "UNAUTHENTICATED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_is_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let body = app
        .graphql(
            "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
            json!({ "input": { "email": format!("  {}  ", session.email.to_uppercase()),
                               "password": PASSWORD, "name": "Twin" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registrations_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let cases = [
        json!({ "email": "not-an-email", "password": PASSWORD, "name": "A" }),
        json!({ "email": "a@example.test", "password": "short", "name": "A" }),
        json!({ "email": "a@example.test", "password": PASSWORD, "name": "   " }),
    ];
    for input in cases {
        let body = app
            .graphql(
                "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_do_not_reveal_whether_the_email_exists() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let query = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
    let wrong_password = app
        .graphql(
            query,
            json!({ "input": { "email": session.email, "password": "wrong password" } }),
        )
        .await;
    let unknown_email = app
        .graphql(
            query,
            json!({ "input": { "email": "nobody@example.test", "password": "wrong password" } }),
        )
        .await;
    assert_eq!(error_code(&wrong_password), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown_email), "UNAUTHENTICATED");
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown_email["errors"][0]["message"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_login_failures_are_throttled_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let query = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
    for _ in 0..5 {
        let body = app
            .graphql(
                query,
                json!({ "input": { "email": session.email, "password": "guess guess" } }),
            )
            .await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let blocked = app
        .graphql(
            query,
            json!({ "input": { "email": session.email, "password": PASSWORD } }),
        )
        .await;
    assert_eq!(error_code(&blocked), "TOO_MANY_REQUESTS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_across_many_accounts_is_throttled_per_client_address() {
    let app = TestApp::spawn().await;
    let query = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";
    for n in 0..20 {
        let body = app
            .graphql(query, json!({ "input": { "email": format!("victim{n}@example.test"), "password": "guess guess" } }))
            .await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let session = app.customer().await;
    let blocked = app
        .graphql(
            query,
            json!({ "input": { "email": session.email, "password": PASSWORD } }),
        )
        .await;
    assert_eq!(error_code(&blocked), "TOO_MANY_REQUESTS");
}

/// Forged, expired and foreign tokens are refused, even on a query that needs no sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_access_tokens_are_unauthenticated_never_anonymous() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let own_secret = app.state.config.jwt_secret.clone();
    let expired = TokenKeys::new(&own_secret, Duration::minutes(15))
        .issue(
            session.user_id,
            entity::enums::Role::Customer,
            Utc::now() - Duration::hours(1),
        )
        .expect("signing")
        .0;
    let foreign = TokenKeys::new(
        &Secret::new("some-other-secret-that-is-long-enough!!"),
        Duration::minutes(15),
    )
    .issue(session.user_id, entity::enums::Role::Admin, Utc::now())
    .expect("signing")
    .0;
    let mut tampered: Vec<char> = session.access_token.chars().collect();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();

    for token in [
        expired.as_str(),
        foreign.as_str(),
        tampered.as_str(),
        "not.a.jwt",
    ] {
        for query in [ME, "{ events { edges { cursor } } }"] {
            let body = app.graphql_as(token, query, json!({})).await;
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{token} on {query}");
            assert_eq!(body["data"], Value::Null);
        }
    }
    let no_token = app.graphql(ME, json!({})).await;
    assert_eq!(error_code(&no_token), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_can_be_renamed_and_the_password_changed() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let renamed = app
        .data_as(
            &session.access_token,
            "mutation { updateProfile(input: { name: \"  Renamed Person \" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(renamed["updateProfile"]["name"], "Renamed Person");

    let wrong = app
        .graphql_as(
            &session.access_token,
            "mutation { changePassword(input: { currentPassword: \"nope nope\", newPassword: \"another password\" }) }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    app.data_as(
        &session.access_token,
        "mutation($current: String!) { changePassword(input: { currentPassword: $current, newPassword: \"another password\" }) }",
        json!({ "current": PASSWORD }),
    )
    .await;
    let old_session = app
        .graphql(REFRESH, json!({ "t": session.refresh_token }))
        .await;
    assert_eq!(
        error_code(&old_session),
        "UNAUTHENTICATED",
        "a password change signs out every session"
    );
    app.login(&session.email, "another password").await;
}

async fn upload_avatar(app: &TestApp, token: &str, bytes: Vec<u8>, file_name: &str) -> Value {
    let operations = json!({
        "query": "mutation($file: Upload!) { uploadAvatar(file: $file) { avatarUrl } }",
        "variables": { "file": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        );
    reqwest::Client::new()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 0);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avatar_is_checked_by_content_stored_and_served() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let image = png(4096);
    let body = upload_avatar(&app, &session.access_token, image.clone(), "me.png").await;
    let url = body["data"]["uploadAvatar"]["avatarUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("an avatar URL: {body}"))
        .to_owned();
    let served = reqwest::get(app.url(&url)).await.expect("request");
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), image);

    let me = app.data_as(&session.access_token, ME, json!({})).await;
    assert_eq!(me["me"]["avatarUrl"], url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_and_oversized_avatars_are_refused() {
    let app = TestApp::spawn().await;
    let session = app.customer().await;
    let fake = upload_avatar(
        &app,
        &session.access_token,
        b"<html>not an image</html>".to_vec(),
        "photo.png",
    )
    .await;
    assert_eq!(error_code(&fake), "BAD_USER_INPUT");
    let oversized = upload_avatar(
        &app,
        &session.access_token,
        png(2 * 1024 * 1024 + 1),
        "big.png",
    )
    .await;
    assert_eq!(error_code(&oversized), "BAD_USER_INPUT");
    let me = app.data_as(&session.access_token, ME, json!({})).await;
    assert_eq!(me["me"]["avatarUrl"], Value::Null, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_authenticate_in_connection_init() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let session = app.customer().await;
    // A valid token is accepted by both protocols.
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        crate::subscriptions::connect(
            &app,
            protocol,
            json!({ "Authorization": format!("Bearer {}", session.access_token) }),
        )
        .await;
    }
    // A bad one closes the connection instead of continuing anonymously.
    let mut request = app.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    crate::subscriptions::send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer forged.token.value" } }),
    )
    .await;
    let closed = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let code: u16 = closed.expect("a close frame with a code").code.into();
    assert_eq!(
        code, 4403,
        "graphql-transport-ws closes a refused init with 4403 Forbidden"
    );
}
