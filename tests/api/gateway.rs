//! The gateway around the dialects: lockout, persistence, routing, request
//! ids, health, and API keys through a dialect read from `dialects_dir`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    PASSWORD, Setup, TestApp, password_hash, pixyle_tenant, raw_exchange, status_json,
};

#[tokio::test]
async fn lockout_engages_at_exactly_max_failures_with_retry_after() {
    let lockout = "[lockout]\nmax_failures = 3\nwindow = \"15m\"\nlock_for = \"2s\"";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    for attempt in 1..=3 {
        let (status, body) = app.pixyle_login("/a", "user@a.test", "wrong").await;
        assert_eq!(
            (status, body),
            (401, json!({"error": "Invalid credentials"})),
            "attempt {attempt}"
        );
    }
    // Locked: even the right password is refused, before any hashing.
    let response = app
        .post_json(
            "/a/auth/v1/token",
            &json!({"email": "user@a.test", "password": PASSWORD}),
        )
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let (status, body) = status_json(response).await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({ "error": format!("Too many failed attempts, retry in {retry_after} seconds") })
    );
    // The lock lifts after lock_for.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    assert_eq!(status, 200);
}

/// A login relayed by the trusted local proxy for client `ip`.
async fn login_from(app: &TestApp, ip: &str, password: &str) -> u16 {
    app.client
        .post(app.url("/a/auth/v1/token"))
        .header("x-forwarded-for", format!("{ip}, 127.0.0.1"))
        .json(&json!({"email": "user@a.test", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_success_resets_the_account_counter() {
    let lockout = "[lockout]\nmax_failures = 2";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    let statuses = [
        login_from(&app, "192.0.2.1", "wrong").await,
        login_from(&app, "192.0.2.2", PASSWORD).await,
        login_from(&app, "192.0.2.3", "wrong").await,
        login_from(&app, "192.0.2.4", "wrong").await,
        login_from(&app, "192.0.2.5", PASSWORD).await,
    ];
    assert_eq!(statuses, [401, 200, 401, 401, 429]);
}

#[tokio::test]
async fn a_client_address_is_locked_across_accounts() {
    let lockout = "[lockout]\nmax_failures = 2";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    // Password spraying from one address: one try per account.
    for account in ["x@a.test", "y@a.test"] {
        assert_eq!(app.pixyle_login("/a", account, "guess").await.0, 401);
    }
    assert_eq!(app.pixyle_login("/a", "user@a.test", PASSWORD).await.0, 429);
    // Another client relayed by the trusted local proxy is not locked.
    assert_eq!(login_from(&app, "192.0.2.9", PASSWORD).await, 200);
}

#[tokio::test]
async fn unknown_accounts_are_locked_out_too() {
    let lockout = "[lockout]\nmax_failures = 2";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    for _ in 0..2 {
        assert_eq!(
            app.pixyle_login("/a", "ghost@a.test", PASSWORD).await.0,
            401
        );
    }
    assert_eq!(
        app.pixyle_login("/a", "ghost@a.test", PASSWORD).await.0,
        429
    );
}

#[tokio::test]
async fn revocations_and_keys_survive_a_restart() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", ""))).await;
    let (_, first) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    let (_, second) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    let revoked = first["access_token"].as_str().unwrap().to_owned();
    let kept = second["access_token"].as_str().unwrap().to_owned();
    let response = app
        .client
        .delete(app.url("/a/auth/v1/revoke_access"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let dir = app.stop().await;

    let app = TestApp::start_in(dir).await;
    let (status, body) = status_json(app.verify("/a", &revoked).await).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Token has been revoked"}))
    );
    // The generated signing key was kept: tokens from before still verify.
    assert_eq!(app.verify("/a", &kept).await.status(), 200);
}

#[tokio::test]
async fn deactivating_an_account_ends_its_sessions() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", ""))).await;
    let (_, login) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    let dir = app.stop().await;
    // The operator flips the account to inactive and restarts.
    let file = dir.path().join("config/tenants/a.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let deactivated = text.replacen(
        "email = \"user@a.test\"",
        "email = \"user@a.test\"\nactive = false",
        1,
    );
    std::fs::write(&file, deactivated).unwrap();
    let app = TestApp::start_in(dir).await;
    let access = login["access_token"].as_str().unwrap();
    assert_eq!(app.verify("/a", access).await.status(), 401);
    let refresh = app
        .client
        .post(app.url("/a/auth/v1/refresh"))
        .bearer_auth(login["refresh_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(refresh).await,
        (401, json!({"error": "Invalid token"}))
    );
}

#[tokio::test]
async fn lockout_counters_survive_a_restart() {
    let lockout = "[lockout]\nmax_failures = 2";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    for _ in 0..2 {
        assert_eq!(app.pixyle_login("/a", "user@a.test", "wrong").await.0, 401);
    }
    let app = TestApp::start_in(app.stop().await).await;
    assert_eq!(app.pixyle_login("/a", "user@a.test", PASSWORD).await.0, 429);
}

#[tokio::test]
async fn tenants_are_reached_by_prefix_and_by_host() {
    let extra = "hosts = [\"auth.a.test\", \"login.a.test\"]";
    let app = TestApp::spawn(
        Setup::new()
            .tenant("a", pixyle_tenant("a", "/a", extra))
            .tenant("b", pixyle_tenant("b", "/b", "")),
    )
    .await;
    for host in ["auth.a.test", "login.a.test:8080"] {
        let response = app
            .client
            .post(app.url("/auth/v1/token"))
            .header("host", host)
            .json(&json!({"email": "user@a.test", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
    assert_eq!(app.pixyle_login("/b", "user@b.test", PASSWORD).await.0, 200);
    assert_eq!(app.pixyle_login("/b", "user@a.test", PASSWORD).await.0, 401);
    let nowhere = app
        .client
        .get(app.url("/c/auth/v1/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    // A prefix matches whole segments only.
    let glued = app
        .client
        .post(app.url("/ab/auth/v1/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(glued.status(), 404);
}

#[tokio::test]
async fn host_names_match_case_insensitively() {
    let extra = "hosts = [\"auth.a.test\"]";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", extra))).await;
    for host in ["AUTH.A.TEST", "Auth.A.Test:8080", "auth.a.test."] {
        let response = app
            .client
            .post(app.url("/auth/v1/token"))
            .header("host", host)
            .json(&json!({"email": "user@a.test", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
}

/// RFC 9112 §3.2: one `Host`, readable, on every HTTP/1.1 request; a 400
/// before routing (and the connection closed) otherwise.
#[tokio::test]
async fn a_request_must_name_one_readable_host() {
    let extra = "hosts = [\"auth.a.test\"]";
    let app = TestApp::spawn(
        Setup::new()
            .tenant("a", pixyle_tenant("a", "/a", extra))
            .tenant("b", pixyle_tenant("b", "/b", "hosts = [\"auth.b.test\"]")),
    )
    .await;
    let refused = "HTTP/1.1 400";
    for (what, head) in [
        (
            "two tenants' hosts",
            "GET /_polyauth/verify HTTP/1.1\r\nhost: auth.a.test\r\nhost: auth.b.test",
        ),
        (
            "the same host twice",
            "GET /_polyauth/verify HTTP/1.1\r\nhost: auth.a.test\r\nhost: auth.a.test",
        ),
        (
            "two hosts under a prefix",
            "GET /a/_polyauth/verify HTTP/1.1\r\nhost: localhost\r\nhost: auth.b.test",
        ),
        (
            "a list",
            "GET /a/_polyauth/verify HTTP/1.1\r\nhost: auth.a.test, auth.b.test",
        ),
        (
            "user info",
            "GET /a/_polyauth/verify HTTP/1.1\r\nhost: me@auth.a.test",
        ),
        ("no host on HTTP/1.1", "GET /a/_polyauth/verify HTTP/1.1"),
    ] {
        let answer = raw_exchange(app.port, &format!("{head}\r\n\r\n")).await;
        assert!(answer.starts_with(refused), "{what}: {answer:?}");
        assert!(answer.contains("connection: close"), "{what}: {answer:?}");
        assert!(
            answer.ends_with(r#"{"error":"malformed_request"}"#),
            "{what}: {answer:?}"
        );
    }
    // HTTP/1.0 may name no host; the prefix still routes it.
    let answer = raw_exchange(app.port, "GET /a/_polyauth/verify HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 401"), "{answer:?}");
    // An absolute target names the host itself: its `Host` is ignored.
    let body = json!({"email": "user@b.test", "password": PASSWORD}).to_string();
    let answer = raw_exchange(
        app.port,
        &format!(
            "POST http://AUTH.B.test/auth/v1/token HTTP/1.1\r\nhost: auth.a.test\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", ""))).await;
    let echoed = app
        .client
        .get(app.url("/a/_polyauth/verify"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "req-123");
    let made = app.client.get(app.url("/a/nothing")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn admin_listener_answers_health_and_readiness() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", ""))).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(health).await, (200, json!({"status": "ok"})));
    let ready = app
        .client
        .get(format!("{}/readyz", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(ready).await, (200, json!({"status": "ready"})));
    // Admin routes are not on the public listener.
    let public = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(public.status(), 404);
}

/// A dialect that is only a file: login, API keys, logout of the session.
const KEYED: &str = r#"
name = "keyed"
title = "A test vendor with API keys"

[verify]
credentials = [
  { from = "header", name = "x-api-key", kind = "api_key" },
  { from = "bearer", kind = "access_token_or_api_key" },
]

[errors]
default = { body = { ok = false, reason = "{{message}}" } }

[[routes]]
operation = "login"
method = "POST"
path = "/session"
encodings = ["json", "form"]
fields = { email = "user", password = "secret" }
success = { status = 201, body = { ok = true, jwt = "{{access_token}}", ttl = "{{expires_in|string}}" } }

[[routes]]
operation = "generate_api_key"
method = "POST"
path = "/keys"
token = { from = "header", name = "x-session" }
success = { body = { ok = true, key = "{{api_key}}" } }

[[routes]]
operation = "revoke"
method = "DELETE"
path = "/session"
scope = "session"
token = { from = "bearer" }
success = { status = 204 }
"#;

async fn keyed_app() -> TestApp {
    let tenant = format!(
        "id = \"k\"\ndialect = \"keyed\"\npath_prefix = \"/k\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[users]]\nemail = \"me@k.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    TestApp::spawn(Setup::new().dialect("keyed", KEYED).tenant("k", tenant)).await
}

async fn keyed_login(app: &TestApp) -> String {
    let response = app
        .client
        .post(app.url("/k/session"))
        .form(&[("user", "me@k.test"), ("secret", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ttl"], "3600");
    body["jwt"].as_str().unwrap().to_owned()
}

async fn new_api_key(app: &TestApp, session: &str) -> String {
    let response = app
        .client
        .post(app.url("/k/keys"))
        .header("x-session", session)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

async fn verify_key(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .get(app.url("/k/_polyauth/verify"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn api_keys_verify_rotate_and_are_stored_only_as_hashes() {
    let app = keyed_app().await;
    let session = keyed_login(&app).await;
    let key = new_api_key(&app, &session).await;
    assert!(key.len() >= 43, "at least 256 bits: {key}");
    let ok = verify_key(&app, &key).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-email"], "me@k.test");
    // Also accepted as a bearer credential.
    assert_eq!(app.verify("/k", &key).await.status(), 200);

    let rotated = new_api_key(&app, &session).await;
    assert_ne!(rotated, key);
    let (status, body) = status_json(verify_key(&app, &key).await).await;
    assert_eq!(
        (status, body),
        (401, json!({"ok": false, "reason": "Invalid token"}))
    );
    assert_eq!(verify_key(&app, &rotated).await.status(), 200);

    let dir = app.stop().await;
    let stored = std::fs::read(dir.path().join("data/polyauth.redb")).unwrap();
    let contains = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        !contains(&rotated),
        "the API key itself is in the store file"
    );
}

#[tokio::test]
async fn a_session_logout_kills_the_session() {
    let app = keyed_app().await;
    let session = keyed_login(&app).await;
    let response = app
        .client
        .delete(app.url("/k/session"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let (status, body) = status_json(app.verify("/k", &session).await).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"ok": false, "reason": "Token has been revoked"})
        )
    );
}

#[tokio::test]
async fn concurrent_logins_queue_on_the_hashing_pool_and_all_answer() {
    let app = TestApp::spawn(Setup::new().server("[hashing]\nmax_concurrent = 1").tenant(
        "a",
        pixyle_tenant("a", "/a", "[lockout]\nmax_failures = 50"),
    ))
    .await;
    let logins = (0..8).map(|i| {
        let password = if i % 2 == 0 { PASSWORD } else { "wrong" };
        app.pixyle_login("/a", "user@a.test", password)
    });
    let results = futures_util::future::join_all(logins).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused = results.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!((ok, refused), (4, 4));
    // The async workers stayed free while hashes queued.
    assert_eq!(
        app.client
            .get(app.url("/a/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn every_405_names_the_allowed_methods() {
    let tenant = |id: &str, dialect: &str| {
        format!(
            "id = \"{id}\"\ndialect = \"{dialect}\"\npath_prefix = \"/{id}\"\nissuer = \"iss\"\naudience = \"aud\"\n"
        )
    };
    let app = TestApp::spawn(
        Setup::new()
            .tenant("a", pixyle_tenant("a", "/a", ""))
            .tenant("v", tenant("v", "visualyze"))
            .tenant("e", tenant("e", "elyssa")),
    )
    .await;
    let cases = [
        (reqwest::Method::GET, "/a/auth/v1/token", "POST"),
        (reqwest::Method::POST, "/a/auth/v1/revoke_access", "DELETE"),
        (reqwest::Method::PUT, "/a/_polyauth/verify", "GET, POST"),
        (reqwest::Method::DELETE, "/a/openapi.json", "GET"),
        (
            reqwest::Method::POST,
            "/v/api/v1/user/apikey/generate",
            "GET",
        ),
        // Both forms of a path with a tolerated trailing slash.
        (reqwest::Method::GET, "/e/auth/login/", "POST"),
        (reqwest::Method::GET, "/e/auth/login", "POST"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn a_non_ascii_email_is_percent_encoded_in_x_auth_email() {
    let tenant = format!(
        "{}\n[[users]]\nemail = \"Jürgen@Bücher.test\"\npassword_hash = \"{}\"\nroles = [\"reader\"]\n",
        pixyle_tenant("a", "/a", ""),
        password_hash(PASSWORD)
    );
    let app = TestApp::spawn(Setup::new().tenant("a", tenant)).await;
    let (status, body) = app.pixyle_login("/a", "jürgen@bücher.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let response = app
        .verify("/a", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-auth-email"].as_bytes(),
        b"j%C3%BCrgen@b%C3%BCcher.test"
    );
    assert_eq!(response.headers()["x-auth-roles"], "reader");
    // An ASCII email goes as it is.
    let (_, body) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    let response = app
        .verify("/a", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(response.headers()["x-auth-email"], "user@a.test");
}
