//! Bad input on every route of every built-in dialect: always the dialect's
//! own 4xx answer (or 413), never a 5xx, never a success.

use polyauth::dialect::{Dialects, TokenSource};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, password_hash};

/// One tenant per built-in dialect, mounted at `/<dialect>`.
async fn every_dialect() -> (TestApp, Dialects) {
    let dialects = Dialects::load(None).unwrap();
    let mut setup = Setup::new();
    for name in dialects.names() {
        let tenant = format!(
            "id = \"{name}\"\ndialect = \"{name}\"\npath_prefix = \"/{name}\"\nissuer = \"iss\"\naudience = \"aud\"\n\
             [lockout]\nmax_failures = 1000\n\
             [[users]]\nemail = \"user@x.test\"\npassword_hash = \"{}\"\n\
             [[companies]]\nid = \"acme\"\n",
            password_hash(PASSWORD)
        );
        setup = setup.tenant(name, tenant);
    }
    (TestApp::spawn(setup).await, dialects)
}

/// A refusal: a 4xx, or, for a dialect answering 200 with its code in the
/// body, a body code of 400 or more.
fn assert_refused(what: &str, status: u16, body: &str) {
    if status == 200 {
        let code = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|b| b["responseCode"].as_u64());
        assert!(code.is_some_and(|c| c >= 400), "{what}: 200 {body}");
    } else {
        assert!((400..500).contains(&status), "{what}: {status} {body}");
    }
    assert!(
        body.is_empty() || serde_json::from_str::<Value>(body).is_ok(),
        "{what}: not JSON: {body}"
    );
}

#[tokio::test]
async fn bad_bodies_and_tokens_are_refused_in_the_dialects_own_words() {
    let (app, dialects) = every_dialect().await;
    let mut sent = 0;
    for name in dialects.names() {
        let dialect = dialects.get(name).unwrap();
        for route in &dialect.routes {
            let url = app.url(&format!("/{name}{}", route.path.replace("{version}", "v1")));
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let wires: Vec<&str> = route.inputs.iter().map(|f| f.wire.as_str()).collect();
            let numbers: Value = wires
                .iter()
                .map(|w| (w.to_string(), json!(12345)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let huge: Value = wires
                .iter()
                .map(|w| (w.to_string(), json!("x".repeat(1 << 20))))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let nested = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
            let bodies: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
                ("no body", None, vec![]),
                ("empty JSON body", Some("application/json"), vec![]),
                (
                    "wrong content type",
                    Some("text/html"),
                    b"<p>hi</p>".to_vec(),
                ),
                (
                    "invalid JSON",
                    Some("application/json"),
                    b"{\"a\":".to_vec(),
                ),
                (
                    "wrong JSON types",
                    Some("application/json"),
                    numbers.to_string().into_bytes(),
                ),
                ("missing fields", Some("application/json"), b"{}".to_vec()),
                (
                    "unknown fields only",
                    Some("application/json"),
                    b"{\"zzz\":1}".to_vec(),
                ),
                (
                    "1 MiB field",
                    Some("application/json"),
                    huge.to_string().into_bytes(),
                ),
                (
                    "invalid UTF-8",
                    Some("application/json"),
                    vec![0xff, 0xfe, 0xfd],
                ),
                (
                    "deep nesting",
                    Some("application/json"),
                    nested.into_bytes(),
                ),
                (
                    "broken multipart",
                    Some("multipart/form-data; boundary=zz"),
                    b"--zz\r\nnope".to_vec(),
                ),
                (
                    "form garbage",
                    Some("application/x-www-form-urlencoded"),
                    b"%%%&&&==".to_vec(),
                ),
            ];
            for (what, content_type, body) in bodies {
                let mut request = app.client.request(method.clone(), &url).body(body);
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                // A token-reading route also gets a forged token where it looks.
                if let Some(token) = &route.token {
                    request = match &token.source {
                        TokenSource::Bearer => request.bearer_auth("forged.token.value"),
                        TokenSource::Header(header) => request.header(header.as_str(), "forged"),
                        TokenSource::Field(_) => request,
                    };
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                assert_refused(
                    &format!("{name} {} with {what}", route.label()),
                    status,
                    &text,
                );
                sent += 1;
            }
        }
    }
    assert!(sent >= 12 * 10, "only {sent} requests");
}

#[tokio::test]
async fn absurd_headers_and_path_tricks_are_refused_never_5xx() {
    let (app, dialects) = every_dialect().await;
    for name in dialects.names() {
        for path in [
            "/_polyauth/verify",
            "/../etc/passwd",
            "/%2e%2e/%00",
            "/auth/login/..;/x",
            "/nope?x=%ff",
        ] {
            let url = app.url(&format!("/{name}{path}"));
            let response = app
                .client
                .get(&url)
                .header("authorization", format!("Bearer {}", "a".repeat(16 * 1024)))
                .header(
                    "x-api-key",
                    reqwest::header::HeaderValue::from_bytes(&[0x80, 0xff, b'k']).unwrap(),
                )
                .header("token", "x.y.z")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_refused(&format!("{name}{path}"), status, &text);
        }
    }
}
