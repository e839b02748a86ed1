//! A sixth vendor is a file: a dialect written here, never compiled in,
//! logs in, refreshes (rotating) and revokes with no code change.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, status_json};

pub const SIXTH: &str = r#"
name = "sixth"
title = "A vendor polyauth has never heard of"

[tokens]
access_ttl = "10m"
refresh_ttl = "2h"

[messages]
missing_field = "need {{field}}"

[errors]
default = { status = 599, body = { ok = false, why = "{{message}}" } }
invalid_credentials = { status = 403, body = { ok = false, why = "who are you?" } }
malformed_request = { status = 418, body = { ok = false, why = "{{message}}" } }
invalid_token = { status = 419, body = { ok = false, why = "{{message}}" } }
locked_out = { status = 420, body = { ok = false, wait = "{{retry_after}}" } }

[[routes]]
operation = "login"
method = "PUT"
path = "/v9/signin"
encodings = ["json"]
strict = true
fields = { email = "login", password = "pass" }
success = { status = 201, body = { ok = true, result = { jwt = "{{access_token}}", renew = "{{refresh_token}}", ttl = "{{expires_in|string}}", who = "{{email}}" } } }

[[routes]]
operation = "refresh"
method = "POST"
path = "/v9/renew"
token = { from = "header", name = "x-renew" }
success = { body = { ok = true, result = { jwt = "{{access_token}}", renew = "{{refresh_token}}" } } }

[[routes]]
operation = "revoke"
method = "POST"
path = "/v9/signout"
encodings = ["json"]
token = { from = "field", name = "token", kind = "any_token" }
success = { status = 202, body = { ok = true } }
"#;

async fn app() -> TestApp {
    let tenant = format!(
        "id = \"s\"\ndialect = \"sixth\"\npath_prefix = \"/s\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[users]]\nemail = \"me@s.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    TestApp::spawn(Setup::new().dialect("sixth", SIXTH).tenant("s", tenant)).await
}

async fn sign_in(app: &TestApp) -> Value {
    let response = app
        .client
        .put(app.url("/s/v9/signin"))
        .json(&json!({"login": "me@s.test", "pass": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["result"]["ttl"], "600");
    assert_eq!(body["result"]["who"], "me@s.test");
    body
}

async fn renew(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/s/v9/renew"))
        .header("x-renew", token)
        .send()
        .await
        .unwrap();
    status_json(response).await
}

#[tokio::test]
async fn its_own_fields_envelope_and_statuses() {
    let app = app().await;
    sign_in(&app).await;
    let wrong = app
        .client
        .put(app.url("/s/v9/signin"))
        .json(&json!({"login": "me@s.test", "pass": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(wrong).await,
        (403, json!({"ok": false, "why": "who are you?"}))
    );
    let missing = app
        .client
        .put(app.url("/s/v9/signin"))
        .json(&json!({"login": "me@s.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(missing).await,
        (418, json!({"ok": false, "why": "need pass"}))
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_ends_the_session() {
    let app = app().await;
    let login = sign_in(&app).await;
    let first = login["result"]["renew"].as_str().unwrap();
    let (status, body) = renew(&app, first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["result"]["renew"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    // Replaying the rotated token is reuse: the whole session dies.
    assert_eq!(renew(&app, first).await.0, 419);
    assert_eq!(renew(&app, &second).await.0, 419);
    let access = login["result"]["jwt"].as_str().unwrap();
    assert_eq!(app.verify("/s", access).await.status(), 401);
}

#[tokio::test]
async fn of_twenty_concurrent_refreshes_exactly_one_wins() {
    let app = app().await;
    let login = sign_in(&app).await;
    let token = login["result"]["renew"].as_str().unwrap();
    let attempts = (0..20).map(|_| renew(&app, token));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 419).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_in_the_body_kills_its_family() {
    let app = app().await;
    let login = sign_in(&app).await;
    let refresh = login["result"]["renew"].as_str().unwrap();
    let response = app
        .post_json("/s/v9/signout", &json!({ "token": refresh }))
        .await;
    assert_eq!(status_json(response).await, (202, json!({"ok": true})));
    assert_eq!(renew(&app, refresh).await.0, 419);
    let access = login["result"]["jwt"].as_str().unwrap();
    assert_eq!(app.verify("/s", access).await.status(), 401);
}
