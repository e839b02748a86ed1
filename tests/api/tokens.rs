//! The engine's token rules (SPEC §4), seen through `/_polyauth/verify`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, pixyle_tenant, status_json};

/// The payload of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn two_tenants() -> TestApp {
    TestApp::spawn(
        Setup::new()
            .tenant("a", pixyle_tenant("a", "/a", ""))
            .tenant("b", pixyle_tenant("b", "/b", "")),
    )
    .await
}

async fn access_token(app: &TestApp, prefix: &str, tenant: &str) -> String {
    let (status, body) = app
        .pixyle_login(prefix, &format!("user@{tenant}.test"), PASSWORD)
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn assert_refused(app: &TestApp, token: &str, message: &str) {
    let (status, body) = status_json(app.verify("/a", token).await).await;
    assert_eq!(
        (status, body),
        (401, json!({ "error": message })),
        "token {token}"
    );
}

#[tokio::test]
async fn a_valid_access_token_verifies_with_identity_headers() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let response = app.verify("/a", &token).await;
    assert_eq!(response.status(), 200);
    let h = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(h("x-auth-tenant"), "a");
    assert_eq!(h("x-auth-email"), "user@a.test");
    assert_eq!(h("x-auth-roles"), "user,admin");
    assert_eq!(h("x-auth-subject"), claims(&token)["sub"].as_str().unwrap());
    assert!(response.headers().get("x-auth-company").is_none());
    let post = app
        .client
        .post(app.url("/a/_polyauth/verify"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
}

#[tokio::test]
async fn issued_tokens_carry_every_required_claim() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let c = claims(&token);
    for claim in [
        "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ", "tid",
    ] {
        assert!(c.get(claim).is_some(), "missing {claim} in {c}");
    }
    assert_eq!(c["typ"], "access");
    assert_eq!(c["tid"], "a");
    assert_eq!(c["iss"], "http://polyauth.test/a");
    assert_eq!(c["aud"], "a-api");
    let h = header(&token);
    assert_eq!(h["alg"], "EdDSA");
    assert!(h["kid"].as_str().is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let mut h = header(&token);
    h["alg"] = json!("none");
    let forged = format!("{}.{}.", encode_part(&h), encode_part(&claims(&token)));
    assert_refused(&app, &forged, "Invalid token").await;
}

#[tokio::test]
async fn a_token_of_another_tenant_is_refused() {
    let app = two_tenants().await;
    let foreign = access_token(&app, "/b", "b").await;
    assert_eq!(app.verify("/b", &foreign).await.status(), 200);
    assert_refused(&app, &foreign, "Invalid token").await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let mut h = header(&token);
    h["kid"] = json!("someone-elses-key");
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", encode_part(&h), parts[1], parts[2]);
    assert_refused(&app, &forged, "Invalid token").await;
}

#[tokio::test]
async fn an_algorithm_other_than_the_keys_is_refused() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let kid = header(&token)["kid"].as_str().unwrap().to_owned();
    // HS256 "signed" with the public key: the classic algorithm confusion.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid);
    let forged = jsonwebtoken::encode(
        &h,
        &claims(&token),
        &jsonwebtoken::EncodingKey::from_secret(b"public key bytes are not a secret"),
    )
    .unwrap();
    assert_refused(&app, &forged, "Invalid token").await;
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let app = two_tenants().await;
    let token = access_token(&app, "/a", "a").await;
    let mut c = claims(&token);
    c["roles"] = json!(["superuser"]);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], encode_part(&c), parts[2]);
    assert_refused(&app, &forged, "Invalid token").await;
}

#[tokio::test]
async fn garbage_is_refused_and_no_credential_is_missing() {
    let app = two_tenants().await;
    for garbage in [
        "x",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9..",
        &"A".repeat(4000),
    ] {
        assert_refused(&app, garbage, "Invalid token").await;
    }
    let response = app
        .client
        .get(app.url("/a/_polyauth/verify"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body),
        (401, json!({"error": "Missing Authorization Header"}))
    );
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = two_tenants().await;
    let (_, body) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_refused(&app, refresh, "Only non-refresh tokens are allowed").await;
}

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    let app = TestApp::spawn(Setup::new().tenant(
        "a",
        pixyle_tenant("a", "/a", "[tokens]\naccess_ttl = \"1s\""),
    ))
    .await;
    let token = access_token(&app, "/a", "a").await;
    let exp = claims(&token)["exp"].as_u64().unwrap();
    assert_eq!(app.verify("/a", &token).await.status(), 200);
    // Wait until the clock has passed `exp` (leeway is zero).
    while polyauth::store::unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(&app, &token, "Token has expired").await;
}

#[tokio::test]
async fn configured_hs256_and_rotated_keys_verify() {
    let dir = tempfile::tempdir().unwrap();
    let old_secret = dir.path().join("old.secret");
    let new_secret = dir.path().join("new.secret");
    std::fs::write(&old_secret, "o".repeat(40)).unwrap();
    std::fs::write(&new_secret, "n".repeat(40)).unwrap();
    let keys = |first: &std::path::Path, second: Option<&std::path::Path>| {
        let mut text = format!(
            "[[keys]]\nkid = \"k-{}\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
            first.file_stem().unwrap().to_str().unwrap(),
            first.display().to_string()
        );
        if let Some(second) = second {
            text.push_str(&format!(
                "[[keys]]\nkid = \"k-{}\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
                second.file_stem().unwrap().to_str().unwrap(),
                second.display().to_string()
            ));
        }
        text
    };
    Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", &keys(&old_secret, None)))
        .write(dir.path());
    let app = TestApp::start_in(dir).await;
    let old_token = access_token(&app, "/a", "a").await;
    assert_eq!(header(&old_token)["alg"], "HS256");
    assert_eq!(header(&old_token)["kid"], "k-old");
    let dir = app.stop().await;

    // Rotation: the new key signs, the old one still verifies.
    Setup::new()
        .tenant(
            "a",
            pixyle_tenant("a", "/a", &keys(&new_secret, Some(&old_secret))),
        )
        .write(dir.path());
    let app = TestApp::start_in(dir).await;
    let new_token = access_token(&app, "/a", "a").await;
    assert_eq!(header(&new_token)["kid"], "k-new");
    assert_eq!(app.verify("/a", &old_token).await.status(), 200);
    assert_eq!(app.verify("/a", &new_token).await.status(), 200);
}

const TEST_SECRET: &[u8] = b"a test secret of forty bytes, not random";

/// Tenant `a` signing with an HS256 key the test knows, so it can sign its
/// own tokens; `extra` goes after the key.
async fn tenant_with_known_key(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hs256.secret");
    std::fs::write(&secret, TEST_SECRET).unwrap();
    let keys = format!(
        "{extra}\n[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", &keys))
        .write(dir.path());
    TestApp::start_in(dir).await
}

/// `claims` signed with the tenant's own key, with `header` changed by `edit`.
fn signed(claims: &Value, edit: impl FnOnce(&mut jsonwebtoken::Header)) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    edit(&mut header);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_with_a_crit_header_is_refused() {
    let app = tenant_with_known_key("").await;
    let c = claims(&access_token(&app, "/a", "a").await);
    // Signed the same way without `crit`, it verifies: the header is why.
    assert_eq!(app.verify("/a", &signed(&c, |_| {})).await.status(), 200);
    let critical = signed(&c, |h| {
        h.crit = Some(vec!["x-polyauth-test".into()]);
        h.extras.insert("x-polyauth-test".into(), "1".into());
    });
    assert_eq!(header(&critical)["crit"], json!(["x-polyauth-test"]));
    assert_refused(&app, &critical, "Invalid token").await;
    let empty = signed(&c, |h| h.crit = Some(Vec::new()));
    assert_refused(&app, &empty, "Invalid token").await;
}

#[tokio::test]
async fn a_token_living_longer_than_the_tenants_ttl_is_refused() {
    let app = tenant_with_known_key(
        "[tokens]\naccess_ttl = \"10m\"\nrefresh_ttl = \"1h\"\nremember_refresh_ttl = \"2h\"",
    )
    .await;
    let (status, body) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    let refresh = claims(body["refresh_token"].as_str().unwrap());
    let now = polyauth::store::unix_now();
    let living = |mut c: Value, iat: u64, lifetime: u64| {
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        c["exp"] = json!(iat + lifetime);
        signed(&c, |_| {})
    };
    // Up to the TTL and 30 s of skew, as the tenant could have issued it.
    let ok = living(access.clone(), now - 5, 600 + 30);
    assert_eq!(app.verify("/a", &ok).await.status(), 200);
    let long = living(access.clone(), now - 5, 600 + 31);
    assert_refused(&app, &long, "Invalid token").await;
    // Backdating `iat` makes it no younger.
    let backdated = living(access.clone(), now - 86_400, 86_400 + 600);
    assert_refused(&app, &backdated, "Invalid token").await;
    // Nor does dating it in the future.
    let future = living(access, now + 3_600, 600);
    assert_refused(&app, &future, "Invalid token").await;

    // A refresh token may live up to `remember_refresh_ttl`.
    let refresh_with = |token: String| {
        app.client
            .post(app.url("/a/auth/v1/refresh"))
            .bearer_auth(token)
            .send()
    };
    let remembered = living(refresh.clone(), now - 5, 7_200);
    assert_eq!(refresh_with(remembered).await.unwrap().status(), 200);
    let too_long = living(refresh, now - 5, 7_200 + 31);
    let (status, body) = status_json(refresh_with(too_long).await.unwrap()).await;
    assert_eq!((status, body), (401, json!({"error": "Invalid token"})));
}

/// One HTTP worker: every request runs on the thread that verified the
/// token before, so each check below meets a remembered signature.
async fn one_worker(extra: &str) -> TestApp {
    TestApp::spawn(
        Setup::new()
            .workers(1)
            .tenant("a", pixyle_tenant("a", "/a", extra))
            .tenant("b", pixyle_tenant("b", "/b", "")),
    )
    .await
}

#[tokio::test]
async fn a_remembered_signature_vouches_for_that_exact_token_only() {
    let app = one_worker("").await;
    let token = access_token(&app, "/a", "a").await;
    for _ in 0..3 {
        assert_eq!(app.verify("/a", &token).await.status(), 200);
    }
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_refused(&app, &altered, "Invalid token").await;
    let (status, _) = status_json(app.verify("/b", &token).await).await;
    assert_eq!(status, 401, "another tenant's keys never vouch for it");

    let revoked = app
        .client
        .delete(app.url("/a/auth/v1/revoke_access"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_refused(&app, &token, "Token has been revoked").await;
}

#[tokio::test]
async fn a_remembered_signature_does_not_outlive_the_token() {
    let app = one_worker("[tokens]\naccess_ttl = \"1s\"").await;
    let token = access_token(&app, "/a", "a").await;
    let exp = claims(&token)["exp"].as_u64().unwrap();
    assert_eq!(app.verify("/a", &token).await.status(), 200);
    assert_eq!(app.verify("/a", &token).await.status(), 200);
    while polyauth::store::unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(&app, &token, "Token has expired").await;
}
