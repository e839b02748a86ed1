//! The PayHub dialect (SPEC §7.3): every answer is HTTP 200, the outcome is
//! the body's `responseCode`.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, status_json};

fn tenant(extra: &str) -> String {
    format!(
        "id = \"ph\"\ndialect = \"payhub\"\npath_prefix = \"/ph\"\nissuer = \"iss\"\naudience = \"aud\"\n{extra}\n\
         [[users]]\nemail = \"merchant@ph.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    )
}

async fn app_with(extra: &str) -> TestApp {
    TestApp::spawn(Setup::new().tenant("ph", tenant(extra))).await
}

async fn login(app: &TestApp, body: &Value) -> Value {
    let (status, body) = status_json(app.post_json("/ph/user/login", body).await).await;
    assert_eq!(status, 200, "PayHub always answers 200: {body}");
    body
}

fn refusal(code: u16, message: &str) -> Value {
    json!({ "responseCode": code, "responseMessage": message })
}

#[tokio::test]
async fn login_answers_token_email_api_key_and_expiry_string() {
    let app = app_with("").await;
    let body = login(
        &app,
        &json!({"emailId": "Merchant@PH.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(body["responseCode"], 200);
    assert_eq!(body["responseMessage"], "Success");
    let data = body["responseData"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["token", "emailId", "apiKey", "expiry"]);
    assert_eq!(data["emailId"], "merchant@ph.test");
    assert_eq!(data["expiry"], "3600");
    assert!(data["apiKey"].as_str().unwrap().len() >= 43);
}

#[tokio::test]
async fn the_same_api_key_comes_back_on_every_login_and_after_a_restart() {
    let app = app_with("").await;
    let credentials = json!({"emailId": "merchant@ph.test", "password": PASSWORD});
    let first = login(&app, &credentials).await["responseData"]["apiKey"].clone();
    let second = login(&app, &credentials).await["responseData"]["apiKey"].clone();
    assert_eq!(first, second);
    let app = TestApp::start_in(app.stop().await).await;
    let third = login(&app, &credentials).await["responseData"]["apiKey"].clone();
    assert_eq!(first, third);
    let dir = app.stop().await;
    let stored = std::fs::read(dir.path().join("data/polyauth.redb")).unwrap();
    let key = first.as_str().unwrap();
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key itself is stored"
    );
}

#[tokio::test]
async fn refusals_are_http_200_with_their_response_code() {
    let app = app_with("").await;
    let cases = [
        (
            json!({"emailId": "merchant@ph.test", "password": "wrong"}),
            refusal(405, "Please provide valid password"),
        ),
        (
            json!({"emailId": "nobody@ph.test", "password": PASSWORD}),
            refusal(404, "Please provide valid user details"),
        ),
        (
            json!({"emailId": "merchant@ph.test"}),
            refusal(400, "Please provide valid details."),
        ),
        (
            json!({"password": PASSWORD}),
            refusal(400, "Please provide valid details."),
        ),
        (
            json!({"emailId": 7, "password": PASSWORD}),
            refusal(400, "Please provide valid details."),
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(login(&app, &request).await, expected, "{request}");
    }
}

#[tokio::test]
async fn lockout_is_a_429_response_code() {
    let app = app_with("[lockout]\nmax_failures = 2").await;
    for _ in 0..2 {
        login(
            &app,
            &json!({"emailId": "merchant@ph.test", "password": "wrong"}),
        )
        .await;
    }
    let body = login(
        &app,
        &json!({"emailId": "merchant@ph.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        body,
        refusal(429, "Too many attempts. Please try after some time.")
    );
}

#[tokio::test]
async fn uniform_login_errors_answer_unknown_users_as_wrong_passwords() {
    let app = app_with("uniform_login_errors = true").await;
    let body = login(
        &app,
        &json!({"emailId": "nobody@ph.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(body, refusal(405, "Please provide valid password"));
}

#[tokio::test]
async fn the_body_is_json_whatever_the_content_type_and_urlencoded_works() {
    let app = app_with("").await;
    let body = json!({"emailId": "merchant@ph.test", "password": PASSWORD}).to_string();
    let url = app.url("/ph/user/login");
    let requests = [
        app.client
            .post(&url)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body.clone()),
        app.client.post(&url).body(body.clone()),
        app.client
            .post(&url)
            .header("content-type", "application/xml")
            .body(body),
        app.client
            .post(&url)
            .form(&[("emailId", "merchant@ph.test"), ("password", PASSWORD)]),
        // curl -d: a JSON body labelled as a form.
        app.client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(json!({"emailId": "merchant@ph.test", "password": PASSWORD}).to_string()),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!(
            (status, body["responseCode"].clone()),
            (200, json!(200)),
            "request {i}"
        );
    }
}

#[tokio::test]
async fn bad_bodies_are_400_or_413_response_codes_never_5xx() {
    let app = app_with("").await;
    let url = app.url("/ph/user/login");
    let details = refusal(400, "Please provide valid details.");
    let requests = [
        app.client.post(&url),
        app.client.post(&url).body("{not json"),
        app.client.post(&url).body("[1,2]"),
        app.client.post(&url).body(vec![0xff, 0x00]),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        assert_eq!(
            status_json(request.send().await.unwrap()).await,
            (200, details.clone()),
            "request {i}"
        );
    }
    let huge = json!({"emailId": "x".repeat(1 << 20), "password": "p"});
    assert_eq!(
        status_json(app.post_json("/ph/user/login", &huge).await).await,
        (200, refusal(413, "Request body too large"))
    );
}

#[tokio::test]
async fn service_calls_verify_by_token_or_api_key_with_real_statuses() {
    let app = app_with("").await;
    let data = login(
        &app,
        &json!({"emailId": "merchant@ph.test", "password": PASSWORD}),
    )
    .await["responseData"]
        .clone();
    let verify = |headers: &[(&str, &str)]| {
        let mut request = app.client.get(app.url("/ph/_polyauth/verify"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let token = data["token"].as_str().unwrap();
    let key = data["apiKey"].as_str().unwrap();
    for headers in [[("token", token)], [("apiKey", key)]] {
        let response = verify(&headers).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-auth-email"], "merchant@ph.test");
    }
    assert_eq!(
        status_json(verify(&[]).await.unwrap()).await,
        (
            401,
            refusal(403, "Please provide a valid authorization details")
        )
    );
    assert_eq!(
        status_json(verify(&[("token", "forged")]).await.unwrap()).await,
        (401, refusal(403, "invalid token"))
    );
    assert_eq!(
        status_json(verify(&[("apiKey", "pa_forged")]).await.unwrap()).await,
        (401, refusal(403, "invalid token"))
    );
}

/// The dashboard's sign-in as its browser code does it: fetch with a JSON
/// string body and no Content-Type of its own, then read `responseCode`
/// only; it never looks at the HTTP status.
#[tokio::test]
async fn a_dashboard_sign_in_replayed_as_the_client_sends_it() {
    let app = TestApp::spawn(Setup::new().tenant("ph", tenant(""))).await;
    let sign_in = |email: &str, password: &str| {
        let body = format!(r#"{{"emailId":"{email}","password":"{password}"}}"#);
        app.client
            .post(app.url("/ph/user/login"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("accept", "application/json, text/plain, */*")
            .body(body)
            .send()
    };
    let response: Value = sign_in("merchant@ph.test", PASSWORD)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match response["responseCode"].as_u64() {
        Some(200) => {
            let token = response["responseData"]["token"].as_str().unwrap();
            let key = response["responseData"]["apiKey"].as_str().unwrap();
            assert!(!token.is_empty() && !key.is_empty());
        }
        other => panic!("sign-in refused: {other:?} {response}"),
    }
    let refused: Value = sign_in("merchant@ph.test", "typo")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["responseCode"], 405);
    assert_eq!(refused["responseMessage"], "Please provide valid password");
}

#[tokio::test]
async fn a_configured_secret_derives_keys_and_stays_out_of_the_store() {
    let secret = "a-demo-derivation-secret-of-forty-bytes!";
    let extra = |dir: &std::path::Path| {
        let file = dir.join("api-key.secret");
        std::fs::write(&file, secret).unwrap();
        format!("api_key_secret_file = {:?}", file.display().to_string())
    };
    let credentials = json!({"emailId": "merchant@ph.test", "password": PASSWORD});
    let mut keys = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        Setup::new()
            .tenant("ph", tenant(&extra(dir.path())))
            .write(dir.path());
        let app = TestApp::start_in(dir).await;
        keys.push(login(&app, &credentials).await["responseData"]["apiKey"].clone());
        let dir = app.stop().await;
        let stored = std::fs::read(dir.path().join("data/polyauth.redb")).unwrap();
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // Two gateways that share nothing but the configured secret agree.
    assert_eq!(keys[0], keys[1]);
}

/// Forward-auth checks every credential it is given: a valid token does not
/// carry a garbage or foreign API key through.
#[tokio::test]
async fn verify_refuses_a_valid_token_sent_with_a_bad_or_foreign_api_key() {
    let two_users = format!(
        "[[users]]\nemail = \"other@ph.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    let app = app_with(&two_users).await;
    let data = |email: &str| {
        let body = json!({"emailId": email, "password": PASSWORD});
        let app = &app;
        async move { login(app, &body).await["responseData"].clone() }
    };
    let merchant = data("merchant@ph.test").await;
    let other = data("other@ph.test").await;
    let verify = |token: &str, key: &str| {
        app.client
            .get(app.url("/ph/_polyauth/verify"))
            .header("token", token)
            .header("apiKey", key)
            .send()
    };
    let token = merchant["token"].as_str().unwrap();
    let own_key = merchant["apiKey"].as_str().unwrap();
    let foreign_key = other["apiKey"].as_str().unwrap();
    let response = verify(token, own_key).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "both credentials are the merchant's"
    );
    for key in ["garbage", "pa_forged", foreign_key] {
        let response = verify(token, key).await.unwrap();
        assert_eq!(response.status(), 401, "{key}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            refusal(403, "invalid token")
        );
    }
}

#[tokio::test]
async fn a_browser_form_data_login_is_multipart_and_works() {
    let app = app_with("").await;
    // What `fetch(url, { method: "POST", body: new FormData(form) })` sends.
    let form = reqwest::multipart::Form::new()
        .text("emailId", "Merchant@PH.test")
        .text("password", PASSWORD);
    let response = app
        .client
        .post(app.url("/ph/user/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, &body["responseCode"]),
        (200, &json!(200)),
        "{body}"
    );
    assert_eq!(body["responseData"]["emailId"], "merchant@ph.test");
    let token = body["responseData"]["token"].as_str().unwrap();
    let verified = app
        .client
        .get(app.url("/ph/_polyauth/verify"))
        .header("token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);

    let wrong = reqwest::multipart::Form::new()
        .text("emailId", "merchant@ph.test")
        .text("password", "nope");
    let response = app
        .client
        .post(app.url("/ph/user/login"))
        .multipart(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (200, refusal(405, "Please provide valid password"))
    );
    let missing = reqwest::multipart::Form::new().text("emailId", "merchant@ph.test");
    let response = app
        .client
        .post(app.url("/ph/user/login"))
        .multipart(missing)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (200, refusal(400, "Please provide valid details."))
    );
}

/// A credential header sent twice, unreadable or empty is refused: an
/// upstream might read the copy that was not checked.
#[tokio::test]
async fn verify_refuses_repeated_unreadable_or_empty_credential_headers() {
    let app = app_with("").await;
    let data = login(
        &app,
        &json!({"emailId": "merchant@ph.test", "password": PASSWORD}),
    )
    .await["responseData"]
        .clone();
    let token = data["token"].as_str().unwrap();
    let key = data["apiKey"].as_str().unwrap();
    let verify = |headers: Vec<(&'static str, reqwest::header::HeaderValue)>| {
        let mut request = app.client.get(app.url("/ph/_polyauth/verify"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let text = |v: &str| reqwest::header::HeaderValue::from_str(v).unwrap();
    let unreadable = reqwest::header::HeaderValue::from_bytes(b"\xff\xfegarbage").unwrap();
    for headers in [
        vec![
            ("token", text(token)),
            ("apiKey", text(key)),
            ("apiKey", text("garbage")),
        ],
        vec![("token", text(token)), ("token", text("garbage"))],
        vec![("token", text(token)), ("token", text(token))],
        vec![("token", text(token)), ("apiKey", unreadable)],
        vec![("token", text(token)), ("apiKey", text(""))],
    ] {
        let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
        let response = verify(headers).await.unwrap();
        assert_eq!(response.status(), 401, "{names:?}");
    }
    let response = verify(vec![("token", text(token)), ("apiKey", text(key))])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
