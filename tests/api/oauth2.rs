//! `<mount>/oauth2/introspect` (RFC 7662) and `<mount>/oauth2/revoke`
//! (RFC 7009) against a real gateway; `[[clients]]` and `hash-secret` in
//! `clients`.

mod clients;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, status_json};
use crate::redis_server::RedisServer;

/// A vendor whose login shows an access token, a refresh token and the
/// user's API key, and whose refresh rotates the refresh token.
pub const VENDOR: &str = r#"
name = "vendor"
title = "A vendor with every kind of token"

[tokens]
access_ttl = "10m"
refresh_ttl = "2h"

[verify]
credentials = [
    { from = "bearer", kind = "access_token_or_api_key" },
    { from = "header", name = "x-api-key", kind = "api_key" },
]

[errors]
default = { body = { error = "{{message}}" } }

[[routes]]
operation = "login"
method = "POST"
path = "/login"
encodings = ["json"]
fields = { email = "email", password = "password" }
success = { body = { access = "{{access_token}}", refresh = "{{refresh_token}}", key = "{{api_key}}" } }

[[routes]]
operation = "refresh"
method = "POST"
path = "/refresh"
token = { from = "bearer" }
success = { body = { access = "{{access_token}}", refresh = "{{refresh_token}}" } }
"#;

/// The secret of client `billing` of every tenant below.
pub const SECRET: &str = "billing-secret-0123456789-abcdefghij";

/// The `sha256:` hash `hash-secret` prints for `secret`.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Tenant `id` at `/id` speaking [`VENDOR`], with client `billing` and
/// user `user@<id>.test` (roles user and admin, company acme); `extra` goes
/// before the tables.
pub fn vendor_tenant(id: &str, extra: &str) -> String {
    format!(
        r#"
id = "{id}"
dialect = "vendor"
path_prefix = "/{id}"
issuer = "https://auth.test/{id}"
audience = "{id}-api"
{extra}

[[clients]]
id = "billing"
secret_hash = "{hash}"

[[users]]
email = "user@{id}.test"
password_hash = "{password}"
roles = ["user", "admin"]
company_id = "acme"
"#,
        hash = secret_hash(SECRET),
        password = password_hash(PASSWORD),
    )
}

/// Tenants `a` and `b`.
fn setup() -> Setup {
    Setup::new()
        .dialect("vendor", VENDOR)
        .tenant("a", vendor_tenant("a", ""))
        .tenant("b", vendor_tenant("b", ""))
}

/// The tokens of a login: access, refresh, API key.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub key: String,
}

pub async fn login(app: &TestApp, tenant: &str) -> Tokens {
    let response = app
        .post_json(
            &format!("/{tenant}/login"),
            &json!({"email": format!("user@{tenant}.test"), "password": PASSWORD}),
        )
        .await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    let text = |name: &str| body[name].as_str().unwrap().to_owned();
    Tokens {
        access: text("access"),
        refresh: text("refresh"),
        key: text("key"),
    }
}

/// A refresh: the new (access, refresh) tokens, or the status refusing it.
async fn refresh(app: &TestApp, tenant: &str, token: &str) -> Result<(String, String), u16> {
    let response = app
        .client
        .post(app.url(&format!("/{tenant}/refresh")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    match status {
        200 => Ok((
            body["access"].as_str().unwrap().to_owned(),
            body["refresh"].as_str().unwrap().to_owned(),
        )),
        _ => Err(status),
    }
}

/// How the caller of an OAuth endpoint authenticates.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    Nobody,
    /// `client_secret_basic`: id and secret form-urlencoded, in Basic.
    Basic(&'a str, &'a str),
    /// `client_secret_post`.
    Post(&'a str, &'a str),
    Bearer(&'a str),
    Header(&'a str, &'a str),
}

/// The `Authorization` value of `client_secret_basic` (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    let encode = |part: &str| serde_urlencoded::to_string([("", part)]).unwrap()[1..].to_owned();
    let pair = format!("{}:{}", encode(id), encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// POSTs `form` to `<mount>/oauth2/<endpoint>` as `caller`.
pub async fn oauth2(
    app: &TestApp,
    tenant: &str,
    endpoint: &str,
    caller: Caller<'_>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut request = app
        .client
        .post(app.url(&format!("/{tenant}/oauth2/{endpoint}")));
    match caller {
        Caller::Nobody => {}
        Caller::Basic(id, secret) => request = request.header("authorization", basic(id, secret)),
        Caller::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
        Caller::Bearer(token) => request = request.bearer_auth(token),
        Caller::Header(name, value) => request = request.header(name, value),
    }
    request.form(&form).send().await.unwrap()
}

/// Introspects `token` at tenant `tenant` as client `billing`.
async fn introspect(app: &TestApp, tenant: &str, token: &str) -> Value {
    let caller = Caller::Basic("billing", SECRET);
    let response = oauth2(app, tenant, "introspect", caller, &[("token", token)]).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// What introspection must answer for an active token of `typ`.
fn active_answer(token: &str, token_type: &str) -> Value {
    let c = claims(token);
    json!({
        "active": true,
        "sub": c["sub"], "exp": c["exp"], "iat": c["iat"], "nbf": c["nbf"], "jti": c["jti"],
        "iss": c["iss"], "aud": c["aud"], "token_type": token_type, "tid": c["tid"],
        "username": "user@a.test", "roles": ["user", "admin"], "company_id": "acme",
    })
}

fn inactive() -> Value {
    json!({"active": false})
}

#[tokio::test]
async fn a_client_introspects_with_basic_or_post_authentication() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let expected = active_answer(&tokens.access, "access_token");
    assert_eq!(claims(&tokens.access)["iss"], "https://auth.test/a");
    for caller in [
        Caller::Basic("billing", SECRET),
        Caller::Post("billing", SECRET),
    ] {
        let form = [("token", tokens.access.as_str())];
        let response = oauth2(&app, "a", "introspect", caller, &form).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(status_json(response).await, (200, expected.clone()));
    }
    // Credentials in Basic that a client did not form-encode are understood too.
    let raw = format!("Basic {}", STANDARD.encode(format!("billing:{SECRET}")));
    let response = app
        .client
        .post(app.url("/a/oauth2/introspect"))
        .header("authorization", raw)
        .form(&[("token", tokens.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(response).await, (200, expected));
}

#[tokio::test]
async fn a_bearer_token_or_api_key_of_the_tenant_may_introspect() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let other = login(&app, "a").await;
    let expected = active_answer(&other.access, "access_token");
    for caller in [
        Caller::Bearer(&tokens.access),
        Caller::Bearer(&tokens.key),
        Caller::Header("x-api-key", &tokens.key),
    ] {
        let form = [("token", other.access.as_str())];
        let response = oauth2(&app, "a", "introspect", caller, &form).await;
        assert_eq!(status_json(response).await, (200, expected.clone()));
    }
}

#[tokio::test]
async fn a_wrong_or_missing_caller_is_an_invalid_client() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let foreign = login(&app, "b").await;
    let refused = [
        Caller::Nobody,
        Caller::Basic("billing", "wrong-secret-0123456789-abcdefghij"),
        Caller::Post("billing", "wrong-secret-0123456789-abcdefghij"),
        Caller::Basic("stranger", SECRET),
        Caller::Bearer("not-a-token"),
        Caller::Bearer(&tokens.refresh),
        Caller::Bearer(&foreign.access),
        Caller::Header("x-api-key", &foreign.key),
        Caller::Header("authorization", "Basic %%%"),
    ];
    for (i, caller) in refused.into_iter().enumerate() {
        let form = [("token", tokens.access.as_str())];
        let response = oauth2(&app, "a", "introspect", caller, &form).await;
        let challenges: Vec<&str> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic ")),
            "caller {i}: {challenges:?}"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            status_json(response).await,
            (401, json!({"error": "invalid_client"})),
            "caller {i}"
        );
    }
    // A valid credential next to an invalid one is refused too.
    let response = app
        .client
        .post(app.url("/a/oauth2/introspect"))
        .bearer_auth(&tokens.access)
        .header("x-api-key", &foreign.key)
        .form(&[("token", tokens.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn refresh_tokens_and_api_keys_are_described_too() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    assert_eq!(
        introspect(&app, "a", &tokens.refresh).await,
        active_answer(&tokens.refresh, "refresh_token")
    );
    // A hint that is wrong or unknown changes nothing.
    for hint in ["access_token", "refresh_token", "api_key", "nonsense"] {
        let form = [
            ("token", tokens.refresh.as_str()),
            ("token_type_hint", hint),
        ];
        let caller = Caller::Post("billing", SECRET);
        let response = oauth2(&app, "a", "introspect", caller, &form).await;
        let expected = active_answer(&tokens.refresh, "refresh_token");
        assert_eq!(status_json(response).await, (200, expected), "{hint}");
    }
    let key = introspect(&app, "a", &tokens.key).await;
    let iat = key["iat"].as_u64().unwrap();
    let now = polyauth::store::unix_now();
    assert!(iat <= now && now - iat < 60, "iat {iat}");
    assert_eq!(
        key,
        json!({
            "active": true, "sub": claims(&tokens.access)["sub"], "iat": iat,
            "iss": "https://auth.test/a", "token_type": "api_key", "tid": "a",
            "username": "user@a.test", "roles": ["user", "admin"], "company_id": "acme",
        })
    );
}

#[tokio::test]
async fn a_token_that_is_not_active_is_exactly_active_false() {
    let expiring = "[tokens]\naccess_ttl = \"1s\"";
    let app = TestApp::spawn(
        setup()
            .tenant("c", vendor_tenant("c", expiring))
            .tenant("d", vendor_tenant("d", "")),
    )
    .await;
    let tokens = login(&app, "a").await;
    let foreign = login(&app, "b").await;
    let short = login(&app, "c").await;

    // Forged: another payload under the original signature, or another
    // tenant's signature under the original payload.
    let parts: Vec<&str> = tokens.access.split('.').collect();
    let mut forged_claims = claims(&tokens.access);
    forged_claims["roles"] = json!(["root"]);
    let payload = URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    let foreign_signature = foreign.access.rsplit('.').next().unwrap();
    let resigned = format!("{}.{}.{foreign_signature}", parts[0], parts[1]);
    for token in [
        forged.as_str(),
        &resigned,
        "not-a-token",
        "a.b.c",
        "pa_not-a-key",
        &foreign.access,
        &foreign.refresh,
        &foreign.key,
    ] {
        assert_eq!(introspect(&app, "a", token).await, inactive(), "{token}");
    }
    // Expired.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(introspect(&app, "c", &short.access).await, inactive());
    // Revoked, and a refresh token rotated out (its family lives on).
    let (_, rotated) = refresh(&app, "a", &tokens.refresh).await.unwrap();
    assert_eq!(introspect(&app, "a", &tokens.refresh).await, inactive());
    assert_eq!(
        introspect(&app, "a", &rotated).await["token_type"],
        "refresh_token"
    );
    let form = [("token", tokens.access.as_str())];
    let revoked = oauth2(&app, "a", "revoke", Caller::Nobody, &form).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(introspect(&app, "a", &tokens.access).await, inactive());
    // Tenant d's client cannot learn about tenant a's tokens.
    assert_eq!(introspect(&app, "d", &rotated).await, inactive());
}

#[tokio::test]
async fn a_request_without_a_token_or_not_a_form_is_invalid() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let basic = basic("billing", SECRET);
    let post = |body: &str, content_type: &str| {
        app.client
            .post(app.url("/a/oauth2/introspect"))
            .header("authorization", &basic)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };
    let form = "application/x-www-form-urlencoded";
    let token_json = json!({ "token": tokens.access }).to_string();
    let twice = format!("token={0}&token={0}", tokens.access);
    let both = format!(
        "token={}&client_id=billing&client_secret={SECRET}",
        tokens.access
    );
    for (body, content_type) in [
        ("", form),
        ("token=", form),
        ("token_type_hint=access_token", form),
        (token_json.as_str(), "application/json"),
        (twice.as_str(), form),
        (both.as_str(), form),
    ] {
        let response = post(body, content_type).await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            status_json(response).await,
            (400, json!({"error": "invalid_request"})),
            "{body} ({content_type})"
        );
    }
    // The media type is matched whatever its case or parameters.
    let charset = "Application/X-WWW-Form-Urlencoded; charset=UTF-8";
    let response = post(&format!("token={}", tokens.access), charset).await;
    assert_eq!(response.unwrap().status(), 200);
}

#[tokio::test]
async fn revoking_an_access_token_ends_it_and_nothing_else() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let form = [("token", tokens.access.as_str())];
    let response = oauth2(&app, "a", "revoke", Caller::Nobody, &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(app.verify("/a", &tokens.access).await.status(), 401);
    // The session goes on.
    let (access, _) = refresh(&app, "a", &tokens.refresh).await.unwrap();
    assert_eq!(app.verify("/a", &access).await.status(), 200);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_whole_session() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let (second_access, second) = refresh(&app, "a", &tokens.refresh).await.unwrap();
    let (third_access, third) = refresh(&app, "a", &second).await.unwrap();
    let form = [
        ("token", third.as_str()),
        ("token_type_hint", "refresh_token"),
    ];
    let caller = Caller::Basic("billing", SECRET);
    let response = oauth2(&app, "a", "revoke", caller, &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    for token in [&tokens.refresh, &second, &third] {
        assert_eq!(refresh(&app, "a", token).await, Err(401));
    }
    for access in [&tokens.access, &second_access, &third_access] {
        assert_eq!(app.verify("/a", access).await.status(), 401);
    }
    // Another session of the same user is untouched.
    let other = login(&app, "a").await;
    assert!(refresh(&app, "a", &other.refresh).await.is_ok());
}

#[tokio::test]
async fn revocation_answers_200_for_any_token_and_ignores_unknown_hints() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let foreign = login(&app, "b").await;
    for token in [
        "garbage",
        "a.b.c",
        "pa_nothing",
        &foreign.access,
        &foreign.refresh,
    ] {
        let response = oauth2(&app, "a", "revoke", Caller::Nobody, &[("token", token)]).await;
        assert_eq!(response.status(), 200, "{token}");
        assert_eq!(response.text().await.unwrap(), "", "{token}");
    }
    // Another tenant's tokens were not touched.
    assert_eq!(app.verify("/b", &foreign.access).await.status(), 200);
    assert!(refresh(&app, "b", &foreign.refresh).await.is_ok());
    // An unknown hint is ignored; a wrong one too.
    for (token, hint) in [
        (&tokens.access, "unheard_of"),
        (&tokens.refresh, "access_token"),
    ] {
        let form = [("token", token.as_str()), ("token_type_hint", hint)];
        let response = oauth2(&app, "a", "revoke", Caller::Post("billing", SECRET), &form).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.verify("/a", &tokens.access).await.status(), 401);
    assert_eq!(refresh(&app, "a", &tokens.refresh).await, Err(401));
}

#[tokio::test]
async fn revoking_an_api_key_rotates_it() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    assert_eq!(login(&app, "a").await.key, tokens.key);
    let form = [("token", tokens.key.as_str())];
    let response = oauth2(&app, "a", "revoke", Caller::Nobody, &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(app.verify("/a", &tokens.key).await.status(), 401);
    assert_eq!(introspect(&app, "a", &tokens.key).await, inactive());
    // The next login shows the holder's new key; its tokens live on.
    let next = login(&app, "a").await.key;
    assert_ne!(next, tokens.key);
    assert_eq!(app.verify("/a", &next).await.status(), 200);
    assert_eq!(app.verify("/a", &tokens.access).await.status(), 200);
}

#[tokio::test]
async fn revocation_with_wrong_client_credentials_revokes_nothing() {
    let app = TestApp::spawn(setup()).await;
    let tokens = login(&app, "a").await;
    let form = [("token", tokens.access.as_str())];
    for caller in [
        Caller::Basic("billing", "not-the-secret"),
        Caller::Post("billing", "not-the-secret"),
        Caller::Basic("stranger", SECRET),
    ] {
        let response = oauth2(&app, "a", "revoke", caller, &form).await;
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(
            status_json(response).await,
            (401, json!({"error": "invalid_client"}))
        );
    }
    assert_eq!(app.verify("/a", &tokens.access).await.status(), 200);
    let response = oauth2(&app, "a", "revoke", Caller::Nobody, &[]).await;
    assert_eq!(
        status_json(response).await,
        (400, json!({"error": "invalid_request"}))
    );
}

#[tokio::test]
async fn with_the_store_down_introspection_and_revocation_answer_503() {
    let mut redis = RedisServer::start();
    let app = TestApp::spawn(setup().redis_with_timeout(&redis.url(), "oauth2", "1s")).await;
    let tokens = login(&app, "a").await;
    assert_eq!(introspect(&app, "a", &tokens.access).await["active"], true);
    redis.kill();
    let ready = || async {
        let url = format!("{}/readyz", app.admin_address);
        app.client.get(url).send().await.unwrap().status().as_u16()
    };
    let down = Instant::now();
    while ready().await != 503 {
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "/readyz stayed 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unavailable = json!({"error": "temporarily_unavailable"});
    for token in [&tokens.access, &tokens.refresh, &tokens.key] {
        let caller = Caller::Basic("billing", SECRET);
        let form = [("token", token.as_str())];
        let response = oauth2(&app, "a", "introspect", caller, &form).await;
        assert_eq!(status_json(response).await, (503, unavailable.clone()));
    }
    // A caller's own token cannot be checked either: not a 401.
    let form = [("token", tokens.refresh.as_str())];
    let response = oauth2(
        &app,
        "a",
        "introspect",
        Caller::Bearer(&tokens.access),
        &form,
    )
    .await;
    assert_eq!(response.status(), 503);
    for token in [&tokens.access, &tokens.refresh, &tokens.key] {
        let form = [("token", token.as_str())];
        let response = oauth2(&app, "a", "revoke", Caller::Nobody, &form).await;
        assert_eq!(status_json(response).await, (503, unavailable.clone()));
    }
}

/// What became of the holder of a token while it was being revoked.
#[derive(Clone, Copy, Debug)]
enum Holder {
    /// `active = false` on the account.
    Inactive,
    /// The account taken out of the tenant file.
    Removed,
}

/// Stops `app`, rewrites the tenant file of `tenant` (made by
/// [`vendor_tenant`]) with its user as `holder` says, or as it was with
/// `None`, and starts again on the same directory.
async fn restart_with_holder(app: TestApp, tenant: &str, holder: Option<Holder>) -> TestApp {
    let dir = app.stop().await;
    let original = vendor_tenant(tenant, "");
    let text = match holder {
        None => original,
        // The user's table is the file's last: a key appended is its own.
        Some(Holder::Inactive) => format!("{original}active = false\n"),
        Some(Holder::Removed) => original[..original.find("[[users]]").unwrap()].to_owned(),
    };
    let file = dir.path().join(format!("config/tenants/{tenant}.toml"));
    std::fs::write(file, text).unwrap();
    TestApp::start_in(dir).await
}

/// Revokes `token` at tenant `a` through RFC 7009.
async fn revoke(app: &TestApp, token: &str) {
    let response = oauth2(app, "a", "revoke", Caller::Nobody, &[("token", token)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn an_access_token_revoked_while_its_holder_is_away_stays_dead() {
    for holder in [Holder::Inactive, Holder::Removed] {
        let app = TestApp::spawn(setup()).await;
        let tokens = login(&app, "a").await;
        let app = restart_with_holder(app, "a", Some(holder)).await;
        revoke(&app, &tokens.access).await;
        let app = restart_with_holder(app, "a", None).await;
        let response = app.verify("/a", &tokens.access).await;
        assert_eq!(response.status(), 401, "{holder:?}");
        // Only the token: its session goes on.
        let (access, _) = refresh(&app, "a", &tokens.refresh).await.unwrap();
        assert_eq!(app.verify("/a", &access).await.status(), 200, "{holder:?}");
    }
}

#[tokio::test]
async fn a_refresh_token_revoked_while_its_holder_is_away_ends_its_session_for_good() {
    for holder in [Holder::Inactive, Holder::Removed] {
        let app = TestApp::spawn(setup()).await;
        let tokens = login(&app, "a").await;
        let (second_access, second) = refresh(&app, "a", &tokens.refresh).await.unwrap();
        let app = restart_with_holder(app, "a", Some(holder)).await;
        revoke(&app, &second).await;
        let app = restart_with_holder(app, "a", None).await;
        for access in [&tokens.access, &second_access] {
            assert_eq!(app.verify("/a", access).await.status(), 401, "{holder:?}");
        }
        // The current refresh token first: the rotated-out one, presented
        // again, would end the session by itself.
        for token in [&second, &tokens.refresh] {
            assert_eq!(refresh(&app, "a", token).await, Err(401), "{holder:?}");
        }
        // A new login is a new session.
        let other = login(&app, "a").await;
        assert!(
            refresh(&app, "a", &other.refresh).await.is_ok(),
            "{holder:?}"
        );
    }
}

#[tokio::test]
async fn an_api_key_revoked_while_its_holder_is_away_stays_dead() {
    for holder in [Holder::Inactive, Holder::Removed] {
        let app = TestApp::spawn(setup()).await;
        let tokens = login(&app, "a").await;
        let app = restart_with_holder(app, "a", Some(holder)).await;
        revoke(&app, &tokens.key).await;
        let app = restart_with_holder(app, "a", None).await;
        assert_eq!(
            app.verify("/a", &tokens.key).await.status(),
            401,
            "{holder:?}"
        );
        assert_eq!(introspect(&app, "a", &tokens.key).await, inactive());
        // The holder's next key works; the old one never again.
        let next = login(&app, "a").await.key;
        assert_ne!(next, tokens.key, "{holder:?}");
        assert_eq!(app.verify("/a", &next).await.status(), 200, "{holder:?}");
    }
}

#[tokio::test]
async fn a_dialect_logout_while_the_holder_is_inactive_stays_done() {
    use crate::helpers::pixyle_tenant;
    let app = TestApp::spawn(Setup::new().tenant("px", pixyle_tenant("px", "/px", ""))).await;
    let (_, login) = app.pixyle_login("/px", "user@px.test", PASSWORD).await;
    let access = login["access_token"].as_str().unwrap();
    let file = |dir: &tempfile::TempDir| dir.path().join("config/tenants/px.toml");
    let user = "email = \"user@px.test\"";
    let dir = app.stop().await;
    let text = std::fs::read_to_string(file(&dir)).unwrap();
    let deactivated = text.replacen(user, &format!("{user}\nactive = false"), 1);
    std::fs::write(file(&dir), &deactivated).unwrap();
    let app = TestApp::start_in(dir).await;
    let response = app
        .client
        .delete(app.url("/px/auth/v1/revoke_access"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (200, json!({"msg": "Access token revoked"}))
    );
    let dir = app.stop().await;
    std::fs::write(file(&dir), text).unwrap();
    let app = TestApp::start_in(dir).await;
    assert_eq!(
        status_json(app.verify("/px", access).await).await,
        (401, json!({"error": "Token has been revoked"}))
    );
}
