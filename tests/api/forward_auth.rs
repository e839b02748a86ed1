//! Forward-auth as proxies ask it: the conventions naming the original
//! request (Envoy's path suffix, Traefik's and Caddy's `X-Forwarded-*`,
//! nginx's `X-Original-*`), the tenant's `[[access]]` rules, and `check`
//! errors for bad rules.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, Setup, TestApp, password_hash, pixyle_tenant, raw_exchange, status_json,
};

/// Rules most tests here use.
pub const RULES: &str = r#"
[[access]]
paths = ["/health", "/public/**"]
methods = ["GET", "HEAD"]
policy = "public"

[[access]]
paths = ["/admin/**"]
roles = ["admin"]

[[access]]
paths = ["/internal/**"]
policy = "deny"
"#;

/// A Pixyle tenant `a` at `prefix` with [`RULES`]: `user@a.test` has the
/// `admin` role, `plain@a.test` only `user`.
pub fn ruled_tenant(prefix: &str) -> String {
    format!(
        "{}\n[[users]]\nemail = \"plain@a.test\"\npassword_hash = \"{}\"\nroles = [\"user\"]\n",
        pixyle_tenant("a", prefix, RULES),
        password_hash(PASSWORD)
    )
}

async fn ruled_app() -> TestApp {
    TestApp::spawn(Setup::new().tenant("a", ruled_tenant("/a"))).await
}

async fn access_token(app: &TestApp, email: &str) -> String {
    let (status, body) = app.pixyle_login("/a", email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Verify at `path` under `/a` with `method`, `headers` and maybe a token:
/// the status and `X-Auth-Subject`; every answer is uncacheable.
async fn ask(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    token: Option<&str>,
) -> (u16, Option<String>) {
    let mut request = app.client.request(method, app.url(&format!("/a{path}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{path} {headers:?}"
    );
    let subject = response
        .headers()
        .get("x-auth-subject")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), subject)
}

const VERIFY: &str = "/_polyauth/verify";

/// `X-Forwarded-Method`/`-Uri`, as Traefik and Caddy send them.
fn forwarded<'a>(method: &'a str, uri: &'a str) -> [(&'a str, &'a str); 2] {
    [("x-forwarded-method", method), ("x-forwarded-uri", uri)]
}

/// `X-Original-Method`/`-URI`, as the shipped nginx config sends them.
fn original<'a>(method: &'a str, uri: &'a str) -> [(&'a str, &'a str); 2] {
    [("x-original-method", method), ("x-original-uri", uri)]
}

#[tokio::test]
async fn access_rules_decide_with_the_first_match() {
    let app = ruled_app().await;
    let admin = access_token(&app, "user@a.test").await;
    let plain = access_token(&app, "plain@a.test").await;
    let get = Method::GET;
    let at = |uri: &'static str| forwarded("GET", uri);
    // Public: no credential needed, X-Auth-* still set for a valid one,
    // and a bad one does not turn the page away.
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/health"), None).await,
        (200, None)
    );
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/public"), None).await,
        (200, None)
    );
    let (status, subject) = ask(
        &app,
        get.clone(),
        VERIFY,
        &at("/public/a.css"),
        Some(&plain),
    )
    .await;
    assert_eq!(status, 200);
    assert!(subject.is_some());
    assert_eq!(
        ask(
            &app,
            get.clone(),
            VERIFY,
            &at("/public/a.css"),
            Some("garbage")
        )
        .await,
        (200, None)
    );
    // Public only for the methods listed.
    let post = forwarded("POST", "/public/form");
    assert_eq!(ask(&app, get.clone(), VERIFY, &post, None).await.0, 401);
    // A role rule: the principal needs one of the roles.
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/admin/users"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/admin/users"), Some(&plain)).await,
        (403, None)
    );
    let (status, subject) = ask(&app, get.clone(), VERIFY, &at("/admin/users"), Some(&admin)).await;
    assert_eq!((status, subject.is_some()), (200, true));
    // Deny: refused whatever is presented.
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/internal"), Some(&admin)).await,
        (403, None)
    );
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/internal/x"), None).await,
        (403, None)
    );
    // No rule matches: a valid credential is needed.
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/orders"), None).await,
        (401, None)
    );
    assert_eq!(
        ask(&app, get.clone(), VERIFY, &at("/orders"), Some(&plain))
            .await
            .0,
        200
    );
    assert_eq!(ask(&app, get, VERIFY, &[], Some(&plain)).await.0, 200);
}

#[tokio::test]
async fn a_denied_or_roleless_answer_is_the_dialects_403_body() {
    let app = ruled_app().await;
    let plain = access_token(&app, "plain@a.test").await;
    for (uri, token) in [("/internal/x", None), ("/admin", Some(plain.as_str()))] {
        let mut request = app.client.get(app.url("/a/_polyauth/verify"));
        request = request
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-method", "GET");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = status_json(request.send().await.unwrap()).await;
        assert_eq!(answer, (403, json!({"error": "Forbidden"})), "{uri}");
    }
}

#[tokio::test]
async fn the_envoy_path_suffix_names_the_original_request_for_any_method() {
    let app = ruled_app().await;
    let plain = access_token(&app, "plain@a.test").await;
    let suffix = |path: &str| format!("{VERIFY}{path}");
    assert_eq!(
        ask(&app, Method::GET, &suffix("/public/x"), &[], None)
            .await
            .0,
        200
    );
    assert_eq!(
        ask(&app, Method::HEAD, &suffix("/health"), &[], None)
            .await
            .0,
        200
    );
    // Envoy sends the original method: it takes part.
    assert_eq!(
        ask(&app, Method::POST, &suffix("/public/x"), &[], None)
            .await
            .0,
        401
    );
    assert_eq!(
        ask(&app, Method::DELETE, &suffix("/internal/x"), &[], None)
            .await
            .0,
        403
    );
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(
        ask(&app, purge, &suffix("/orders"), &[], Some(&plain))
            .await
            .0,
        200
    );
    assert_eq!(
        ask(&app, Method::PATCH, &suffix("/admin/x"), &[], Some(&plain))
            .await
            .0,
        403
    );
    // The original path `/`.
    assert_eq!(ask(&app, Method::GET, &suffix("/"), &[], None).await.0, 401);
    // The verify path itself still serves GET and POST only.
    let response = app
        .client
        .put(app.url("/a/_polyauth/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn traefik_caddy_and_nginx_headers_name_the_original_request() {
    let app = ruled_app().await;
    for headers in [forwarded("GET", "/public/x"), original("GET", "/public/x")] {
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            200,
            "{headers:?}"
        );
    }
    for headers in [
        forwarded("POST", "/public/x"),
        original("POST", "/public/x"),
    ] {
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            401,
            "{headers:?}"
        );
    }
    for headers in [forwarded("GET", "/internal"), original("GET", "/internal")] {
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            403,
            "{headers:?}"
        );
    }
    // Without a method header, the verify request's own method is the original's.
    let uri_only = [("x-original-uri", "/public/x")];
    assert_eq!(ask(&app, Method::GET, VERIFY, &uri_only, None).await.0, 200);
    assert_eq!(
        ask(&app, Method::POST, VERIFY, &uri_only, None).await.0,
        401
    );
    // Without any convention, the verify request is the original.
    assert_eq!(ask(&app, Method::GET, VERIFY, &[], None).await.0, 401);
}

#[tokio::test]
async fn conventions_are_read_in_order_suffix_forwarded_original() {
    let app = ruled_app().await;
    let public = "/public/x";
    let denied = "/internal/x";
    // The path suffix wins over both header pairs.
    let headers = [forwarded("GET", denied), original("GET", denied)].concat();
    let suffix = format!("{VERIFY}{public}");
    assert_eq!(ask(&app, Method::GET, &suffix, &headers, None).await.0, 200);
    let suffix = format!("{VERIFY}{denied}");
    let headers = [forwarded("GET", public), original("GET", public)].concat();
    assert_eq!(ask(&app, Method::GET, &suffix, &headers, None).await.0, 403);
    // X-Forwarded-* wins over X-Original-*.
    let headers = [forwarded("GET", public), original("GET", denied)].concat();
    assert_eq!(ask(&app, Method::GET, VERIFY, &headers, None).await.0, 200);
    let headers = [forwarded("GET", denied), original("GET", public)].concat();
    assert_eq!(ask(&app, Method::GET, VERIFY, &headers, None).await.0, 403);
}

#[tokio::test]
async fn the_query_never_takes_part_in_matching() {
    let app = ruled_app().await;
    let cases = [
        (forwarded("GET", "/public/x?next=/internal/x"), 200),
        (forwarded("GET", "/internal/x?/public/x"), 403),
        (original("GET", "/public?x=1"), 200),
        (original("GET", "/orders?/public/x"), 401),
    ];
    for (headers, status) in cases {
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            status,
            "{headers:?}"
        );
    }
    let query = format!("{VERIFY}/public/x?then=/internal");
    assert_eq!(ask(&app, Method::GET, &query, &[], None).await.0, 200);
    let query = format!("{VERIFY}/internal/x?/public/x");
    assert_eq!(ask(&app, Method::GET, &query, &[], None).await.0, 403);
}

/// The status line of a raw `GET <target>` on the tenant with `headers`.
async fn raw_status(app: &TestApp, target: &str, headers: &str) -> String {
    let request =
        format!("GET {target} HTTP/1.1\r\nhost: localhost\r\n{headers}connection: close\r\n\r\n");
    let answer = raw_exchange(app.port, &request).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn path_tricks_never_reach_a_public_rule() {
    let app = ruled_app().await;
    let tricks = [
        "/public/../internal/x",
        "/public/./x",
        "/public/%2e%2e/internal/x",
        "/public/%2E%2E/admin",
        "/public//x",
        "//public/x",
        "/public%2Fx",
        "/public/%252e%252e/internal",
        "/public/..;/internal/x",
        "/public/%5C..%5Cinternal",
        "/public/%00",
        "/public/%zz",
        // An encoded `?` is no query: a server reading the path decoded
        // would otherwise see `/public` where another reads more.
        "/public%3F/internal/x",
        "/public%3f/../internal",
    ];
    for trick in tricks {
        // In a header, as nginx, Traefik and Caddy pass it on.
        for headers in [forwarded("GET", trick), original("GET", trick)] {
            assert_eq!(
                ask(&app, Method::GET, VERIFY, &headers, None).await.0,
                403,
                "{headers:?}"
            );
        }
        // As Envoy's path suffix, sent byte for byte (a URL library would
        // resolve the dot segments first).
        let status = raw_status(&app, &format!("/a{VERIFY}{trick}"), "").await;
        assert!(status.starts_with("HTTP/1.1 403"), "{trick}: {status}");
    }
    // The Envoy suffix follows the verify path spelled exactly: another
    // spelling of it names no path (a later `/_polyauth/verify/` in the
    // path is no verify path either).
    for target in [
        format!("/a/%5Fpolyauth/verify/x{VERIFY}/public/x"),
        format!("/a{VERIFY}/internal{VERIFY}/public/x"),
    ] {
        let status = raw_status(&app, &target, "").await;
        assert!(status.starts_with("HTTP/1.1 403"), "{target}: {status}");
    }
    // Another spelling of a public path is not public.
    for other in ["/PUBLIC/x", "/Public/x", "/HEALTH"] {
        let headers = forwarded("GET", other);
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            401,
            "{other}"
        );
    }
    // ... while one of a denied path is still denied.
    for other in ["/INTERNAL/x", "/%69nternal/x"] {
        let headers = original("GET", other);
        assert_eq!(
            ask(&app, Method::GET, VERIFY, &headers, None).await.0,
            403,
            "{other}"
        );
    }
    // Plain text, encoded, is that text.
    let headers = forwarded("GET", "/%70ublic/a%20b");
    assert_eq!(ask(&app, Method::GET, VERIFY, &headers, None).await.0, 200);
    // A header naming the path twice names none.
    let status = raw_status(
        &app,
        &format!("/a{VERIFY}"),
        "x-forwarded-uri: /public/x\r\nx-forwarded-uri: /internal/x\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
}

/// A minimal tenant `<id>` at `/<id>` of `dialect` denying everything.
fn denying_tenant(id: &str, dialect: &str) -> String {
    format!(
        "id = \"{id}\"\ndialect = \"{dialect}\"\npath_prefix = \"/{id}\"\nissuer = \"iss\"\n\
         audience = \"aud\"\n[[access]]\npaths = [\"/**\"]\npolicy = \"deny\"\n"
    )
}

#[tokio::test]
async fn every_built_in_dialect_answers_deny_with_a_real_403() {
    let dialects: [(&str, Value); 5] = [
        ("pixyle", json!({"error": "Forbidden"})),
        (
            "visualyze",
            json!({"data": {}, "message": "Forbidden", "status": 403}),
        ),
        (
            "payhub",
            json!({"responseCode": 403, "responseMessage": "invalid token"}),
        ),
        (
            "elyssa",
            json!({"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"}),
        ),
        ("oauth-form", json!({"detail": "Forbidden"})),
    ];
    let setup = dialects.iter().fold(Setup::new(), |setup, (dialect, _)| {
        setup.tenant(dialect, denying_tenant(&format!("t-{dialect}"), dialect))
    });
    let app = TestApp::spawn(setup).await;
    for (dialect, body) in dialects {
        let response = app
            .client
            .get(app.url(&format!("/t-{dialect}/_polyauth/verify/anything")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{dialect}");
        assert_eq!(status_json(response).await, (403, body), "{dialect}");
    }
}

mod check {
    //! Bad rules are `check` errors naming the file and the key.

    use crate::helpers::{Setup, pixyle_tenant};

    fn error_of(rule: &str) -> polyauth::config::ConfigError {
        let dir = tempfile::tempdir().unwrap();
        let tenant = pixyle_tenant("t", "/t", &format!("[[access]]\n{rule}\n"));
        let config = Setup::new().tenant("t", tenant).write(dir.path());
        polyauth::config::load(&config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {rule}"))
    }

    #[test]
    fn bad_rules_are_rejected_naming_file_and_key() {
        let cases = [
            ("paths = []", "access[0].paths", "at least one"),
            (
                "paths = [\"/a**b\"]",
                "access[0].paths[0]",
                "`**` inside a segment",
            ),
            (
                "paths = [\"/ok\", \"a**b\"]",
                "access[0].paths[1]",
                "must start with `/`",
            ),
            (
                "paths = [\"public/**\"]",
                "access[0].paths[0]",
                "must start with `/`",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"open\"",
                "access[0].policy",
                "unknown policy \"open\"",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"public\"\nroles = [\"x\"]",
                "access[0].roles",
                "only with",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"deny\"\nroles = [\"x\"]",
                "access[0].roles",
                "only with",
            ),
            (
                "paths = [\"/a\"]\nmethods = [\"get\"]",
                "access[0].methods[0]",
                "upper case",
            ),
            (
                "paths = [\"/a\"]\nmethods = []",
                "access[0].methods",
                "empty list",
            ),
            (
                "paths = [\"/a\"]\nmethods = \"GET\"",
                "access[0].methods",
                "sequence",
            ),
            (
                "paths = [\"/a\"]\nroles = [\"a,b\"]",
                "access[0].roles[0]",
                "`,`",
            ),
            ("path = [\"/a\"]", "access[0].path", "unknown field"),
        ];
        for (rule, key, problem) in cases {
            let error = error_of(rule);
            assert!(error.file.ends_with("t.toml"), "{rule}: {error}");
            assert_eq!(error.key, key, "{rule}: {error}");
            assert!(error.problem.contains(problem), "{rule}: {error}");
        }
    }

    #[test]
    fn polyauth_check_names_the_file_and_key_of_a_bad_rule() {
        let dir = tempfile::tempdir().unwrap();
        let rules = "[[access]]\npaths = [\"/ok\"]\n[[access]]\npaths = [\"/x/a**b\"]\n";
        let tenant = pixyle_tenant("t", "/t", rules);
        let config = Setup::new().tenant("t", tenant).write(dir.path());
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("t.toml: `access[1].paths[0]`: \"/x/a**b\""),
            "{stderr}"
        );
    }
}
