//! The Pixyle dialect, exact to the wire: every status and body of SPEC §7.2.

use serde_json::json;

use crate::helpers::{PASSWORD, Setup, TestApp, pixyle_tenant, status_json};

const P: &str = "/px";

async fn app() -> TestApp {
    TestApp::spawn(Setup::new().tenant("px", pixyle_tenant("px", P, ""))).await
}

fn token_url(app: &TestApp) -> String {
    app.url(&format!("{P}/auth/v1/token"))
}

#[tokio::test]
async fn login_answers_access_token_integer_expiry_and_refresh_token() {
    let app = app().await;
    let (status, body) = app.pixyle_login(P, "user@px.test", PASSWORD).await;
    assert_eq!(status, 200);
    let object = body.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token"]);
    assert_eq!(body["expires_in"], json!(3600));
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refresh_token"].as_str().unwrap().split('.').count() == 3);
}

#[tokio::test]
async fn login_email_is_case_insensitive() {
    let app = app().await;
    let (status, _) = app.pixyle_login(P, "  USER@PX.test", PASSWORD).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn login_refusals_are_exact() {
    let app = app().await;
    let cases = [
        (
            "user@px.test",
            "wrong",
            401,
            json!({"error": "Invalid credentials"}),
        ),
        (
            "nobody@px.test",
            PASSWORD,
            401,
            json!({"error": "Invalid credentials"}),
        ),
        (
            "inactive@px.test",
            PASSWORD,
            401,
            json!({"error": "Account is not activated"}),
        ),
        (
            "demo@px.test",
            PASSWORD,
            403,
            json!({"error": "Email is not verified"}),
        ),
    ];
    for (email, password, status, body) in cases {
        assert_eq!(
            app.pixyle_login(P, email, password).await,
            (status, body),
            "{email}"
        );
    }
}

#[tokio::test]
async fn missing_or_unreadable_json_is_400_missing_json() {
    let app = app().await;
    let missing = json!({"error": "Missing JSON in request"});
    let requests = [
        app.client.post(token_url(&app)),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/json"),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/json")
            .body("{\"email\": "),
        app.client
            .post(token_url(&app))
            .header("content-type", "text/plain")
            .body(json!({"email": "user@px.test", "password": PASSWORD}).to_string()),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("email=user%40px.test&password=x"),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe, 0x00, 0x7b]),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/json")
            .body("[\"user@px.test\"]"),
        app.client
            .post(token_url(&app))
            .header("content-type", "application/json")
            .body("[".repeat(10_000)),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!((status, &body), (400, &missing), "request {i}");
    }
}

#[tokio::test]
async fn field_problems_are_400_naming_the_field() {
    let app = app().await;
    let cases = [
        (json!({"email": "user@px.test"}), "Missing field: password"),
        (json!({"password": PASSWORD}), "Missing field: email"),
        (json!({}), "Missing field: email"),
        (
            json!({"email": "user@px.test", "password": PASSWORD, "role": "admin"}),
            "Unknown field: role",
        ),
        (
            json!({"email": 42, "password": PASSWORD}),
            "Field email must be a string",
        ),
        (
            json!({"email": "user@px.test", "password": PASSWORD, "permanent_login": "yes"}),
            "Field permanent_login must be a boolean",
        ),
    ];
    for (request, message) in cases {
        let (status, body) =
            status_json(app.post_json(&format!("{P}/auth/v1/token"), &request).await).await;
        assert_eq!(
            (status, body),
            (400, json!({ "error": message })),
            "{request}"
        );
    }
}

#[tokio::test]
async fn a_one_mebibyte_body_is_413_never_5xx() {
    let app = app().await;
    let huge = json!({"email": "user@px.test", "password": "x".repeat(1 << 20)});
    let response = app.post_json(&format!("{P}/auth/v1/token"), &huge).await;
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body),
        (413, json!({"error": "Request body too large"}))
    );
}

#[tokio::test]
async fn permanent_login_gives_the_long_refresh_token() {
    let app = app().await;
    let response = app
        .post_json(
            &format!("{P}/auth/v1/token"),
            &json!({"email": "user@px.test", "password": PASSWORD, "permanent_login": true}),
        )
        .await;
    let (_, body) = status_json(response).await;
    let short = app.pixyle_login(P, "user@px.test", PASSWORD).await.1;
    let lifetime = |token: &serde_json::Value| {
        let claims = crate::tokens::claims(token.as_str().unwrap());
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()
    };
    assert_eq!(lifetime(&body["refresh_token"]), 30 * 86_400);
    assert_eq!(lifetime(&short["refresh_token"]), 86_400);
}

#[tokio::test]
async fn revoke_access_answers_msg_and_kills_the_token() {
    let app = app().await;
    let (_, login) = app.pixyle_login(P, "user@px.test", PASSWORD).await;
    let access = login["access_token"].as_str().unwrap();
    let revoke = || {
        app.client
            .delete(app.url(&format!("{P}/auth/v1/revoke_access")))
            .bearer_auth(access)
            .send()
    };
    let (status, body) = status_json(revoke().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (200, json!({"msg": "Access token revoked"}))
    );
    let (status, body) = status_json(revoke().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Token has been revoked"}))
    );
    let (status, body) = status_json(app.verify(P, access).await).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Token has been revoked"}))
    );
}

#[tokio::test]
async fn revoke_access_without_a_token_is_401_missing_header() {
    let app = app().await;
    let response = app
        .client
        .delete(app.url(&format!("{P}/auth/v1/revoke_access")))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Missing Authorization Header"}))
    );
    let response = app
        .client
        .delete(app.url(&format!("{P}/auth/v1/revoke_access")))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, body), (401, json!({"error": "Invalid token"})));
}

#[tokio::test]
async fn refresh_answers_a_new_access_token_and_expiry() {
    let app = app().await;
    let (_, login) = app.pixyle_login(P, "user@px.test", PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap();
    let response = app
        .client
        .post(app.url(&format!("{P}/auth/v1/refresh")))
        .bearer_auth(refresh)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["access_token", "expires_in"]);
    assert_eq!(body["expires_in"], json!(3600));
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(app.verify(P, fresh).await.status(), 200);
    // Not rotated: the same refresh token keeps working.
    let again = app
        .client
        .post(app.url(&format!("{P}/auth/v1/refresh")))
        .bearer_auth(refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn refresh_refuses_an_access_token_and_nothing() {
    let app = app().await;
    let (_, login) = app.pixyle_login(P, "user@px.test", PASSWORD).await;
    let url = app.url(&format!("{P}/auth/v1/refresh"));
    let access = login["access_token"].as_str().unwrap();
    let with_access = app
        .client
        .post(&url)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(with_access).await,
        (401, json!({"error": "Only refresh tokens are allowed"}))
    );
    let without = app.client.post(&url).send().await.unwrap();
    assert_eq!(
        status_json(without).await,
        (401, json!({"error": "Missing Authorization Header"}))
    );
}

#[tokio::test]
async fn revoke_access_refuses_a_refresh_token() {
    let app = app().await;
    let (_, login) = app.pixyle_login(P, "user@px.test", PASSWORD).await;
    let refresh = login["refresh_token"].as_str().unwrap();
    // revoke_access takes access tokens only.
    let response = app
        .client
        .delete(app.url(&format!("{P}/auth/v1/revoke_access")))
        .bearer_auth(refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(response).await,
        (401, json!({"error": "Only non-refresh tokens are allowed"}))
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_dialect_shape() {
    let app = app().await;
    let (status, body) = status_json(
        app.client
            .get(app.url(&format!("{P}/nope")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "The requested URL was not found on the server."})
        )
    );
    let (status, body) = status_json(app.client.get(token_url(&app)).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            405,
            json!({"error": "The method is not allowed for the requested URL."})
        )
    );
}
