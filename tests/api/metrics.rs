//! `/metrics` on the admin listener. The recorder is the process's, shared
//! by every gateway the tests start: each test counts on a tenant id of its
//! own, and where a series has no tenant (argon2, the store, the cache) it
//! checks increments, never totals.

use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, Setup, TestApp, pixyle_tenant};
use crate::redis_server::RedisServer;

const LOGIN: &str = "POST /auth/v1/token";

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// One sample of an exposition: name, labels in order, value.
type Sample = (String, Vec<(String, String)>, f64);

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap();
            let Some((name, labels)) = series.split_once('{') else {
                return (series.to_owned(), Vec::new(), value);
            };
            let labels = labels.strip_suffix('}').unwrap();
            let mut parsed = Vec::new();
            let mut rest = labels;
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"").unwrap();
                // Values here never hold an escaped quote.
                let (value, after) = after.split_once('"').unwrap();
                parsed.push((key.to_owned(), value.to_owned()));
                rest = after.strip_prefix(',').unwrap_or(after);
            }
            (name.to_owned(), parsed, value)
        })
        .collect()
}

/// The value of the series `name` with exactly `labels`; 0 when absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map_or(0.0, |(_, _, value)| value)
}

/// A tenant of its own, failing after one wrong password.
async fn app(id: &str, prefix: &str) -> TestApp {
    let lockout = "[lockout]\nmax_failures = 1\nwindow = \"15m\"\nlock_for = \"15m\"";
    TestApp::spawn(Setup::new().tenant(id, pixyle_tenant(id, prefix, lockout))).await
}

#[tokio::test]
async fn logins_verifications_and_lockouts_are_counted_by_tenant_route_and_outcome() {
    let (id, p) = ("metrics-counted", "/mc");
    let app = app(id, p).await;
    let before = scrape(&app).await;
    let email = format!("user@{id}.test");
    let (status, body) = app.pixyle_login(p, &email, PASSWORD).await;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.verify(p, token).await.status(), 200);
    assert_eq!(app.pixyle_login(p, &email, "wrong").await.0, 401);
    assert_eq!(app.pixyle_login(p, &email, PASSWORD).await.0, 429);
    let after = scrape(&app).await;

    assert_eq!(
        value(
            &after,
            "polyauth_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let requests = |route: &str, status: &str| {
        value(
            &after,
            "polyauth_http_requests_total",
            &[("tenant", id), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests(LOGIN, "2xx"), 1.0, "{after}");
    assert_eq!(requests(LOGIN, "4xx"), 2.0);
    assert_eq!(requests("verify", "2xx"), 1.0);
    assert_eq!(requests("verify", "4xx"), 0.0);
    assert_eq!(
        value(
            &after,
            "polyauth_verify_duration_seconds_count",
            &[("tenant", id)]
        ),
        1.0
    );
    let logins = |outcome: &str| {
        value(
            &after,
            "polyauth_login_duration_seconds_count",
            &[("tenant", id), ("outcome", outcome)],
        )
    };
    assert_eq!(
        (logins("success"), logins("rejected"), logins("locked_out")),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(
        value(&after, "polyauth_lockouts_total", &[("tenant", id)]),
        1.0
    );

    // Shared with the other tests' gateways: at least this test's part.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    // Two logins were hashed; the locked-out one never was.
    assert!(grew("polyauth_argon2_wait_seconds_count", &[]) >= 2.0);
    assert!(grew("polyauth_argon2_run_seconds_count", &[]) >= 2.0);
    assert!(after.contains("\npolyauth_argon2_queue_depth "), "{after}");
    let store = |operation| [("backend", "embedded"), ("operation", operation)];
    let count = "polyauth_store_operation_duration_seconds_count";
    // Verifying a token that was never revoked reads nothing from the store.
    assert!(grew(count, &store("session_start")) >= 1.0);
    assert!(grew(count, &store("lockout_reserve")) >= 3.0);
    // The rejected login's failure is written; the one that passed, with
    // no failure to clear, ended its hold in memory.
    assert!(grew(count, &store("lockout_settle")) >= 1.0);
}

#[tokio::test]
async fn no_label_holds_a_user_a_token_or_an_address() {
    let (id, p) = ("metrics-private", "/mpv");
    let app = app(id, p).await;
    let email = format!("user@{id}.test");
    let (_, body) = app.pixyle_login(p, &email, PASSWORD).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    app.verify(p, &token).await;
    app.verify(p, "not.a.token").await;
    app.pixyle_login(p, &email, "wrong").await;
    app.pixyle_login(p, "nobody@elsewhere.test", "wrong").await;
    // A path no route has: a label never echoes a request's path.
    let stray = app
        .client
        .get(app.url(&format!("{p}/{email}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 404);
    let text = scrape(&app).await;
    let samples = samples(&text);
    assert!(
        samples
            .iter()
            .any(|(_, labels, _)| labels.iter().any(|(_, v)| v == id))
    );
    let signature = token.rsplit('.').next().unwrap();
    for (name, labels, _) in &samples {
        for (key, value) in labels {
            for secret in [
                email.as_str(),
                "nobody@elsewhere.test",
                &token,
                &refresh,
                signature,
                "127.0.0.1",
            ] {
                assert!(!value.contains(secret), "{name}{{{key}={value:?}}}");
            }
            assert!(!value.contains('@'), "{name}{{{key}={value:?}}}");
        }
    }
}

#[tokio::test]
async fn metrics_answers_get_only() {
    let app = app("metrics-get", "/mg").await;
    let response = app
        .client
        .post(format!("{}/metrics", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Not on the public listener either.
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_redis_store_counts_its_calls_and_verdict_cache_lookups() {
    let server = RedisServer::start();
    let (id, p) = ("metrics-redis", "/mr");
    let tenant = pixyle_tenant(id, p, "");
    let setup = Setup::new().redis(&server.url(), "mr").tenant(id, tenant);
    let app = TestApp::spawn(setup).await;
    let before = scrape(&app).await;
    let (_, body) = app
        .pixyle_login(p, &format!("user@{id}.test"), PASSWORD)
        .await;
    let token = body["access_token"].as_str().unwrap();
    let hits = |text: &str| {
        value(
            text,
            "polyauth_verdict_cache_lookups_total",
            &[("kind", "token"), ("result", "hit")],
        )
    };
    // The cache is trusted from the first heartbeat on.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        assert_eq!(app.verify(p, token).await.status(), 200);
        let now = scrape(&app).await;
        if hits(&now) > hits(&before) || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(hits(&after) > hits(&before), "{after}");
    let misses = [("kind", "token"), ("result", "miss")];
    let lookups = "polyauth_verdict_cache_lookups_total";
    assert!(value(&after, lookups, &misses) >= value(&before, lookups, &misses));
    let count = "polyauth_store_operation_duration_seconds_count";
    let reserve = [("backend", "redis"), ("operation", "lockout_reserve")];
    assert!(value(&after, count, &reserve) > value(&before, count, &reserve));
    assert!(after.contains("polyauth_verify_duration_seconds_count{tenant=\"metrics-redis\"}"));

    // An outage: the failed calls are counted by operation.
    let mut server = server;
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.verify(p, token).await.status() == 200 {
        assert!(Instant::now() < deadline, "verify kept answering 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = |text: &str| {
        value(
            text,
            "polyauth_store_errors_total",
            &[("backend", "redis"), ("operation", "token_state")],
        )
    };
    let outage = scrape(&app).await;
    assert!(errors(&outage) > errors(&after), "{outage}");
}

#[tokio::test]
async fn metrics_off_serves_no_metrics_and_verifies_as_before() {
    let (id, p) = ("metrics-off", "/moff");
    let setup = Setup::new()
        .server("metrics = false")
        .tenant(id, pixyle_tenant(id, p, ""));
    let app = TestApp::spawn(setup).await;
    let metrics = app.client.get(format!("{}/metrics", app.admin_address));
    assert_eq!(metrics.send().await.unwrap().status(), 404);
    let healthz = app.client.get(format!("{}/healthz", app.admin_address));
    assert_eq!(healthz.send().await.unwrap().status(), 200);
    let (status, body) = app
        .pixyle_login(p, &format!("user@{id}.test"), PASSWORD)
        .await;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.verify(p, token).await.status(), 200);
}
