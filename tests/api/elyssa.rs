//! The Elyssa dialect, exact to the wire (SPEC §7.5).

use serde_json::{Value, json};

use crate::helpers::{Setup, TestApp, status_json};
use crate::tokens::claims;

const ACME: &str = "8b2f5a1e-4c1d-4e8a-9f3b-2d7c6e5a4b10";
const OTHER: &str = "0d9e8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b";

async fn app() -> TestApp {
    let tenant = format!(
        "id = \"el\"\ndialect = \"elyssa\"\npath_prefix = \"/el\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[companies]]\nid = \"{ACME}\"\nroles = [\"USER\"]\n[[companies]]\nid = \"{OTHER}\"\nroles = [\"ADMIN\"]\n"
    );
    TestApp::spawn(Setup::new().tenant("el", tenant)).await
}

async fn login(app: &TestApp, path: &str, company: &str) -> (u16, Value) {
    status_json(app.post_json(path, &json!({ "companyId": company })).await).await
}

#[tokio::test]
async fn company_login_answers_both_tokens_with_and_without_trailing_slash() {
    let app = app().await;
    for path in ["/el/auth/login/", "/el/auth/login"] {
        let (status, body) = login(&app, path, ACME).await;
        assert_eq!(status, 200, "{path}");
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["accessToken", "refreshToken"]);
    }
}

#[tokio::test]
async fn tokens_carry_company_role_and_lifetimes() {
    let app = app().await;
    let (_, body) = login(&app, "/el/auth/login/", ACME).await;
    let access = claims(body["accessToken"].as_str().unwrap());
    assert_eq!(access["companyId"], ACME);
    assert_eq!(access["role"], "USER");
    for claim in ["iss", "aud", "iat", "nbf", "exp"] {
        assert!(access.get(claim).is_some(), "{claim}");
    }
    let lifetime = |c: &Value| c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap();
    assert_eq!(lifetime(&access), 24 * 3600);
    assert_eq!(
        lifetime(&claims(body["refreshToken"].as_str().unwrap())),
        360 * 86_400
    );
}

#[tokio::test]
async fn an_unknown_company_is_401_unauthorized() {
    let app = app().await;
    let (status, body) = login(&app, "/el/auth/login/", "nope").await;
    assert_eq!(
        (status, body),
        (401, json!({"statusCode": 401, "message": "Unauthorized"}))
    );
}

#[tokio::test]
async fn bad_input_is_400_in_nestjs_shape() {
    let app = app().await;
    let bad = json!({"statusCode": 400, "message": ["companyId must be a string"], "error": "Bad Request"});
    let url = app.url("/el/auth/login/");
    let requests = [
        app.client.post(&url),
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body("{"),
        app.client
            .post(&url)
            .header("content-type", "text/plain")
            .body("x"),
        app.client.post(&url).json(&json!({})),
        app.client.post(&url).json(&json!({"companyId": 42})),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        assert_eq!(
            status_json(request.send().await.unwrap()).await,
            (400, bad.clone()),
            "request {i}"
        );
    }
    let huge = app
        .post_json(
            "/el/auth/login/",
            &json!({"companyId": "x".repeat(1 << 20)}),
        )
        .await;
    assert_eq!(status_json(huge).await.0, 413);
}

#[tokio::test]
async fn refresh_reads_the_body_field_and_answers_an_access_token() {
    let app = app().await;
    let (_, body) = login(&app, "/el/auth/login/", ACME).await;
    let refresh = body["refreshToken"].as_str().unwrap();
    for path in ["/el/auth/refresh/", "/el/auth/refresh"] {
        let (status, body) =
            status_json(app.post_json(path, &json!({ "refresh": refresh })).await).await;
        assert_eq!(status, 200, "{path}");
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["accessToken"]);
    }
    let unauthorized = json!({"statusCode": 401, "message": "Unauthorized"});
    let access = body["accessToken"].as_str().unwrap();
    for token in [access, "garbage"] {
        let response = app
            .post_json("/el/auth/refresh/", &json!({ "refresh": token }))
            .await;
        assert_eq!(status_json(response).await, (401, unauthorized.clone()));
    }
    let missing = app.post_json("/el/auth/refresh/", &json!({})).await;
    assert_eq!(status_json(missing).await, (401, unauthorized));
}

#[tokio::test]
async fn verify_checks_x_company_id() {
    let app = app().await;
    let (_, body) = login(&app, "/el/auth/login/", ACME).await;
    let access = body["accessToken"].as_str().unwrap();
    let verify = |company: Option<&str>| {
        let mut request = app
            .client
            .get(app.url("/el/_polyauth/verify"))
            .bearer_auth(access);
        if let Some(company) = company {
            request = request.header("x-company-id", company);
        }
        request.send()
    };
    let ok = verify(Some(ACME)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-company"], ACME);
    assert_eq!(ok.headers()["x-auth-roles"], "USER");
    assert_eq!(verify(None).await.unwrap().status(), 200);
    let (status, body) = status_json(verify(Some(OTHER)).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"})
        )
    );
}

#[tokio::test]
async fn a_doubled_empty_or_unreadable_company_header_is_forbidden() {
    let app = app().await;
    let (_, body) = login(&app, "/el/auth/login/", ACME).await;
    let access = body["accessToken"].as_str().unwrap();
    let forbidden =
        json!({"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"});
    let mut doubled = reqwest::header::HeaderMap::new();
    doubled.append("x-company-id", ACME.parse().unwrap());
    doubled.append("x-company-id", OTHER.parse().unwrap());
    let mut empty = reqwest::header::HeaderMap::new();
    empty.append("x-company-id", "".parse().unwrap());
    let mut unreadable = reqwest::header::HeaderMap::new();
    unreadable.append(
        "x-company-id",
        reqwest::header::HeaderValue::from_bytes(&[0xe9, b'x']).unwrap(),
    );
    for (what, headers) in [
        ("doubled", doubled),
        ("empty", empty),
        ("unreadable", unreadable),
    ] {
        let response = app
            .client
            .get(app.url("/el/_polyauth/verify"))
            .bearer_auth(access)
            .headers(headers)
            .send()
            .await
            .unwrap();
        assert_eq!(
            status_json(response).await,
            (403, forbidden.clone()),
            "{what}"
        );
    }
}
