//! The OAuth2 password form dialect, FastAPI style (SPEC §7.4).

use serde_json::json;

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, status_json};

async fn app() -> TestApp {
    let tenant = format!(
        "id = \"of\"\ndialect = \"oauth-form\"\npath_prefix = \"/of\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[users]]\nemail = \"user@of.test\"\npassword_hash = \"{h}\"\n\
         [[users]]\nemail = \"inactive@of.test\"\npassword_hash = \"{h}\"\nactive = false\n",
        h = password_hash(PASSWORD)
    );
    TestApp::spawn(Setup::new().tenant("of", tenant)).await
}

async fn form_login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/of/auth/login"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn missing(fields: &[&str]) -> serde_json::Value {
    let detail: Vec<_> = fields
        .iter()
        .map(|f| json!({"type": "missing", "loc": ["body", f], "msg": "Field required", "input": null}))
        .collect();
    json!({ "detail": detail })
}

#[tokio::test]
async fn login_answers_a_bearer_access_token_in_every_encoding() {
    let app = app().await;
    let (status, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["access_token", "token_type"]);
    let form = reqwest::multipart::Form::new()
        .text("username", "user@of.test")
        .text("password", PASSWORD);
    let multipart = app
        .client
        .post(app.url("/of/auth/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), 200);
    let json = app
        .post_json(
            "/of/auth/login",
            &json!({"username": "user@of.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(json.status(), 200);
}

#[tokio::test]
async fn wrong_credentials_are_401_with_www_authenticate() {
    let app = app().await;
    for (user, password) in [("user@of.test", "wrong"), ("nobody@of.test", PASSWORD)] {
        let response = form_login(&app, user, password).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            status_json(response).await,
            (401, json!({"detail": "Incorrect username or password"}))
        );
    }
    let inactive = form_login(&app, "inactive@of.test", PASSWORD).await;
    assert_eq!(
        status_json(inactive).await,
        (400, json!({"detail": "Inactive user"}))
    );
}

#[tokio::test]
async fn missing_fields_are_422_with_one_entry_each() {
    let app = app().await;
    let url = app.url("/of/auth/login");
    let cases = [
        (
            app.client.post(&url).form(&[("username", "user@of.test")]),
            missing(&["password"]),
        ),
        (
            app.client.post(&url).form(&[("password", PASSWORD)]),
            missing(&["username"]),
        ),
        (app.client.post(&url), missing(&["username", "password"])),
        (
            app.client
                .post(&url)
                .header("content-type", "text/plain")
                .body("username=x"),
            missing(&["username", "password"]),
        ),
        (
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{"),
            missing(&["username", "password"]),
        ),
    ];
    for (i, (request, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            status_json(request.send().await.unwrap()).await,
            (422, expected),
            "case {i}"
        );
    }
    let wrong = app
        .post_json("/of/auth/login", &json!({"username": 1, "password": "x"}))
        .await;
    assert_eq!(
        status_json(wrong).await,
        (
            422,
            json!({"detail": [{"type": "string_type", "loc": ["body", "username"], "msg": "Input should be a valid string", "input": null}]})
        )
    );
}

#[tokio::test]
async fn refresh_slides_the_session_and_kills_the_presented_token() {
    let app = app().await;
    let (_, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    let first = body["access_token"].as_str().unwrap().to_owned();
    let refresh = |token: &str| {
        app.client
            .post(app.url("/of/auth/refresh"))
            .bearer_auth(token)
            .send()
    };
    let (status, body) = status_json(refresh(&first).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    let second = body["access_token"].as_str().unwrap();
    assert_eq!(app.verify("/of", second).await.status(), 200);
    let reused = refresh(&first).await.unwrap();
    assert_eq!(reused.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        status_json(reused).await,
        (401, json!({"detail": "Could not validate credentials"}))
    );
    let none = app
        .client
        .post(app.url("/of/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(none).await,
        (401, json!({"detail": "Not authenticated"}))
    );
}

#[tokio::test]
async fn an_expired_token_is_told_apart() {
    let tenant = format!(
        "id = \"of\"\ndialect = \"oauth-form\"\npath_prefix = \"/of\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [tokens]\naccess_ttl = \"1s\"\n[[users]]\nemail = \"user@of.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    let app = TestApp::spawn(Setup::new().tenant("of", tenant)).await;
    let (_, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    let token = body["access_token"].as_str().unwrap();
    let exp = crate::tokens::claims(token)["exp"].as_u64().unwrap();
    while polyauth::store::unix_now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = app
        .client
        .post(app.url("/of/auth/refresh"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (401, json!({"detail": "Token has expired"}))
    );
}

#[tokio::test]
async fn a_replayed_slide_ends_the_session_and_concurrent_slides_win_once() {
    let app = app().await;
    let (_, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    let first = body["access_token"].as_str().unwrap().to_owned();
    let slide = |token: String| {
        let request = app
            .client
            .post(app.url("/of/auth/refresh"))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let statuses = futures_util::future::join_all((0..8).map(|_| slide(first.clone()))).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The losers were replays: the whole session is gone, the winner's token too.
    let (_, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/of/auth/refresh"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    let (_, body) = status_json(response).await;
    let slid = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(slide(fresh).await, 401);
    assert_eq!(app.verify("/of", &slid).await.status(), 401);
}

#[tokio::test]
async fn sliding_stops_at_the_end_of_the_session() {
    let tenant = format!(
        "id = \"of\"\ndialect = \"oauth-form\"\npath_prefix = \"/of\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [tokens]\nrefresh_ttl = \"1s\"\n[[users]]\nemail = \"user@of.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    let app = TestApp::spawn(Setup::new().tenant("of", tenant)).await;
    let (_, body) = status_json(form_login(&app, "user@of.test", PASSWORD).await).await;
    let token = body["access_token"].as_str().unwrap();
    let session_end = polyauth::store::unix_now() + 1;
    while polyauth::store::unix_now() <= session_end {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = app
        .client
        .post(app.url("/of/auth/refresh"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (401, json!({"detail": "Could not validate credentials"}))
    );
}

#[tokio::test]
async fn grant_type_when_sent_must_be_password_as_fastapi_checks_it() {
    let app = app().await;
    let login = |extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![("username", "user@of.test"), ("password", PASSWORD)];
        form.extend_from_slice(extra);
        app.client
            .post(app.url("/of/auth/login"))
            .form(&form)
            .send()
    };
    let refused = login(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.text().await.unwrap(),
        r#"{"detail":[{"type":"string_pattern_mismatch","loc":["body","grant_type"],"msg":"String should match pattern '^password$'","input":"client_credentials","ctx":{"pattern":"^password$"}}]}"#
    );
    // The same in a multipart body; `passwords` does not match the whole pattern.
    let form = reqwest::multipart::Form::new()
        .text("username", "user@of.test")
        .text("password", PASSWORD)
        .text("grant_type", "passwords");
    let multipart = app
        .client
        .post(app.url("/of/auth/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(multipart).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["input"], "passwords");

    // What a stock OAuth2 client sends: grant_type=password, scope, client credentials.
    for extra in [
        &[("grant_type", "password")][..],
        &[
            ("grant_type", "password"),
            ("scope", "read write"),
            ("client_id", "cli"),
            ("client_secret", "s3cret"),
        ],
        &[("grant_type", "")],
        &[],
    ] {
        let (status, body) = status_json(login(extra).await.unwrap()).await;
        assert_eq!(
            (status, &body["token_type"]),
            (200, &json!("bearer")),
            "{extra:?}"
        );
    }
}

const OAUTH_FORM: &str = include_str!("../../dialects/oauth-form.toml");

/// The built-in oauth-form dialect, renamed `strict-form`, its login strict.
pub fn strict_form() -> String {
    let strict = OAUTH_FORM
        .replace(r#"name = "oauth-form""#, r#"name = "strict-form""#)
        .replacen(
            r#"encodings = ["form", "multipart", "json"]"#,
            "encodings = [\"form\", \"multipart\", \"json\"]\nstrict = true",
            1,
        );
    assert!(strict.contains("strict = true"));
    strict
}

#[tokio::test]
async fn a_strict_copy_lists_every_unknown_field_as_fastapi_forbids_extras() {
    let tenant = format!(
        "id = \"sf\"\ndialect = \"strict-form\"\npath_prefix = \"/sf\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[users]]\nemail = \"user@sf.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    let app = TestApp::spawn(
        Setup::new()
            .tenant("sf", tenant)
            .dialect("strict-form", &strict_form()),
    )
    .await;
    let url = app.url("/sf/auth/login");
    let response = app
        .client
        .post(&url)
        .form(&[
            ("username", "user@sf.test"),
            ("password", PASSWORD),
            ("scope", "read"),
            ("remember", "yes"),
            ("tenant", "other"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"detail":[{"type":"extra_forbidden","loc":["body","remember"],"msg":"Extra inputs are not permitted","input":"yes"},{"type":"extra_forbidden","loc":["body","tenant"],"msg":"Extra inputs are not permitted","input":"other"}]}"#
    );
    // In JSON, `input` is the value as sent.
    let json = app
        .post_json(
            "/sf/auth/login",
            &json!({"username": "user@sf.test", "password": PASSWORD, "n": 7}),
        )
        .await;
    assert_eq!(
        status_json(json).await,
        (
            422,
            json!({"detail": [{"type": "extra_forbidden", "loc": ["body", "n"], "msg": "Extra inputs are not permitted", "input": 7}]})
        )
    );
    // The accepted fields are no extras.
    let accepted = app
        .client
        .post(&url)
        .form(&[
            ("username", "user@sf.test"),
            ("password", PASSWORD),
            ("grant_type", "password"),
            ("client_id", "c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
}
