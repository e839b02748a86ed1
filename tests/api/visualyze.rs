//! The Visualyze dialect, exact to the wire: every status and body of SPEC
//! §7.1, with the HTTP status always equal to the body's `status`.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, status_json};

const P: &str = "/vz";

/// A Visualyze tenant with an active user, an inactive one and an
/// unverified demo account, all with [`PASSWORD`]; `extra` is appended verbatim.
fn visualyze_tenant(id: &str, prefix: &str, extra: &str) -> String {
    let hash = password_hash(PASSWORD);
    format!(
        r#"
id = "{id}"
dialect = "visualyze"
path_prefix = "{prefix}"
issuer = "http://polyauth.test{prefix}"
audience = "{id}-api"
{extra}

[[users]]
email = "user@{id}.test"
password_hash = "{hash}"
roles = ["user"]

[[users]]
email = "inactive@{id}.test"
password_hash = "{hash}"
active = false

[[users]]
email = "demo@{id}.test"
password_hash = "{hash}"
demo = true
email_verified = false
"#
    )
}

async fn app_with(extra: &str) -> TestApp {
    TestApp::spawn(Setup::new().tenant("vz", visualyze_tenant("vz", P, extra))).await
}

async fn app() -> TestApp {
    app_with("").await
}

fn url(app: &TestApp, version: &str, route: &str) -> String {
    app.url(&format!("{P}/api/{version}/user/{route}"))
}

/// The envelope every answer has, with its status in the body.
fn envelope(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({"data": {}, "message": message, "status": status}),
    )
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Multipart,
    Form,
    Json,
}

const ENCODINGS: [Encoding; 3] = [Encoding::Multipart, Encoding::Form, Encoding::Json];

/// A login on `/api/v1/user/login` sending `fields` in `encoding`.
async fn login_as(app: &TestApp, encoding: Encoding, fields: &[(&str, &str)]) -> (u16, Value) {
    let request = app.client.post(url(app, "v1", "login"));
    let request = match encoding {
        Encoding::Multipart => {
            let form = fields.iter().fold(Form::new(), |form, (k, v)| {
                form.text(k.to_string(), v.to_string())
            });
            request.multipart(form)
        }
        Encoding::Form => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap()),
        Encoding::Json => {
            let object: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            request.json(&object)
        }
    };
    status_json(request.send().await.unwrap()).await
}

/// Logs `user@vz.test` in; returns the access token.
async fn access_token(app: &TestApp) -> String {
    let (status, body) = login_as(
        app,
        Encoding::Multipart,
        &[("email", "user@vz.test"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_in_each_encoding_answers_the_token_envelope() {
    let app = app().await;
    for encoding in ENCODINGS {
        let (status, body) = login_as(
            &app,
            encoding,
            &[("email", "user@vz.test"), ("password", PASSWORD)],
        )
        .await;
        let token = body["data"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(token.split('.').count(), 3, "{encoding:?}: {body}");
        assert_eq!(
            (status, &body),
            (
                200,
                &json!({"data": {"token": token}, "message": "successfully generated access token", "status": 200})
            ),
            "{encoding:?}"
        );
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["data", "message", "status"]);
        // Access tokens live one hour.
        let claims = crate::tokens::claims(&token);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        assert_eq!(app.verify(P, &token).await.status(), 200, "{encoding:?}");
    }
}

#[tokio::test]
async fn login_refusals_are_401_invalid_credentials_in_each_encoding() {
    // Nine failures from one address: keep the lockout out of the way.
    let app = app_with("[lockout]\nmax_failures = 50").await;
    let invalid = envelope(401, "Invalid Credentials!");
    for encoding in ENCODINGS {
        for (email, password) in [
            ("user@vz.test", "wrong"),
            ("nobody@vz.test", PASSWORD),
            ("inactive@vz.test", PASSWORD),
        ] {
            assert_eq!(
                login_as(&app, encoding, &[("email", email), ("password", password)]).await,
                invalid,
                "{encoding:?} {email}"
            );
        }
    }
    assert_eq!(
        login_as(
            &app,
            Encoding::Json,
            &[("email", "demo@vz.test"), ("password", PASSWORD)]
        )
        .await,
        envelope(403, "Email is not verified")
    );
}

#[tokio::test]
async fn missing_fields_are_400_saying_what_is_missing() {
    let app = app().await;
    for encoding in ENCODINGS {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("email", "user@vz.test")], "password is required"),
            (&[("password", PASSWORD)], "email is required"),
            (&[("other", "x")], "email is required"),
            (
                &[("mail", "user@vz.test"), ("password", PASSWORD)],
                "email is required",
            ),
        ];
        for (fields, message) in cases {
            assert_eq!(
                login_as(&app, encoding, fields).await,
                envelope(400, message),
                "{encoding:?} {fields:?}"
            );
        }
    }
    // Unknown fields beside the two are ignored.
    let (status, _) = login_as(
        &app,
        Encoding::Multipart,
        &[
            ("email", "user@vz.test"),
            ("password", PASSWORD),
            ("extra", "x"),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_login_bodies_are_400_never_5xx() {
    let app = app().await;
    let login = || app.client.post(url(&app, "v1", "login"));
    let json_type = ("content-type", "application/json");
    let multipart_type = ("content-type", "multipart/form-data; boundary=XyZ");
    let no_body = envelope(400, "email and password are required");
    let invalid = envelope(400, "Invalid request body");
    let unsupported = envelope(
        400,
        "Unsupported content type: send multipart/form-data, application/x-www-form-urlencoded or application/json",
    );
    let file_part = Form::new().text("email", "user@vz.test").part(
        "password",
        Part::bytes(PASSWORD.as_bytes().to_vec()).file_name("password.txt"),
    );
    let not_utf8 = Form::new()
        .text("email", "user@vz.test")
        .part("password", Part::bytes(vec![0xff, 0xfe, 0x41]));
    let cases = [
        ("no body, no type", login(), &no_body),
        (
            "empty JSON",
            login().header(json_type.0, json_type.1),
            &no_body,
        ),
        (
            "empty multipart",
            login().header(multipart_type.0, multipart_type.1),
            &no_body,
        ),
        (
            "blank form",
            login()
                .header("content-type", "application/x-www-form-urlencoded")
                .body("  \n"),
            &no_body,
        ),
        (
            "text/plain",
            login()
                .header("content-type", "text/plain")
                .body(json!({"email": "user@vz.test", "password": PASSWORD}).to_string()),
            &unsupported,
        ),
        (
            "no content type",
            login().body(r#"{"email":"user@vz.test"}"#),
            &unsupported,
        ),
        (
            "invalid JSON",
            login()
                .header(json_type.0, json_type.1)
                .body("{\"email\": "),
            &invalid,
        ),
        (
            "JSON array",
            login()
                .header(json_type.0, json_type.1)
                .body("[\"user@vz.test\"]"),
            &invalid,
        ),
        (
            "deep JSON",
            login()
                .header(json_type.0, json_type.1)
                .body("[".repeat(10_000)),
            &invalid,
        ),
        (
            "binary JSON",
            login()
                .header(json_type.0, json_type.1)
                .body(vec![0xff, 0xfe, 0x00, 0x7b]),
            &invalid,
        ),
        (
            "multipart without boundary",
            login()
                .header("content-type", "multipart/form-data")
                .body("--XyZ--\r\n"),
            &invalid,
        ),
        (
            "multipart garbage",
            login()
                .header(multipart_type.0, multipart_type.1)
                .body("not multipart at all"),
            &invalid,
        ),
        (
            "unterminated multipart",
            login().header(multipart_type.0, multipart_type.1).body(
                "--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nuser@vz.test",
            ),
            &invalid,
        ),
        ("file part", login().multipart(file_part), &invalid),
        ("non-UTF-8 part", login().multipart(not_utf8), &invalid),
    ];
    for (name, request, expected) in cases {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!(&(status, body), expected, "{name}");
    }
    let (status, body) = status_json(
        login()
            .json(&json!({"email": 42, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), envelope(400, "email must be a string"));
}

#[tokio::test]
async fn a_one_mebibyte_field_is_413_in_each_encoding() {
    let app = app().await;
    let huge = "x".repeat(1 << 20);
    for encoding in ENCODINGS {
        assert_eq!(
            login_as(
                &app,
                encoding,
                &[("email", "user@vz.test"), ("password", &huge)]
            )
            .await,
            envelope(413, "Request body too large"),
            "{encoding:?}"
        );
    }
}

#[tokio::test]
async fn lockout_is_429_with_retry_after_in_the_envelope() {
    let app = app_with("[lockout]\nmax_failures = 2\nlock_for = \"60s\"").await;
    for _ in 0..2 {
        let answer = login_as(
            &app,
            Encoding::Multipart,
            &[("email", "user@vz.test"), ("password", "wrong")],
        )
        .await;
        assert_eq!(answer, envelope(401, "Invalid Credentials!"));
    }
    let response = app
        .client
        .post(url(&app, "v1", "login"))
        .multipart(
            Form::new()
                .text("email", "user@vz.test")
                .text("password", PASSWORD),
        )
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        status_json(response).await,
        envelope(
            429,
            &format!("Too many failed attempts, retry in {retry_after} seconds")
        )
    );
}

#[tokio::test]
async fn any_v_digits_version_works_and_nothing_else() {
    let app = app().await;
    for version in ["v1", "v2", "v10"] {
        let (status, body) = status_json(
            app.client
                .post(url(&app, version, "login"))
                .multipart(
                    Form::new()
                        .text("email", "user@vz.test")
                        .text("password", PASSWORD),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{version}: {body}");
        let token = body["data"]["token"].as_str().unwrap();
        let (status, _) = status_json(
            app.client
                .get(url(&app, version, "apikey/generate"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{version}");
    }
    for version in ["vx", "1", "v", "V1", "v1x", "v1/v2", "%76%31x"] {
        let response = app
            .client
            .post(url(&app, version, "login"))
            .multipart(
                Form::new()
                    .text("email", "user@vz.test")
                    .text("password", PASSWORD),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            status_json(response).await,
            envelope(404, "Not Found"),
            "{version}"
        );
    }
}

#[tokio::test]
async fn logout_answers_the_envelope_and_the_token_then_fails() {
    let app = app().await;
    let access = access_token(&app).await;
    assert_eq!(app.verify(P, &access).await.status(), 200);
    let logout = || {
        app.client
            .post(url(&app, "v2", "logout"))
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(
        status_json(logout().await.unwrap()).await,
        envelope(200, "Successfully logged out")
    );
    let revoked = envelope(401, "Token has been revoked");
    assert_eq!(status_json(app.verify(P, &access).await).await, revoked);
    assert_eq!(status_json(logout().await.unwrap()).await, revoked);
    let generate = app
        .client
        .get(url(&app, "v1", "apikey/generate"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(generate).await, revoked);
}

#[tokio::test]
async fn logout_and_apikey_refuse_a_missing_or_bad_token_with_401() {
    let app = app().await;
    let requests = |token: Option<&str>| {
        let logout = app.client.post(url(&app, "v1", "logout"));
        let generate = app.client.get(url(&app, "v1", "apikey/generate"));
        match token {
            Some(token) => [logout.bearer_auth(token), generate.bearer_auth(token)],
            None => [logout, generate],
        }
    };
    for request in requests(None) {
        assert_eq!(
            status_json(request.send().await.unwrap()).await,
            envelope(401, "Authorization token is missing")
        );
    }
    for request in requests(Some("not-a-token")) {
        assert_eq!(
            status_json(request.send().await.unwrap()).await,
            envelope(401, "Invalid token")
        );
    }
    // An API key is not an access token for these routes.
    let access = access_token(&app).await;
    let (_, body) = status_json(
        app.client
            .get(url(&app, "v1", "apikey/generate"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let key = body["data"]["api_key"].as_str().unwrap();
    for request in requests(Some(key)) {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["status"], json!(401));
        assert_eq!(body["data"], json!({}));
    }
}

#[tokio::test]
async fn apikey_generate_then_verify_by_each_header() {
    let app = app().await;
    let access = access_token(&app).await;
    let generate = || async {
        let (status, body) = status_json(
            app.client
                .get(url(&app, "v1", "apikey/generate"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let key = body["data"]["api_key"].as_str().unwrap().to_owned();
        assert_eq!(
            (status, body),
            (
                200,
                json!({"data": {"api_key": key}, "message": "successfully generated api key", "status": 200})
            )
        );
        key
    };
    let key = generate().await;
    let verify_with = |name: &'static str, value: String| {
        app.client
            .get(app.url(&format!("{P}/_polyauth/verify")))
            .header(name, value)
            .send()
    };
    for name in ["x-api-key", "api-key", "apikey", "X-Api-Key"] {
        let response = verify_with(name, key.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["x-auth-email"], "user@vz.test");
        assert_eq!(response.headers()["x-auth-tenant"], "vz");
    }
    let response = verify_with("authorization", format!("Bearer {key}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A new key replaces the old one.
    let newer = generate().await;
    assert_ne!(newer, key);
    let (status, body) = status_json(verify_with("x-api-key", key).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], json!(401));
    assert_eq!(verify_with("apikey", newer).await.unwrap().status(), 200);
}

#[tokio::test]
async fn verify_without_a_credential_is_401_in_the_envelope() {
    let app = app().await;
    let response = app
        .client
        .get(app.url(&format!("{P}/_polyauth/verify")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        envelope(401, "Authorization token is missing")
    );
    let response = app
        .client
        .get(app.url(&format!("{P}/_polyauth/verify")))
        .header("x-api-key", "pa_not-a-key")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], json!(401));
    assert_eq!(body["data"], json!({}));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_envelope() {
    let app = app().await;
    let not_found = envelope(404, "Not Found");
    let not_allowed = envelope(405, "Method Not Allowed");
    let cases = [
        (app.client.get(app.url(&format!("{P}/nope"))), &not_found),
        (app.client.post(url(&app, "v1", "signup")), &not_found),
        (app.client.get(url(&app, "v1", "login/")), &not_found),
        (app.client.get(url(&app, "v1", "login")), &not_allowed),
        (app.client.put(url(&app, "v1", "login")), &not_allowed),
        (app.client.get(url(&app, "v1", "logout")), &not_allowed),
        (
            app.client.post(url(&app, "v1", "apikey/generate")),
            &not_allowed,
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!(&(status, body), expected);
    }
}
