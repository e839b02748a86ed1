//! Each dialect's OpenAPI document: committed, in sync, served per tenant.

use polyauth::dialect::Dialects;

#[test]
fn committed_documents_are_what_the_dialects_generate() {
    let dialects = Dialects::load(None).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    for name in dialects.names() {
        let generated = polyauth::openapi::to_json(dialects.get(name).unwrap());
        let committed = std::fs::read_to_string(dir.join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("openapi/{name}.json: {e}; run `cargo run -- openapi`"));
        assert!(
            committed == generated,
            "openapi/{name}.json differs from what the code generates; run `cargo run -- openapi`"
        );
    }
    // No document of a dialect that no longer exists.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if let Some(name) = file.strip_suffix(".json").filter(|name| *name != "admin") {
            assert!(
                dialects.get(name).is_some(),
                "openapi/{file} has no dialect"
            );
        }
    }
}

#[test]
fn the_committed_admin_document_is_what_the_code_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/admin.json");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("openapi/admin.json: {e}; run `cargo run -- openapi`"));
    assert!(
        committed == polyauth::http::admin::users::document_json(),
        "openapi/admin.json differs from what the code generates; run `cargo run -- openapi`"
    );
    let document: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
}

#[tokio::test]
async fn each_tenant_serves_its_document_with_its_own_server_url_and_swagger_ui() {
    use crate::helpers::{Setup, TestApp, pixyle_tenant};
    let app = TestApp::spawn(Setup::new().tenant("p", pixyle_tenant("p", "/p", ""))).await;
    let response = app
        .client
        .get(app.url("/p/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["url"], app.url("/p"));
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/pixyle.json")).unwrap();
    let mut paths = committed["paths"].clone();
    // The public copy does not advertise the admin listener.
    for health in ["/healthz", "/readyz"] {
        paths.as_object_mut().unwrap().remove(health);
    }
    assert_eq!(document["paths"], paths);

    let docs = app.client.get(app.url("/p/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 302);
    assert_eq!(docs.headers()["location"], "docs/");
    let page = app.client.get(app.url("/p/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    // Swagger UI's script comes from the binary, not from a CDN.
    let script = app
        .client
        .get(app.url("/p/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    let initializer = app
        .client
        .get(app.url("/p/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("\"../openapi.json\""), "{initializer}");
}

async fn served_url(app: &crate::helpers::TestApp, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut request = app.client.get(app.url("/p/openapi.json"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let document: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    document["servers"][0]["url"].clone()
}

#[tokio::test]
async fn the_server_url_trusts_forwarded_headers_only_from_trusted_proxies() {
    use crate::helpers::{Setup, TestApp, pixyle_tenant};
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "spoofed.example, auth.example.com"),
    ];
    // 127.0.0.1 is a trusted proxy by default: the right-most values count.
    let trusting = TestApp::spawn(Setup::new().tenant("p", pixyle_tenant("p", "/p", ""))).await;
    assert_eq!(
        served_url(&trusting, &forwarded).await,
        "https://auth.example.com/p"
    );
    let untrusting = TestApp::spawn(
        Setup::new()
            .server("trusted_proxies = []")
            .tenant("p", pixyle_tenant("p", "/p", "")),
    )
    .await;
    assert_eq!(
        served_url(&untrusting, &forwarded).await,
        untrusting.url("/p")
    );
    // A forwarded host that is not a plain name and port is not repeated.
    let junk = served_url(&trusting, &[("x-forwarded-host", "evil.example/x?")]).await;
    assert!(!junk.as_str().unwrap().contains("evil"), "{junk}");
    // Such a `Host` is not even routed.
    let refused = untrusting
        .client
        .get(untrusting.url("/p/openapi.json"))
        .header("host", "evil.example/x?")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}
