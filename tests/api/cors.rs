//! CORS (SPEC §11): a tenant's `cors_origins`, else its dialect's
//! `[cors] origins` (PayHub's `*`), else no CORS headers at all. A real
//! browser first, then the headers one by one.

use std::path::Path;

use polyauth::config::ConfigError;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::browser::{Browser, PageSite};
use crate::helpers::{PASSWORD, Setup, TestApp, password_hash, pixyle_tenant};

const DASHBOARD: &str = "https://dashboard.example";
const ELSEWHERE: &str = "https://elsewhere.example";

/// A PayHub tenant `id` at `/id`, one user `merchant@ph.test`; `extra` at
/// the top of the file.
fn payhub(id: &str, extra: &str) -> String {
    payhub_mounted(id, &format!("path_prefix = \"/{id}\""), extra)
}

fn payhub_mounted(id: &str, mount: &str, extra: &str) -> String {
    format!(
        "id = \"{id}\"\ndialect = \"payhub\"\n{mount}\nissuer = \"iss\"\naudience = \"aud\"\n{extra}\n\
         [[users]]\nemail = \"merchant@ph.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    )
}

fn origins(list: &[&str]) -> String {
    format!("cors_origins = {list:?}")
}

/// The login a page's script sends: a JSON body, so a browser preflights it.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>dashboard</title>
<script>
const gateway = __GATEWAY__;
const credentials = JSON.stringify({ emailId: "merchant@ph.test", password: __PASSWORD__ });

async function call(path, init) {
  try {
    const response = await fetch(gateway + path, init);
    const text = await response.text();
    const body = text ? JSON.parse(text) : {};
    return {
      fetched: true,
      status: response.status,
      responseCode: body.responseCode,
      token: body.responseData ? body.responseData.token : undefined,
      requestId: response.headers.get("x-request-id"),
    };
  } catch (error) {
    return { fetched: false, error: String(error) };
  }
}

function login(tenant, more) {
  return call("/" + tenant + "/user/login", Object.assign({
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Request-Id": "from-the-page" },
    body: credentials,
  }, more || {}));
}

(async () => {
  const report = {};
  report.listed = await login("listed");
  report.unlisted = await login("unlisted");
  report.vendor_default = await login("vendor");
  report.turned_off = await login("off");
  report.vendor_with_cookies = await login("vendor", { credentials: "include" });
  report.listed_with_cookies = await login("listed", { credentials: "include" });
  // A service call with PayHub's own credential header, preflighted too.
  report.verify = report.listed.token
    ? await call("/listed/_polyauth/verify", { headers: { token: report.listed.token } })
    : { fetched: false, error: "no token to verify" };
  for (const result of Object.values(report)) delete result.token;
  await fetch("/report", { method: "POST", body: JSON.stringify(report) });
})();
</script>
"#;

#[tokio::test]
async fn a_browser_on_another_origin_logs_in_only_where_its_origin_is_allowed() {
    let site = PageSite::bind();
    let origin = site.origin();
    let app = TestApp::spawn(
        Setup::new()
            .tenant("listed", payhub("listed", &origins(&[DASHBOARD, &origin])))
            .tenant("unlisted", payhub("unlisted", &origins(&[DASHBOARD])))
            .tenant("vendor", payhub("vendor", ""))
            .tenant("off", payhub("off", "cors_origins = []")),
    )
    .await;
    let html = PAGE
        .replace("__GATEWAY__", &json!(app.address).to_string())
        .replace("__PASSWORD__", &json!(PASSWORD).to_string());
    let mut page = site.serve(html);
    let browser = Browser::open(&format!("{}/", page.origin));
    let report = page.report(&browser).await;
    drop(browser);

    let read = |requested: &str| json!({ "fetched": true, "status": 200, "responseCode": 200, "requestId": requested });
    assert_eq!(report["listed"], read("from-the-page"), "{report:#}");
    assert_eq!(
        report["vendor_default"],
        read("from-the-page"),
        "{report:#}"
    );
    assert_eq!(report["verify"]["status"], 200, "{report:#}");
    for blocked in [
        "unlisted",
        "turned_off",
        "vendor_with_cookies",
        "listed_with_cookies",
    ] {
        assert_eq!(report[blocked]["fetched"], false, "{blocked}: {report:#}");
        let error = report[blocked]["error"].as_str().unwrap_or_default();
        assert!(error.contains("TypeError"), "{blocked}: {report:#}");
    }
}

/// A preflight for a POST from `origin`, asking for `headers`.
async fn preflight(app: &TestApp, path: &str, origin: &str, headers: Option<&str>) -> HeaderMapOf {
    let mut request = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST");
    if let Some(headers) = headers {
        request = request.header("access-control-request-headers", headers);
    }
    HeaderMapOf::of(request.send().await.unwrap())
}

/// A login with `origin` (or none).
async fn login(app: &TestApp, path: &str, origin: Option<&str>, password: &str) -> HeaderMapOf {
    let mut request = app
        .client
        .post(app.url(path))
        .json(&json!({ "emailId": "merchant@ph.test", "password": password }));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    HeaderMapOf::of(request.send().await.unwrap())
}

/// A response's status and headers.
struct HeaderMapOf {
    status: u16,
    headers: HeaderMap,
}

impl HeaderMapOf {
    fn of(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every `Access-Control-*` header.
    fn cors(&self) -> Vec<String> {
        self.headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .filter(|name| name.starts_with("access-control-"))
            .collect()
    }

    /// Whether `Vary` names `Origin`.
    fn varies_by_origin(&self) -> bool {
        self.headers
            .get_all("vary")
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(','))
            .any(|name| name.trim().eq_ignore_ascii_case("origin"))
    }
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_204_with_each_header() {
    let app = TestApp::spawn(Setup::new().tenant("ph", payhub("ph", &origins(&[DASHBOARD])))).await;
    let answer = preflight(&app, "/ph/user/login", DASHBOARD, Some("content-type")).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
    assert!(answer.varies_by_origin(), "{:?}", answer.headers);
    let methods = answer.get("access-control-allow-methods").unwrap();
    let methods: Vec<&str> = methods.split(',').map(str::trim).collect();
    assert!(
        methods.contains(&"POST") && methods.contains(&"GET"),
        "{methods:?}"
    );
    assert_eq!(
        answer.get("access-control-allow-headers"),
        Some("content-type")
    );
    let max_age: u32 = answer
        .get("access-control-max-age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    assert_eq!(answer.get("access-control-allow-credentials"), None);
    assert_eq!(answer.get("access-control-expose-headers"), None);
    assert!(answer.get("x-request-id").is_some());
}

#[tokio::test]
async fn allow_headers_are_those_requested_that_the_tenant_reads() {
    let app = TestApp::spawn(
        Setup::new()
            .tenant("ph", payhub("ph", &origins(&[DASHBOARD])))
            .tenant("px", pixyle_tenant("px", "/px", &origins(&[DASHBOARD]))),
    )
    .await;
    let asked =
        "Content-Type, X-Unknown, token, apikey, authorization, x-request-id, x-company-id, cookie";
    let cases = [
        // PayHub's clients send `token` and `apiKey`.
        (
            "/ph/user/login",
            asked,
            Some("content-type, token, apikey, authorization, x-request-id, x-company-id"),
        ),
        // Pixyle's read Authorization only.
        (
            "/px/auth/v1/token",
            asked,
            Some("content-type, authorization, x-request-id, x-company-id"),
        ),
        ("/ph/user/login", "x-unknown, cookie", None),
        ("/ph/user/login", "TOKEN,APIKEY", Some("token, apikey")),
    ];
    for (path, asked, allowed) in cases {
        let answer = preflight(&app, path, DASHBOARD, Some(asked)).await;
        assert_eq!(answer.status, 204, "{path} {asked}");
        assert_eq!(
            answer.get("access-control-allow-headers"),
            allowed,
            "{path} {asked}"
        );
    }
    // Nothing asked, nothing sent.
    let answer = preflight(&app, "/ph/user/login", DASHBOARD, None).await;
    assert_eq!(answer.get("access-control-allow-headers"), None);
}

#[tokio::test]
async fn actual_answers_carry_the_origin_and_expose_retry_after_and_the_request_id() {
    let lockout = "[lockout]\nmax_failures = 1\nwindow = \"15m\"\nlock_for = \"15m\"";
    let extra = format!("{}\n{lockout}", origins(&[DASHBOARD]));
    let app = TestApp::spawn(Setup::new().tenant("ph", payhub("ph", &extra))).await;
    let answers = [
        login(&app, "/ph/user/login", Some(DASHBOARD), PASSWORD).await,
        login(&app, "/ph/user/login", Some(DASHBOARD), "wrong").await,
        // Locked out: the answer a browser must read Retry-After from.
        login(&app, "/ph/user/login", Some(DASHBOARD), "wrong").await,
        HeaderMapOf::of(
            app.client
                .get(app.url("/ph/nothing-here"))
                .header("origin", DASHBOARD)
                .send()
                .await
                .unwrap(),
        ),
    ];
    assert!(answers[2].get("retry-after").is_some());
    for answer in &answers {
        assert_eq!(answer.status, 200, "PayHub answers 200");
        assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
        let exposed: Vec<String> = answer
            .get("access-control-expose-headers")
            .unwrap()
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .collect();
        assert_eq!(exposed, ["retry-after", "x-request-id"]);
        assert!(answer.varies_by_origin());
        assert_eq!(answer.get("access-control-allow-credentials"), None);
    }
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers() {
    let app = TestApp::spawn(Setup::new().tenant("ph", payhub("ph", &origins(&[DASHBOARD])))).await;
    for origin in [
        ELSEWHERE,
        "https://dashboard.example.evil",
        "http://dashboard.example",
        "https://dashboard.example:8443",
        "null",
    ] {
        let answer = preflight(&app, "/ph/user/login", origin, Some("content-type")).await;
        assert_eq!(answer.cors(), Vec::<String>::new(), "{origin}");
        assert_ne!(answer.status, 204, "{origin}");
        let answer = login(&app, "/ph/user/login", Some(origin), PASSWORD).await;
        assert_eq!(answer.cors(), Vec::<String>::new(), "{origin}");
        // The answer depends on the origin: a cache must keep them apart.
        assert!(answer.varies_by_origin());
    }
    let answer = login(&app, "/ph/user/login", None, PASSWORD).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
}

#[tokio::test]
async fn a_tenant_without_cors_sends_no_cors_headers() {
    let app = TestApp::spawn(Setup::new().tenant("px", pixyle_tenant("px", "/px", ""))).await;
    let answer = preflight(&app, "/px/auth/v1/token", DASHBOARD, Some("content-type")).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
    assert_eq!(answer.status, 405, "an OPTIONS the route does not serve");
    let answer = HeaderMapOf::of(
        app.client
            .post(app.url("/px/auth/v1/token"))
            .header("origin", DASHBOARD)
            .json(&json!({ "email": "user@px.test", "password": PASSWORD }))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.cors(), Vec::<String>::new());
    assert!(!answer.varies_by_origin());
}

#[tokio::test]
async fn payhub_tenants_answer_any_origin_with_a_star_unless_their_file_says_otherwise() {
    let app = TestApp::spawn(
        Setup::new()
            .tenant("vendor", payhub("vendor", ""))
            .tenant("own", payhub("own", &origins(&[DASHBOARD])))
            .tenant("off", payhub("off", "cors_origins = []"))
            .tenant("star", payhub("star", &origins(&["*"]))),
    )
    .await;
    for tenant in ["vendor", "star"] {
        let path = format!("/{tenant}/user/login");
        let answer = preflight(&app, &path, ELSEWHERE, Some("content-type, token")).await;
        assert_eq!(answer.status, 204, "{tenant}");
        assert_eq!(answer.get("access-control-allow-origin"), Some("*"));
        assert_eq!(
            answer.get("access-control-allow-headers"),
            Some("content-type, token")
        );
        let answer = login(&app, &path, Some(ELSEWHERE), PASSWORD).await;
        assert_eq!(answer.get("access-control-allow-origin"), Some("*"));
        assert!(answer.get("access-control-expose-headers").is_some());
        // Credentials are never allowed with `*`.
        assert_eq!(answer.get("access-control-allow-credentials"), None);
    }
    // The tenant's own list replaces the vendor's `*` ...
    let answer = preflight(&app, "/own/user/login", ELSEWHERE, None).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
    let answer = preflight(&app, "/own/user/login", DASHBOARD, None).await;
    assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
    // ... and an empty one turns CORS off.
    let answer = preflight(&app, "/off/user/login", DASHBOARD, None).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
    let answer = login(&app, "/off/user/login", Some(DASHBOARD), PASSWORD).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
}

#[tokio::test]
async fn every_gateway_path_and_the_whole_mount_answer_preflights() {
    let app = TestApp::spawn(Setup::new().tenant("ph", payhub("ph", &origins(&[DASHBOARD])))).await;
    for path in [
        "/_polyauth/verify",
        "/_polyauth/verify/api/orders",
        "/.well-known/jwks.json",
        "/oauth2/revoke",
        "/oauth2/introspect",
        "/openapi.json",
        "/docs",
        "/nothing-here",
    ] {
        let answer = preflight(&app, &format!("/ph{path}"), DASHBOARD, Some("token")).await;
        assert_eq!(answer.status, 204, "{path}");
        assert_eq!(
            answer.get("access-control-allow-origin"),
            Some(DASHBOARD),
            "{path}"
        );
        assert_eq!(answer.get("access-control-allow-headers"), Some("token"));
    }
    // Forward-auth's own answers carry the headers too.
    let answer = HeaderMapOf::of(
        app.client
            .get(app.url("/ph/_polyauth/verify"))
            .header("origin", DASHBOARD)
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(answer.status, 401);
    assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
    // An OPTIONS that is not a preflight is not answered as one.
    let answer = HeaderMapOf::of(
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/ph/user/login"))
            .header("origin", DASHBOARD)
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(answer.get("allow"), Some("POST"), "the dialect's 405");
}

#[tokio::test]
async fn a_tenant_routed_by_host_answers_preflights_too() {
    let mount = "hosts = [\"auth.cors.test\"]";
    let app = TestApp::spawn(
        Setup::new().tenant("h", payhub_mounted("h", mount, &origins(&[DASHBOARD]))),
    )
    .await;
    let send = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .header("host", "Auth.Cors.Test")
            .header("origin", DASHBOARD)
    };
    for path in ["/user/login", "/_polyauth/verify"] {
        let answer = HeaderMapOf::of(
            send(reqwest::Method::OPTIONS, path)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap(),
        );
        assert_eq!(answer.status, 204, "{path}");
        assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
        assert_eq!(
            answer.get("access-control-allow-headers"),
            Some("content-type")
        );
    }
    let answer = HeaderMapOf::of(
        send(reqwest::Method::POST, "/user/login")
            .json(&json!({ "emailId": "merchant@ph.test", "password": PASSWORD }))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
}

#[tokio::test]
async fn a_dialect_file_sets_the_default_of_its_tenants() {
    let kiosk = include_str!("../../dialects/pixyle.toml").replacen(
        "name = \"pixyle\"",
        "name = \"kiosk\"",
        1,
    ) + &format!("\n[cors]\norigins = [{DASHBOARD:?}]\n");
    let tenant =
        pixyle_tenant("k", "/k", "").replacen("dialect = \"pixyle\"", "dialect = \"kiosk\"", 1);
    let app = TestApp::spawn(Setup::new().dialect("kiosk", &kiosk).tenant("k", tenant)).await;
    let answer = preflight(&app, "/k/auth/v1/token", DASHBOARD, Some("content-type")).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.get("access-control-allow-origin"), Some(DASHBOARD));
    let answer = preflight(&app, "/k/auth/v1/token", ELSEWHERE, Some("content-type")).await;
    assert_eq!(answer.cors(), Vec::<String>::new());
}

/// The error loading `setup` gives.
fn error_of(setup: Setup) -> ConfigError {
    let dir = tempfile::tempdir().unwrap();
    load_error(dir.path(), &setup)
}

fn load_error(dir: &Path, setup: &Setup) -> ConfigError {
    polyauth::config::load(&setup.write(dir))
        .err()
        .expect("the configuration loaded, but it should have been rejected")
}

#[test]
fn check_refuses_an_origin_that_is_not_scheme_host_and_port() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["https://dashboard.example/"], "cors_origins[0]", "path"),
        (
            &["https://dashboard.example/app"],
            "cors_origins[0]",
            "path",
        ),
        (
            &["https://dashboard.example?x=1"],
            "cors_origins[0]",
            "path",
        ),
        (&["dashboard.example"], "cors_origins[0]", "scheme"),
        (&["https://"], "cors_origins[0]", "host"),
        (
            &[DASHBOARD, "https://a.example:443"],
            "cors_origins[1]",
            "default port",
        ),
        (&["http://a.example:99999"], "cors_origins[0]", "port"),
        (&["https://user@a.example"], "cors_origins[0]", "user"),
        (&["https://dashbörd.example"], "cors_origins[0]", "ASCII"),
        (&[""], "cors_origins[0]", "empty"),
        (&[DASHBOARD, "*"], "cors_origins[1]", "alone"),
        (
            &[DASHBOARD, "https://Dashboard.example"],
            "cors_origins[1]",
            "repeated",
        ),
    ];
    for (list, key, problem) in cases {
        let error = error_of(Setup::new().tenant("ph", payhub("ph", &origins(list))));
        assert!(error.file.ends_with("ph.toml"), "{error}");
        assert_eq!(&error.key, key, "{list:?}: {error}");
        assert!(error.problem.contains(problem), "{list:?}: {error}");
    }
    for good in [
        &["*"][..],
        &[
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ],
        &["https://dashboard.example", "chrome-extension://abcdefghij"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::new().tenant("ph", payhub("ph", &origins(good)));
        polyauth::config::load(&setup.write(dir.path()))
            .unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
    }
}

#[test]
fn check_refuses_a_bad_cors_table_in_a_dialect_file() {
    let kiosk = |cors: &str| {
        include_str!("../../dialects/pixyle.toml").replacen(
            "name = \"pixyle\"",
            "name = \"kiosk\"",
            1,
        ) + "\n[cors]\n"
            + cors
            + "\n"
    };
    let tenant =
        pixyle_tenant("k", "/k", "").replacen("dialect = \"pixyle\"", "dialect = \"kiosk\"", 1);
    for (cors, key, problem) in [
        (
            "origins = [\"https://a.example/\"]",
            "cors.origins[0]",
            "path",
        ),
        (
            "origins = [\"*\", \"https://a.example\"]",
            "cors.origins[0]",
            "alone",
        ),
        ("colour = \"red\"", "cors.colour", "unknown field"),
    ] {
        let error = error_of(
            Setup::new()
                .dialect("kiosk", &kiosk(cors))
                .tenant("k", tenant.clone()),
        );
        assert!(error.file.ends_with("kiosk.toml"), "{error}");
        assert_eq!(error.key, key, "{cors}: {error}");
        assert!(error.problem.contains(problem), "{cors}: {error}");
    }
}

#[test]
fn check_names_the_origins_each_tenant_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("own", payhub("own", &origins(&[DASHBOARD, ELSEWHERE])))
        .tenant("vendor", payhub("vendor", ""))
        .tenant("off", payhub("off", "cors_origins = []"))
        .tenant("px", pixyle_tenant("px", "/px", ""))
        .write(dir.path());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = |id: &str| {
        let tenant = format!("tenant {id} ");
        stdout
            .lines()
            .find(|l| l.contains(&tenant))
            .unwrap()
            .to_owned()
    };
    assert!(line("own").ends_with(&format!("CORS {DASHBOARD}, {ELSEWHERE}")));
    assert!(line("vendor").ends_with("CORS * (dialect default)"));
    assert!(line("off").ends_with("no CORS"));
    assert!(line("px").ends_with("no CORS"));
}
