//! The admin API (SPEC §12) end to end against a real gateway: every route
//! and status, what ends a user's sessions, persistence across a restart,
//! and Redis replicas seeing a deactivation within a second.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, pixyle_tenant, status_json};

/// The admin token every test gateway here uses (a test value, not a secret).
pub const ADMIN_TOKEN: &str = "test-admin-token-not-a-secret-0123456789";

const P: &str = "/a";
const USERS: &str = "/admin/v1/tenants/a/users";

/// `setup` with the admin API on; the token file lives in the returned dir.
pub fn with_admin(setup: Setup) -> (Setup, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin-token");
    std::fs::write(&path, format!("{ADMIN_TOKEN}\n")).unwrap();
    let line = format!("admin_token_file = {:?}", path.display().to_string());
    (setup.server(&line), dir)
}

/// A gateway with the Pixyle tenant `a` at `/a` and the admin API on.
async fn app() -> (TestApp, tempfile::TempDir) {
    let (setup, token) = with_admin(Setup::new().tenant("a", pixyle_tenant("a", P, "")));
    (TestApp::spawn(setup).await, token)
}

/// Calls the admin API of `app` with the token; answers status and body
/// (`Value::Null` when there is none).
pub async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.admin_address))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    };
    (status, body)
}

/// Creates `email` with [`PASSWORD`]; answers the user.
pub async fn create(app: &TestApp, tenant: &str, email: &str) -> Value {
    let path = format!("/admin/v1/tenants/{tenant}/users");
    let body = json!({ "email": email, "password": PASSWORD, "roles": ["user"] });
    let (status, user) = admin(app, Method::POST, &path, Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user
}

fn error_code(body: &Value) -> &str {
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "message"], "{body}");
    body["error"].as_str().unwrap()
}

async fn access_token(app: &TestApp, email: &str, password: &str) -> String {
    let (status, body) = app.pixyle_login(P, email, password).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_token_configured_the_admin_api_is_404() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", P, ""))).await;
    let (status, _) = admin(&app, Method::GET, USERS, None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, Method::GET, "/admin/v1/openapi.json", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_says_how_to_authenticate() {
    let (app, _token) = app().await;
    let url = format!("{}{USERS}", app.admin_address);
    for request in [
        app.client.get(&url),
        app.client.get(&url).bearer_auth("wrong-token"),
        app.client.get(&url).basic_auth("admin", Some(ADMIN_TOKEN)),
        app.client
            .post(&url)
            .json(&json!({"email": "x@a.test", "password": "pw"})),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"polyauth-admin\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "unauthorized");
    }
    // Nothing was created by the refused POST.
    let (status, body) = admin(&app, Method::GET, &format!("{USERS}?email=x@a.test"), None).await;
    assert_eq!((status, body["users"].as_array().unwrap().len()), (200, 0));
}

#[tokio::test]
async fn a_user_is_created_shown_found_and_listed_never_with_its_hash() {
    let (app, _token) = app().await;
    let body = json!({
        "email": " Ada@Example.TEST ", "password": PASSWORD, "roles": ["user", "editor"],
        "email_verified": true, "company_id": "acme",
    });
    let response = app
        .client
        .post(format!("{}{USERS}", app.admin_address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = response.json().await.unwrap();
    let id = user["id"].as_str().unwrap();
    assert_eq!(location, format!("{USERS}/{id}"));
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "email",
            "roles",
            "active",
            "email_verified",
            "company_id",
            "created_at",
            "last_login_at",
            "hash_scheme"
        ]
    );
    assert_eq!(user["email"], "ada@example.test");
    assert_eq!(user["roles"], json!(["user", "editor"]));
    assert_eq!(user["active"], true);
    assert_eq!(user["company_id"], "acme");
    assert_eq!(user["last_login_at"], Value::Null);
    assert_eq!(user["hash_scheme"], "argon2id");
    assert!(
        !user.to_string().contains("$argon2"),
        "no hash shown: {user}"
    );

    let (status, shown) = admin(&app, Method::GET, &location, None).await;
    assert_eq!((status, &shown), (200, &user));
    let (status, found) = admin(
        &app,
        Method::GET,
        &format!("{USERS}?email=ADA%40example.test"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found, json!({ "users": [user], "next_cursor": null }));
    let (status, none) = admin(
        &app,
        Method::GET,
        &format!("{USERS}?email=nobody%40a.test"),
        None,
    )
    .await;
    assert_eq!(
        (status, none),
        (200, json!({ "users": [], "next_cursor": null }))
    );
    // A hash from elsewhere is kept as it is and shown only by its scheme.
    let django = "pbkdf2_sha256$1000$c2FsdHNhbHQ$JDN8rMmyUBmvPSw4tGs6ez8yjCvqQWcknV06iRU2mXA=";
    let (status, user) = admin(
        &app,
        Method::POST,
        USERS,
        Some(json!({"email": "dj@a.test", "password_hash": django})),
    )
    .await;
    assert_eq!(
        (status, user["hash_scheme"].as_str()),
        (201, Some("pbkdf2_sha256"))
    );
}

#[tokio::test]
async fn refused_creates_have_their_status_and_code() {
    let (app, _token) = app().await;
    create(&app, "a", "taken@a.test").await;
    let bcrypt_cost_31 = "$2b$31$abcdefghijklmnopqrstuuJHLPpZfR0WqxbW6ENK1UzoFx6mX9cNm";
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"email": "TAKEN@a.test", "password": "pw"}),
            409,
            "conflict",
        ),
        // A user of the tenant's file.
        (
            json!({"email": "user@a.test", "password": "pw"}),
            409,
            "conflict",
        ),
        (json!({"email": "x@a.test"}), 422, "invalid_request"),
        (
            json!({"email": "x@a.test", "password": "pw", "password_hash": bcrypt_cost_31}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": "x@a.test", "password_hash": bcrypt_cost_31}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": "x@a.test", "password_hash": "$1$md5$crypt"}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": "not-an-email", "password": "pw"}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": "x@a.test", "password": ""}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": "x@a.test", "password": "pw", "admin": true}),
            422,
            "invalid_request",
        ),
        (
            json!({"email": 5, "password": "pw"}),
            422,
            "invalid_request",
        ),
        (json!(["x@a.test"]), 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = admin(&app, Method::POST, USERS, Some(body.clone())).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{body} → {answer}"
        );
        assert!(
            !answer.to_string().contains("$2b$31"),
            "no hash echoed: {answer}"
        );
    }
    let url = format!("{}{USERS}", app.admin_address);
    let raw = |body: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, body) = status_json(raw("{\"email\":").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (400, "malformed_request"));
    let big = format!(
        "{{\"email\":\"{}@a.test\",\"password\":\"pw\"}}",
        "x".repeat(70_000)
    );
    let response = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));
    let body = json!({"email": "x@a.test", "password": "pw"});
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/admin/v1/tenants/nope/users",
        Some(body),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (404, "not_found"));
    let (status, answer) = admin(&app, Method::PUT, USERS, None).await;
    assert_eq!((status, error_code(&answer)), (405, "method_not_allowed"));
    let (status, answer) = admin(&app, Method::GET, "/admin/v1/nothing", None).await;
    assert_eq!((status, error_code(&answer)), (404, "not_found"));
}

#[tokio::test]
async fn unknown_users_and_bad_queries_are_404_and_422() {
    let (app, _token) = app().await;
    for (method, path) in [
        (Method::GET, format!("{USERS}/nobody")),
        (Method::PATCH, format!("{USERS}/nobody")),
        (Method::DELETE, format!("{USERS}/nobody")),
        (Method::POST, format!("{USERS}/nobody/logout")),
        (Method::DELETE, format!("{USERS}/nobody/lockout")),
        (
            Method::GET,
            "/admin/v1/tenants/nope/users/nobody".to_owned(),
        ),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"active": false}));
        let (status, answer) = admin(&app, method.clone(), &path, body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=%%%",
        "cursor=not*base64",
    ] {
        let (status, answer) = admin(&app, Method::GET, &format!("{USERS}?{query}"), None).await;
        assert_eq!(
            (status, error_code(&answer)),
            (422, "invalid_request"),
            "{query}"
        );
    }
    let user = create(&app, "a", "p@a.test").await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    for body in [
        json!({"active": "no"}),
        json!({"email": "new@a.test"}),
        json!({"roles": [""]}),
    ] {
        let (status, answer) = admin(&app, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(
            (status, error_code(&answer)),
            (422, "invalid_request"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn pages_come_in_id_order_with_a_cursor_until_the_last() {
    let (app, _token) = app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = create(&app, "a", &format!("u{n}@a.test")).await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let (mut seen, mut pages, mut query) = (Vec::new(), 0, "limit=2".to_owned());
    loop {
        let (status, page) = admin(&app, Method::GET, &format!("{USERS}?{query}"), None).await;
        assert_eq!(status, 200);
        pages += 1;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((seen, pages), (ids, 3));
}

#[tokio::test]
async fn a_created_user_logs_in_and_its_login_time_is_kept() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "Login@a.test").await;
    let token = access_token(&app, "LOGIN@a.test", PASSWORD).await;
    assert_eq!(app.verify(P, &token).await.status(), 200);
    let (status, body) = app.pixyle_login(P, "login@a.test", "wrong").await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Invalid credentials"}))
    );
    let (status, body) = app.pixyle_login(P, "nobody@a.test", PASSWORD).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Invalid credentials"}))
    );
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let (_, shown) = admin(&app, Method::GET, &path, None).await;
    let at = shown["last_login_at"].as_u64().expect("a login time");
    assert!(at.abs_diff(polyauth::store::unix_now()) < 60);
}

#[tokio::test]
async fn deactivating_ends_its_sessions_and_refuses_its_logins_until_reactivated() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "d@a.test").await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let (_, login) = app.pixyle_login(P, "d@a.test", PASSWORD).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let (status, changed) = admin(&app, Method::PATCH, &path, Some(json!({"active": false}))).await;
    assert_eq!((status, &changed["active"]), (200, &json!(false)));
    assert_eq!(app.verify(P, &access).await.status(), 401, "at once");
    let refreshed = app
        .client
        .post(app.url("/a/auth/v1/refresh"))
        .bearer_auth(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 401);
    let (status, body) = app.pixyle_login(P, "d@a.test", PASSWORD).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Account is not activated"}))
    );

    let (status, _) = admin(&app, Method::PATCH, &path, Some(json!({"active": true}))).await;
    assert_eq!(status, 200);
    // Its old session stays ended; a new login starts a new one.
    assert_eq!(app.verify(P, &access).await.status(), 401);
    let access = access_token(&app, "d@a.test", PASSWORD).await;
    assert_eq!(app.verify(P, &access).await.status(), 200);
}

#[tokio::test]
async fn a_new_password_ends_its_sessions_and_replaces_the_old_one() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "pw@a.test").await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let access = access_token(&app, "pw@a.test", PASSWORD).await;
    let change = json!({"password": "a brand new passphrase"});
    let (status, changed) = admin(&app, Method::PATCH, &path, Some(change)).await;
    assert_eq!((status, &changed["hash_scheme"]), (200, &json!("argon2id")));
    assert_eq!(app.verify(P, &access).await.status(), 401);
    let (status, _) = app.pixyle_login(P, "pw@a.test", PASSWORD).await;
    assert_eq!(status, 401);
    let access = access_token(&app, "pw@a.test", "a brand new passphrase").await;
    assert_eq!(app.verify(P, &access).await.status(), 200);
}

#[tokio::test]
async fn role_changes_reach_the_next_refresh_and_leave_sessions_alone() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "r@a.test").await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let (_, login) = app.pixyle_login(P, "r@a.test", PASSWORD).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let change = json!({"roles": ["admin"], "company_id": "acme", "email_verified": true});
    let (status, changed) = admin(&app, Method::PATCH, &path, Some(change)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &changed["roles"],
            &changed["company_id"],
            &changed["email_verified"]
        ),
        (&json!(["admin"]), &json!("acme"), &json!(true))
    );
    assert_eq!(app.verify(P, &access).await.status(), 200, "still live");
    let refreshed: Value = app
        .client
        .post(app.url("/a/auth/v1/refresh"))
        .bearer_auth(&refresh)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = refreshed["access_token"].as_str().unwrap();
    let claims = claims_of(fresh);
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["cid"], "acme");
    // `null` removes the company; absent fields stay.
    let (_, changed) = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"company_id": null})),
    )
    .await;
    assert_eq!(
        (&changed["company_id"], &changed["roles"]),
        (&Value::Null, &json!(["admin"]))
    );
}

/// The claims of a JWT, unverified.
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// PayHub shows an API key on login: a directory user's key dies with its
/// sessions.
#[tokio::test]
async fn logout_everywhere_and_delete_end_every_session_and_the_api_key() {
    let tenant = "id = \"ph\"\ndialect = \"payhub\"\npath_prefix = \"/ph\"\nissuer = \"iss\"\naudience = \"aud\"\n";
    let (setup, _token) = with_admin(Setup::new().tenant("ph", tenant.to_owned()));
    let app = TestApp::spawn(setup).await;
    let user = create(&app, "ph", "m@ph.test").await;
    let path = format!(
        "/admin/v1/tenants/ph/users/{}",
        user["id"].as_str().unwrap()
    );
    let login = || async {
        let credentials = json!({"emailId": "m@ph.test", "password": PASSWORD});
        let (_, body) = status_json(app.post_json("/ph/user/login", &credentials).await).await;
        assert_eq!(body["responseCode"], 200, "{body}");
        let data = &body["responseData"];
        (
            data["token"].as_str().unwrap().to_owned(),
            data["apiKey"].as_str().unwrap().to_owned(),
        )
    };
    let verify = |credential: String| {
        let app = &app;
        async move {
            let url = app.url("/ph/_polyauth/verify");
            let by_key = !credential.contains('.');
            let header = if by_key { "apiKey" } else { "token" };
            let request = app.client.get(url).header(header, credential);
            request.send().await.unwrap().status().as_u16()
        }
    };
    let (first, key) = login().await;
    let (second, same_key) = login().await;
    assert_eq!(key, same_key);
    for credential in [&first, &second, &key] {
        assert_eq!(verify(credential.clone()).await, 200);
    }
    let (status, body) = admin(&app, Method::POST, &format!("{path}/logout"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    for credential in [&first, &second, &key] {
        assert_eq!(
            verify(credential.clone()).await,
            401,
            "logged out everywhere"
        );
    }
    // It logs in again, with a key of its own again.
    let (third, new_key) = login().await;
    assert_ne!(new_key, key);
    assert_eq!(verify(third.clone()).await, 200);
    assert_eq!(verify(new_key.clone()).await, 200);
    let (status, _) = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(verify(third).await, 401);
    assert_eq!(verify(new_key).await, 401);
    let (status, _) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    // Its email is free again.
    create(&app, "ph", "m@ph.test").await;
}

#[tokio::test]
async fn clearing_a_lockout_lets_the_account_in_and_keeps_the_address_counted() {
    let lockout = "[lockout]\nmax_failures = 3\nlock_for = \"10m\"\n";
    let (setup, _token) = with_admin(Setup::new().tenant("a", pixyle_tenant("a", P, lockout)));
    let app = TestApp::spawn(setup).await;
    let user = create(&app, "a", "l@a.test").await;
    // The gateway trusts 127.0.0.1 to name the client address.
    let login = |from: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let body = json!({"email": "l@a.test", "password": password});
            app.client
                .post(app.url("/a/auth/v1/token"))
                .header("x-forwarded-for", from)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(login("203.0.113.1", "wrong").await, 401);
    }
    assert_eq!(
        login("203.0.113.2", PASSWORD).await,
        429,
        "the account is locked"
    );
    let path = format!("{USERS}/{}/lockout", user["id"].as_str().unwrap());
    let (status, body) = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(login("203.0.113.2", PASSWORD).await, 200);
    assert_eq!(
        login("203.0.113.1", PASSWORD).await,
        429,
        "the address stays locked"
    );
}

#[tokio::test]
async fn directory_users_survive_a_restart() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "kept@a.test").await;
    let app = TestApp::start_in(app.stop().await).await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let (status, shown) = admin(&app, Method::GET, &path, None).await;
    assert_eq!((status, &shown["email"]), (200, &json!("kept@a.test")));
    let token = access_token(&app, "kept@a.test", PASSWORD).await;
    assert_eq!(app.verify(P, &token).await.status(), 200);
}

#[tokio::test]
async fn a_file_user_and_a_directory_user_with_one_email_do_not_start() {
    let (app, _token) = app().await;
    create(&app, "a", "both@a.test").await;
    let dir = app.stop().await;
    let tenant = pixyle_tenant("a", P, "")
        + &format!(
            "\n[[users]]\nemail = \"Both@a.test\"\npassword_hash = \"{}\"\n",
            password_hash(PASSWORD)
        );
    std::fs::write(dir.path().join("config/tenants/a.toml"), tenant).unwrap();
    let loaded = polyauth::config::load(&dir.path().join("config")).unwrap();
    let listen = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let Err(error) = polyauth::Application::build_with_listeners(loaded, listen(), listen()).await
    else {
        panic!("started with one email in both");
    };
    let message = format!("{error:#}");
    assert!(message.contains("both@a.test"), "{message}");
}

#[tokio::test]
async fn a_file_user_with_a_directory_users_id_does_not_start() {
    let (app, _token) = app().await;
    let body = json!({"email": "dir@a.test", "password": PASSWORD, "id": "shared-id"});
    let (status, _) = admin(&app, Method::POST, USERS, Some(body)).await;
    assert_eq!(status, 201);
    let dir = app.stop().await;
    let tenant = pixyle_tenant("a", P, "")
        + &format!(
            "\n[[users]]\nid = \"shared-id\"\nemail = \"file@a.test\"\npassword_hash = \"{}\"\n",
            password_hash(PASSWORD)
        );
    std::fs::write(dir.path().join("config/tenants/a.toml"), tenant).unwrap();
    let loaded = polyauth::config::load(&dir.path().join("config")).unwrap();
    let listen = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let Err(error) = polyauth::Application::build_with_listeners(loaded, listen(), listen()).await
    else {
        panic!("started with one id for two users");
    };
    let message = format!("{error:#}");
    assert!(message.contains("shared-id"), "{message}");
}

/// Changes that arrive together are all kept: none writes back what it
/// read over another's change.
#[tokio::test]
async fn concurrent_changes_do_not_undo_each_other() {
    let (app, _token) = app().await;
    let user = create(&app, "a", "busy@a.test").await;
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let password = json!({"password": "the one that must stick"});
    let mut changes = vec![admin(&app, Method::PATCH, &path, Some(password))];
    for n in 0..6 {
        let roles = json!({"roles": [format!("role-{n}")]});
        changes.push(admin(&app, Method::PATCH, &path, Some(roles)));
    }
    for (status, body) in futures_util::future::join_all(changes).await {
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = app.pixyle_login(P, "busy@a.test", PASSWORD).await;
    assert_eq!(status, 401, "the old password is gone");
    access_token(&app, "busy@a.test", "the one that must stick").await;
}

#[tokio::test]
async fn the_admin_document_is_served_as_committed() {
    let (app, _token) = app().await;
    let served = app
        .client
        .get(format!("{}/admin/v1/openapi.json", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    let served = served.text().await.unwrap();
    assert_eq!(served, include_str!("../../openapi/admin.json"));
}

#[tokio::test]
async fn an_import_creates_leaves_and_refuses_lines_and_twice_is_once() {
    let (app, _token) = app().await;
    create(&app, "a", "there@a.test").await;
    let hash = password_hash(PASSWORD);
    let lines = [
        json!({"email": "i1@a.test", "password_hash": hash, "roles": ["user"]}).to_string(),
        json!({"email": "THERE@a.test", "password_hash": hash}).to_string(),
        "not json".to_owned(),
        json!({"email": "i2@a.test", "password": PASSWORD}).to_string(),
        String::new(),
        json!({"email": "i3@a.test", "password_hash": "$1$md5$crypt"}).to_string(),
        json!({"email": "user@a.test", "password_hash": hash}).to_string(),
        json!({"email": "i4@a.test", "password_hash": hash, "id": "vendor-4"}).to_string(),
    ];
    let body = lines.join("\n");
    let import = || async {
        let response = app
            .client
            .post(format!("{}{USERS}/import", app.admin_address))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        status_json(response).await
    };
    let (status, report) = import().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["imported"],
            &report["unchanged"],
            &report["refused"]
        ),
        (&json!(2), &json!(1), &json!(4)),
        "{report}"
    );
    let refused: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, [3, 4, 6, 7]);
    assert!(!report.to_string().contains(PASSWORD), "{report}");
    let (status, again) = import().await;
    assert_eq!(status, 200);
    assert_eq!(
        (&again["imported"], &again["unchanged"], &again["refused"]),
        (&json!(0), &json!(3), &json!(4)),
        "{again}"
    );
    let token = access_token(&app, "i1@a.test", PASSWORD).await;
    assert_eq!(app.verify(P, &token).await.status(), 200);
    let (status, kept) = admin(&app, Method::GET, &format!("{USERS}/vendor-4"), None).await;
    assert_eq!((status, &kept["email"]), (200, &json!("i4@a.test")));
}

/// A delete that stopped half way (the user gone, its sessions not yet
/// ended) is finished by its retry, which answers 404.
#[tokio::test]
async fn deleting_a_user_already_gone_still_ends_its_sessions() {
    use polyauth::store::Users;
    let redis = crate::redis_server::RedisServer::start();
    let (setup, _token) = with_admin(
        Setup::new()
            .tenant("a", pixyle_tenant("a", P, ""))
            .redis(&redis.url(), "half-deleted"),
    );
    let app = TestApp::spawn(setup).await;
    let user = create(&app, "a", "half@a.test").await;
    let id = user["id"].as_str().unwrap();
    let token = access_token(&app, "half@a.test", PASSWORD).await;
    // Only the record goes, as if the gateway had died right after.
    let store = crate::redis::connect(&redis, "half-deleted").await;
    assert!(store.user_delete("a", id).await.unwrap());
    assert_eq!(
        app.verify(P, &token).await.status(),
        200,
        "the token outlives its user so far"
    );
    let (status, _) = admin(&app, Method::DELETE, &format!("{USERS}/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(app.verify(P, &token).await.status(), 401);
}

/// Two replicas on one Redis: a deactivation on one is refused by the
/// other's verify within a second.
#[tokio::test]
async fn a_replica_refuses_a_deactivated_users_token_within_a_second() {
    let redis = crate::redis_server::RedisServer::start();
    let setup = || {
        with_admin(
            Setup::new()
                .tenant("a", pixyle_tenant("a", P, ""))
                .redis(&redis.url(), "admin-replicas"),
        )
    };
    let ((one, _t1), (two, _t2)) = (setup(), setup());
    let (one, two) = (TestApp::spawn(one).await, TestApp::spawn(two).await);
    let user = create(&one, "a", "rep@a.test").await;
    let token = access_token(&two, "rep@a.test", PASSWORD).await;
    assert_eq!(two.verify(P, &token).await.status(), 200);
    assert_eq!(one.verify(P, &token).await.status(), 200);
    let path = format!("{USERS}/{}", user["id"].as_str().unwrap());
    let (status, _) = admin(&one, Method::PATCH, &path, Some(json!({"active": false}))).await;
    assert_eq!(status, 200);
    let changed = Instant::now();
    loop {
        if two.verify(P, &token).await.status() == 401 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the other replica still honours the token after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = two.pixyle_login(P, "rep@a.test", PASSWORD).await;
    assert_eq!(status, 401);
}
