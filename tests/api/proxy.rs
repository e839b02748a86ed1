//! The upstream proxy, against real upstreams: what is forwarded, what is
//! not, its own answers, its limits, memory under large bodies, WebSockets.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, RAW_WAIT, Served, Setup, TestApp, connect_from, pixyle_tenant, raw_exchange,
    status_json,
};
use crate::upstream::{RawUpstream, TlsUpstream, Upstream, WsEcho};

const MIB: u64 = 1024 * 1024;

/// A Pixyle tenant `id` at `prefix` proxying to `upstream`, with `extra`.
fn proxied(id: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    pixyle_tenant(id, prefix, &format!("upstream = {upstream:?}\n{extra}"))
}

/// A gateway with one proxied tenant `p` at `/p`.
async fn gateway(upstream: &str, extra: &str) -> TestApp {
    TestApp::spawn(Setup::new().tenant("p", proxied("p", "/p", upstream, extra))).await
}

/// An access token of `user@p.test`.
async fn token(app: &TestApp) -> String {
    let (status, body) = app.pixyle_login("/p", "user@p.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The subject forward-auth names for `token`.
async fn subject_of(app: &TestApp, token: &str) -> String {
    let response = app.verify("/p", token).await;
    assert_eq!(response.status(), 200);
    response.headers()["x-auth-subject"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The JSON body of a raw HTTP/1.1 answer (plain or chunked).
fn body_of(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut rest = body;
        let mut joined = String::new();
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            joined.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        joined
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

/// Every value of header `name` the upstream's echo reports.
fn echoed<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn method_path_query_and_body_reach_the_upstream_below_its_base() {
    let upstream = Upstream::start();
    let app = gateway(&format!("{}/base/", upstream.url()), "").await;
    let token = token(&app).await;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body = if method == reqwest::Method::GET {
            ""
        } else {
            "hello"
        };
        let response = app
            .client
            .request(method.clone(), app.url("/p/items/42?x=1&y=a%20b"))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, echo) = status_json(response).await;
        assert_eq!(status, 200, "{method}: {echo}");
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], "/base/items/42");
        assert_eq!(echo["query"], "x=1&y=a%20b");
        assert_eq!(echo["body_bytes"], body.len());
    }
    // The mount itself is the base; the client's percent-encoding goes on as sent.
    for (path, forwarded) in [
        ("/p", "/base"),
        ("/p/", "/base/"),
        ("/p/a%2Bb%20c", "/base/a%2Bb%20c"),
        ("/p//merged///slashes", "/base/merged/slashes"),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, echo) = status_json(response).await;
        assert_eq!(
            (status, echo["path"].as_str()),
            (200, Some(forwarded)),
            "{path}"
        );
    }
    // `max_body_bytes` (64 KiB here) guards polyauth's own routes, not proxied bodies.
    let response = app
        .client
        .post(app.url("/p/files/upload"))
        .bearer_auth(&token)
        .body(vec![1u8; 300 * 1024])
        .send()
        .await
        .unwrap();
    let (status, uploaded) = status_json(response).await;
    assert_eq!(
        (status, uploaded["bytes"].as_u64()),
        (200, Some(300 * 1024))
    );
    // A HEAD answer keeps its length and has no body.
    let response = app
        .client
        .head(app.url("/p/download?bytes=1234"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "1234");
    assert!(response.bytes().await.unwrap().is_empty());
}

/// The resident set and its peak since the last reset, from `/proc/<pid>/status`.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `transfer` while watching the resident set of `pid`; returns what
/// it returned and how far the resident set rose above where it began.
async fn growth_during<T>(pid: u32, transfer: impl Future<Output = T>) -> (T, u64) {
    // Resets the peak (VmHWM) to the current resident set (Linux ≥ 4.0).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let (start, _) = memory_of(pid);
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let watching = std::sync::Arc::clone(&watching);
        tokio::spawn(async move {
            let mut highest = 0;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                highest = highest.max(memory_of(pid).0);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            highest
        })
    };
    let result = transfer.await;
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let sampled = sampler.await.unwrap();
    let (_, peak) = memory_of(pid);
    (result, peak.max(sampled).saturating_sub(start))
}

/// 50 MiB each way through the real binary: the upstream counts every
/// byte, and polyauth's resident set hardly moves (nothing is buffered whole).
#[tokio::test]
async fn fifty_mib_stream_up_and_down_in_flat_memory() {
    const BODY: u64 = 50 * MIB;
    const BOUND: u64 = 8 * MIB;
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("p", proxied("p", "/p", &upstream.url(), ""))
        .write(dir.path());
    let served = Served::start(&config, "info");
    let pid = served.child.id();
    let client = reqwest::Client::new();
    let login: Value = client
        .post(served.url("/p/auth/v1/token"))
        .json(&json!({"email": "user@p.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    // Warm: each worker's client and a pooled connection exist already.
    for _ in 0..4 {
        let response = client
            .post(served.url("/p/upload"))
            .bearer_auth(&token)
            .body(vec![0u8; MIB as usize])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let upload = async {
        let response = client
            .post(served.url("/p/upload"))
            .bearer_auth(&token)
            .body(vec![7u8; BODY as usize])
            .send()
            .await
            .unwrap();
        status_json(response).await
    };
    let ((status, counted), grew) = growth_during(pid, upload).await;
    eprintln!(
        "a {} MiB upload: polyauth grew by {} KiB",
        BODY / MIB,
        grew / 1024
    );
    assert_eq!((status, counted["bytes"].as_u64()), (200, Some(BODY)));
    assert!(
        grew < BOUND,
        "polyauth grew by {} KiB during a {} MiB upload",
        grew / 1024,
        BODY / MIB
    );

    let download = async {
        let mut response = client
            .get(served.url(&format!("/p/download?bytes={BODY}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.unwrap() {
            received += chunk.len() as u64;
        }
        received
    };
    let (received, grew) = growth_during(pid, download).await;
    eprintln!(
        "a {} MiB download: polyauth grew by {} KiB",
        BODY / MIB,
        grew / 1024
    );
    assert_eq!(received, BODY);
    assert!(
        grew < BOUND,
        "polyauth grew by {} KiB during a {} MiB download",
        grew / 1024,
        BODY / MIB
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_in_the_dialect_shape() {
    let mut upstream = Upstream::start();
    let url = upstream.url();
    upstream.stop();
    let app = gateway(&url, "").await;
    let token = token(&app).await;
    let response = app
        .client
        .post(app.url("/p/anything"))
        .bearer_auth(&token)
        .body("body")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, body), (502, json!({"error": "Bad gateway"})));
    let response = app
        .client
        .get(app.url("/p/anything"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn an_upstream_slower_than_upstream_timeout_is_a_504() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "upstream_timeout = \"1s\"").await;
    let token = token(&app).await;
    let slow = |ms: u64| {
        app.client
            .get(app.url(&format!("/p/slow?ms={ms}")))
            .bearer_auth(&token)
            .send()
    };
    let (status, body) = status_json(slow(10_000).await.unwrap()).await;
    assert_eq!((status, body), (504, json!({"error": "Gateway timeout"})));
    let (status, body) = status_json(slow(10).await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"slept_ms": 10})));
}

#[tokio::test]
async fn forged_x_auth_headers_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let subject = subject_of(&app, &token).await;
    // Each case: forged headers as a client could spell them on the wire.
    let forgeries = [
        "X-Auth-Subject: admin\r\n",
        "x-auth-subject: admin\r\nX-AUTH-SUBJECT: root\r\nX-Auth-Subject: again\r\n",
        "X-Auth-Roles: admin,root\r\nx-auth-tenant: other\r\nX-Auth-Email: boss@evil.test\r\n",
        "X-Auth-Company: acme\r\nX-Auth-Anything: 1\r\nx-AuTh-Subject: mixed\r\n",
    ];
    for forged in forgeries {
        let request = format!(
            "GET /p/echo HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
             {forged}connection: close\r\n\r\n"
        );
        let answer = raw_exchange(app.port, &request).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let echo = body_of(&answer);
        let mut auth: Vec<&String> = echo["headers"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|name| name.starts_with("x-auth-"))
            .collect();
        auth.sort();
        // The principal's, once each; the user has no company.
        assert_eq!(
            auth,
            [
                "x-auth-email",
                "x-auth-roles",
                "x-auth-subject",
                "x-auth-tenant"
            ],
            "{forged}"
        );
        assert_eq!(echoed(&echo, "x-auth-subject"), [subject.as_str()]);
        assert_eq!(echoed(&echo, "x-auth-tenant"), ["p"]);
        assert_eq!(echoed(&echo, "x-auth-email"), ["user@p.test"]);
        assert_eq!(echoed(&echo, "x-auth-roles"), ["user,admin"]);
    }
    // Forged headers with no or a bad credential get nowhere.
    let before = upstream.requests();
    for credential in ["", "authorization: Bearer not-a-token\r\n"] {
        let request = format!(
            "GET /p/echo HTTP/1.1\r\nhost: localhost\r\n{credential}X-Auth-Subject: admin\r\n\
             connection: close\r\n\r\n"
        );
        let answer = raw_exchange(app.port, &request).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    assert_eq!(upstream.requests(), before);
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let request = format!(
        "POST /p/echo HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         connection: close, X-Hop-Secret\r\nx-hop-secret: 1\r\nkeep-alive: timeout=5\r\n\
         te: trailers\r\ntrailer: x-checksum\r\nproxy-authorization: Basic eDp5\r\n\
         proxy-connection: keep-alive\r\nupgrade: h2c\r\nx-end-to-end: kept\r\n\
         transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(app.port, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo = body_of(&answer);
    for name in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            echoed(&echo, name).is_empty(),
            "{name} reached the upstream: {echo}"
        );
    }
    // The next hop's own framing only.
    assert!(
        echoed(&echo, "transfer-encoding")
            .iter()
            .all(|te| *te == "chunked")
    );
    assert_eq!(echoed(&echo, "x-end-to-end"), ["kept"]);
    assert_eq!(echo["body_bytes"], 5);

    // The upstream's answer: it does send them, the client does not get them.
    let direct = reqwest::get(format!("{}/hop", upstream.url()))
        .await
        .unwrap();
    assert!(direct.headers().contains_key("proxy-authenticate"));
    let response = app
        .client
        .get(app.url("/p/hop"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    for name in ["keep-alive", "proxy-authenticate", "trailer", "upgrade"] {
        assert!(!headers.contains_key(name), "{name} reached the client");
    }
    assert_eq!(headers["x-end-to-end"], "kept");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(response.text().await.unwrap(), "hop");
}

#[tokio::test]
async fn x_forwarded_headers_name_the_client_and_trust_only_trusted_proxies() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let claims = [
        ("x-forwarded-for", "198.51.100.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example"),
        ("x-request-id", "request-42"),
        ("forwarded", "for=198.51.100.7;proto=https"),
    ];
    let from = |local: &str| {
        reqwest::Client::builder()
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let ask = |client: reqwest::Client| {
        let mut request = client.get(app.url("/p/echo")).bearer_auth(&token);
        for (name, value) in claims {
            request = request.header(name, value);
        }
        async move { status_json(request.send().await.unwrap()).await.1 }
    };
    let host = format!("127.0.0.1:{}", app.port);
    // 127.0.0.2 is no trusted proxy: what it claims is replaced.
    let echo = ask(from("127.0.0.2")).await;
    assert_eq!(echoed(&echo, "x-forwarded-for"), ["127.0.0.2"]);
    assert_eq!(echoed(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(echoed(&echo, "x-forwarded-host"), [host.as_str()]);
    assert!(echoed(&echo, "forwarded").is_empty());
    // 127.0.0.1 is (the default `trusted_proxies`): its chain is extended.
    let echo = ask(from("127.0.0.1")).await;
    assert_eq!(
        echoed(&echo, "x-forwarded-for"),
        ["198.51.100.7, 127.0.0.1"]
    );
    assert_eq!(echoed(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(echoed(&echo, "x-forwarded-host"), ["app.example"]);
    assert_eq!(echoed(&echo, "forwarded"), ["for=198.51.100.7;proto=https"]);
    // The upstream is asked for by its own name; the request keeps its id.
    let upstream_host = format!("127.0.0.1:{}", upstream.port);
    assert_eq!(echoed(&echo, "host"), [upstream_host.as_str()]);
    assert_eq!(echoed(&echo, "x-request-id"), ["request-42"]);
}

#[tokio::test]
async fn without_a_valid_credential_nothing_reaches_the_upstream() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let refused = [
        app.client.get(app.url("/p/echo")),
        app.client.post(app.url("/p/upload")).body("secret payload"),
        app.client.get(app.url("/p/echo")).bearer_auth("garbage"),
        app.client.get(app.url("/p")),
    ];
    for request in refused {
        let (status, body) = status_json(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].is_string(), "the dialect's shape: {body}");
    }
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn a_websocket_is_passed_through_both_ways() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let upstream = WsEcho::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let subject = subject_of(&app, &token).await;
    let url = format!("ws://127.0.0.1:{}/p/socket", app.port);

    let mut request = url.as_str().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("x-auth-subject", "forged".parse().unwrap());
    let (mut socket, answer) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(answer.status(), 101);
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    // Longer than any request-head deadline of the connection: a tunnel has none.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let large = vec![42u8; 3 * MIB as usize];
    socket.send(Message::binary(large.clone())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(large)
    );
    socket.close(None).await.unwrap();

    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 1);
    let subjects: Vec<&str> = handshakes[0]
        .iter()
        .filter(|(name, _)| name == "x-auth-subject")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(subjects, [subject.as_str()]);

    // No credential: the dialect's 401, no upgrade, nothing upstream.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    assert_eq!(upstream.handshakes().len(), 1);
}

#[tokio::test]
async fn dialect_and_gateway_routes_are_never_proxied() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    // A dialect route with a wrong method stays the dialect's 405.
    let response = app
        .client
        .get(app.url("/p/auth/v1/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // Gateway paths stay the gateway's.
    assert_eq!(app.verify("/p", &token).await.status(), 200);
    let response = app
        .client
        .get(app.url("/p/openapi.json"))
        .send()
        .await
        .unwrap();
    let (status, document) = status_json(response).await;
    assert_eq!(status, 200);
    assert!(document["openapi"].is_string());
    // Reserved roots, and paths that name a route once slashes are merged,
    // are never sent upstream, credential or not.
    for path in [
        "/p/.well-known/jwks.json",
        "/p/oauth2/introspect",
        "/p/_polyauth/anything",
        "/p/docs/x/y",
        "/p//auth/v1/token",
        "/p//_polyauth//verify",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .json(&json!({"email": "user@p.test", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        // The gateway's own answer (introspection refuses a JSON body).
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 404 | 405), "{path}: {status}");
    }
    assert_eq!(upstream.requests(), 0);
    let response = app
        .client
        .get(app.url("/p/auth/v1/token/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.requests(), 1);
}

/// Access rules and the upstream must read one path: a path an upstream
/// could read as another is refused (400), never resolved.
#[tokio::test]
async fn paths_an_upstream_could_read_otherwise_are_refused() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    for path in [
        // Dot segments: HTTP libraries resolve them before sending, so only
        // a crafted request holds one.
        "/p/x/../auth/v1/token",
        "/p/%2e%2e/p/auth/v1/token",
        "/p/a/./b",
        // Encoded slashes and backslashes: one upstream decodes them, another not.
        "/p/admin%2Fsecret",
        "/p/admin%2fsecret",
        "/p/admin%5Csecret",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
             connection: close\r\n\r\n"
        );
        let answer = raw_exchange(app.port, &request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn a_body_over_upstream_max_body_bytes_is_a_413() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "upstream_max_body_bytes = 1000").await;
    let token = token(&app).await;
    let upload = |bytes: usize| {
        app.client
            .post(app.url("/p/upload"))
            .bearer_auth(&token)
            .body(vec![1u8; bytes])
            .send()
    };
    let (status, body) = status_json(upload(1000).await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"bytes": 1000})));
    let before = upstream.requests();
    let (status, body) = status_json(upload(1001).await.unwrap()).await;
    assert_eq!(
        (status, body),
        (413, json!({"error": "Request body too large"}))
    );
    assert_eq!(
        upstream.requests(),
        before,
        "a declared length is refused up front"
    );
    // A chunked body is cut off where it passes the limit.
    let chunk = "x".repeat(500);
    let chunks: String = (0..10).map(|_| format!("1f4\r\n{chunk}\r\n")).collect();
    let request = format!(
        "POST /p/upload HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunks}0\r\n\r\n"
    );
    let answer = raw_exchange(app.port, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(body_of(&answer), json!({"error": "Request body too large"}));
}

#[tokio::test]
async fn an_https_upstream_is_reached_when_its_certificate_verifies() {
    let upstream = TlsUpstream::start();
    let url = format!("https://127.0.0.1:{}/base", upstream.port);
    let ca = format!(
        "upstream_ca_file = {:?}",
        upstream.ca_file.display().to_string()
    );
    let setup = Setup::new()
        .tenant("p", proxied("p", "/p", &url, &ca))
        // The system's trust store does not know the test's CA.
        .tenant("q", proxied("q", "/q", &url, ""));
    let app = TestApp::spawn(setup).await;
    let token = token(&app).await;
    let subject = subject_of(&app, &token).await;
    let response = app
        .client
        .get(app.url("/p/x?y=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"path": "/base/x?y=1", "x-auth-subject": subject})
        )
    );
    let (_, login) = app.pixyle_login("/q", "user@q.test", PASSWORD).await;
    let response = app
        .client
        .get(app.url("/q/x"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, body), (502, json!({"error": "Bad gateway"})));
}

mod config {
    use polyauth::config::ConfigError;

    use crate::helpers::{Setup, pixyle_tenant};

    fn load(extra: &str) -> Result<polyauth::config::Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::new().tenant("t", pixyle_tenant("t", "/t", extra));
        polyauth::config::load(&setup.write(dir.path()))
    }

    #[test]
    fn upstream_keys_are_checked_naming_file_and_key() {
        for (extra, key) in [
            ("upstream = \"ftp://127.0.0.1/\"", "upstream"),
            ("upstream = \"127.0.0.1:7000\"", "upstream"),
            ("upstream = \"http://\"", "upstream"),
            ("upstream = \"http://user:hunter2@127.0.0.1/\"", "upstream"),
            ("upstream = \"http://127.0.0.1/?a=b\"", "upstream"),
            ("upstream_timeout = \"5s\"", "upstream_timeout"),
            ("upstream_max_body_bytes = 10", "upstream_max_body_bytes"),
            (
                "upstream = \"http://127.0.0.1:7000\"\nupstream_ca_file = \"ca.pem\"",
                "upstream_ca_file",
            ),
            (
                "upstream = \"https://127.0.0.1:7000\"\nupstream_ca_file = \"/nonexistent.pem\"",
                "upstream_ca_file",
            ),
            (
                "upstream = \"http://127.0.0.1:7000\"\nupstream_max_body_bytes = 0",
                "upstream_max_body_bytes",
            ),
            (
                "upstream = \"http://127.0.0.1:7000\"\nupstream_timeout = \"soon\"",
                "upstream_timeout",
            ),
        ] {
            let error = load(extra)
                .err()
                .unwrap_or_else(|| panic!("{extra} loaded"));
            assert!(error.file.ends_with("t.toml"), "{error}");
            assert_eq!(error.key, key, "{extra}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let loaded =
            load("upstream = \"http://127.0.0.1:7000/base\"\nupstream_timeout = \"5s\"").unwrap();
        let upstream = loaded.tenants[0].upstream.as_ref().unwrap();
        assert_eq!(upstream.base, "/base");
        assert_eq!(upstream.timeout, std::time::Duration::from_secs(5));
        assert_eq!(upstream.max_body_bytes, 1 << 30);
    }

    #[test]
    fn every_built_in_dialect_can_front_an_upstream() {
        for dialect in ["visualyze", "pixyle", "payhub", "oauth-form", "elyssa"] {
            let dir = tempfile::tempdir().unwrap();
            let tenant = format!(
                "id = \"t\"\ndialect = \"{dialect}\"\npath_prefix = \"/t\"\n\
                 issuer = \"http://x/t\"\naudience = \"t\"\nupstream = \"http://127.0.0.1:7000\"\n"
            );
            let setup = Setup::new().tenant("t", tenant);
            let loaded = polyauth::config::load(&setup.write(dir.path()));
            assert!(loaded.is_ok(), "{dialect}: {:?}", loaded.err());
        }
    }
}

#[tokio::test]
async fn access_rules_decide_what_is_proxied() {
    let upstream = Upstream::start();
    let rules = r#"
[[access]]
paths = ["/public/**"]
methods = ["GET"]
policy = "public"

[[access]]
paths = ["/internal/**"]
policy = "deny"

[[access]]
paths = ["/ops/**"]
roles = ["ops"]

[[access]]
paths = ["/admin/**"]
roles = ["admin"]
"#;
    let app = gateway(&upstream.url(), rules).await;
    let token = token(&app).await;
    let send = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut request = app.client.request(method, app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        // A client's own X-Auth-* never passes, public path or not.
        request.header("x-auth-subject", "forged").send()
    };
    // Public: no credential needed, and none is claimed for the caller.
    let (status, echo) = status_json(
        send(reqwest::Method::GET, "/p/public/page", None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/public/page");
    assert!(echoed(&echo, "x-auth-subject").is_empty(), "{echo}");
    // Public with a valid credential: its principal goes on.
    let (status, echo) = status_json(
        send(reqwest::Method::GET, "/p/public", Some(&token))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(
        echoed(&echo, "x-auth-subject"),
        [subject_of(&app, &token).await.as_str()]
    );
    let before = upstream.requests();
    // The public rule names GET only; deny and a missing role are 403.
    for (method, path, token, expected) in [
        (reqwest::Method::POST, "/p/public/page", None, 401),
        (
            reqwest::Method::GET,
            "/p/internal/x",
            Some(token.as_str()),
            403,
        ),
        (reqwest::Method::GET, "/p/ops/x", Some(token.as_str()), 403),
        (reqwest::Method::GET, "/p/admin/x", None, 401),
    ] {
        let response = send(method.clone(), path, token).await.unwrap();
        assert_eq!(response.status(), expected, "{method} {path}");
    }
    // An encoded `?` never cuts the path the rules see.
    for path in ["/p/public%3F/admin/x", "/p/public%3f/internal/x"] {
        let response = send(reqwest::Method::GET, path, None).await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(upstream.requests(), before, "a refused request was proxied");
    let (status, echo) = status_json(
        send(reqwest::Method::GET, "/p/admin/x", Some(&token))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/admin/x");
}

#[tokio::test]
async fn with_cors_on_the_tenant_the_upstreams_own_cors_headers_never_pass() {
    let upstream = Upstream::start();
    let app = gateway(
        &upstream.url(),
        "cors_origins = [\"https://dashboard.example\"]\n",
    )
    .await;
    let access = token(&app).await;
    for (origin, expected) in [
        (
            "https://dashboard.example",
            Some("https://dashboard.example"),
        ),
        ("https://evil.example", None),
    ] {
        let response = app
            .client
            .get(app.url("/p/x/cors"))
            .bearer_auth(&access)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            expected,
            "{origin}"
        );
        assert!(headers.get("access-control-allow-credentials").is_none());
        assert!(headers.get("access-control-allow-headers").is_none());
    }
    // Without CORS on the tenant, the upstream answers CORS for itself.
    let app = gateway(&upstream.url(), "").await;
    let bare = token(&app).await;
    let response = app
        .client
        .get(app.url("/p/x/cors"))
        .bearer_auth(&bare)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://evil.example"
    );
}

#[tokio::test]
async fn the_mount_itself_is_decided_as_the_root() {
    let upstream = Upstream::start();
    let rules = "[[access]]\npaths = [\"/\"]\npolicy = \"public\"\n";
    let app = gateway(&format!("{}/base", upstream.url()), rules).await;
    for path in ["/p", "/p/"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let (status, echo) = status_json(response).await;
        assert_eq!(status, 200, "{path}: {echo}");
    }
    let response = app.client.get(app.url("/p/x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

/// Writes `request` on a new connection and returns what the server sends
/// up to the end of its answer's head (the connection is then dropped).
async fn answer_head_to(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect_from("127.0.0.1", port).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(RAW_WAIT, read)
        .await
        .expect("no answer head");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A WebSocket handshake for `path` with `credential` and `extra` head lines.
fn upgrade_request(path: &str, token: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// The attack: an upgrade announcing a body it never sends, to a path the
/// upstream answers 404 for (no 101, so the upstream connection could go
/// back to the pool), then a request whose bytes past that length hold a
/// request line the access rules refuse. An upstream framing by the
/// announced length would read that line as a request of its own.
#[tokio::test]
async fn an_upgrade_announcing_a_body_smuggles_no_request_upstream() {
    let upstream = RawUpstream::start();
    let rules = "[[access]]\npaths = [\"/admin/**\"]\npolicy = \"deny\"\n";
    let app = gateway(&format!("{}/base", upstream.url()), rules).await;
    let token = token(&app).await;
    let direct = format!(
        "GET /p/admin/secret HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         connection: close\r\n\r\n"
    );
    assert!(
        raw_exchange(app.port, &direct)
            .await
            .starts_with("HTTP/1.1 403")
    );
    let smuggled = "GET /base/admin/secret HTTP/1.1\r\nhost: up\r\n\r\n";
    let carrier = format!(
        "POST /p/page HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{smuggled}",
        smuggled.len()
    );
    // The length of the head the upstream gets for the carrier (the same
    // each time, whatever the order of its headers).
    let answer = raw_exchange(app.port, &carrier).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let carried = upstream.requests().last().unwrap().head.len();
    let before = upstream.requests().len();
    let mut refused = Vec::new();
    for extra in [
        format!("content-length: {carried}\r\n"),
        format!("content-length: {carried}\r\n"),
        "transfer-encoding: chunked\r\n".to_owned(),
    ] {
        refused
            .push(answer_head_to(app.port, &upgrade_request("/p/missing", &token, &extra)).await);
    }
    // On other client connections, as a worker's pooled upstream
    // connection would carry them.
    for _ in 0..4 {
        raw_exchange(app.port, &carrier).await;
    }
    let paths: Vec<String> = upstream.requests()[before..]
        .iter()
        .map(|request| request.path().to_owned())
        .collect();
    assert!(
        !paths.iter().any(|path| path.contains("admin")),
        "a smuggled request reached the upstream: {paths:?}"
    );
    // Refused in the dialect's shape, never sent.
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    assert_eq!(paths, ["/base/page"; 4]);
}

/// An upgrade the upstream does not take (no 101) leaves the upstream
/// connection in doubt: it is never used again. And with no body sent, no
/// `Content-Length` or `Transfer-Encoding` goes with the request.
#[tokio::test]
async fn a_refused_upgrade_s_upstream_connection_is_not_reused() {
    let upstream = RawUpstream::start();
    let app = gateway(&format!("{}/base", upstream.url()), "").await;
    let token = token(&app).await;
    for _ in 0..2 {
        let request = upgrade_request("/p/missing", &token, "content-length: 0\r\n");
        let answer = answer_head_to(app.port, &request).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
    for _ in 0..4 {
        let response = app
            .client
            .get(app.url("/p/page"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let requests = upstream.requests();
    let upgrades: Vec<_> = requests
        .iter()
        .filter(|request| request.path() == "/base/missing")
        .collect();
    assert_eq!(upgrades.len(), 2, "{requests:?}");
    for upgrade in upgrades {
        let head = upgrade.head.to_ascii_lowercase();
        assert!(!head.contains("content-length"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        let sharing = requests
            .iter()
            .filter(|request| request.connection == upgrade.connection)
            .count();
        assert_eq!(
            sharing, 1,
            "the upgrade's connection was reused: {requests:?}"
        );
    }
    // A request without a body states none either; one declared empty, empty.
    let head_of = |path: &str| {
        upstream
            .requests()
            .iter()
            .rev()
            .find(|request| request.path() == path)
            .map(|request| request.head.to_ascii_lowercase())
            .unwrap()
    };
    let request = format!(
        "GET /p/get HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    assert!(
        raw_exchange(app.port, &request)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let request = format!(
        "POST /p/post HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-length: 00\r\nconnection: close\r\n\r\n"
    );
    assert!(
        raw_exchange(app.port, &request)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(head_of("/base/post").contains("content-length: 0\r\n"));
    assert!(!head_of("/base/post").contains("content-length: 00"));
}

/// CGI, WSGI and Rack read `_` as `-`: `X_Auth_Roles` is `X-Auth-Roles`
/// to them. No header spelled with an underscore goes on (nginx's default).
#[tokio::test]
async fn headers_spelled_with_underscores_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let request = format!(
        "GET /p/echo HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         X_Auth_Roles: admin\r\nx_auth_subject: root\r\nX-Auth_Tenant: other\r\n\
         X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nX_HTTP_Method_Override: DELETE\r\n\
         x_custom: 1\r\nx-custom-kept: 1\r\nconnection: close\r\n\r\n"
    );
    let answer = raw_exchange(app.port, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo = body_of(&answer);
    let underscored: Vec<&String> = echo["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.contains('_'))
        .collect();
    assert!(underscored.is_empty(), "{underscored:?}");
    assert_eq!(echoed(&echo, "x-auth-roles"), ["user,admin"]);
    assert_eq!(echoed(&echo, "x-auth-tenant"), ["p"]);
    assert_eq!(echoed(&echo, "x-custom-kept"), ["1"]);
}

/// Access rules decide on the wire's method: no override of it goes on.
/// `X-Real-IP` is a trusted proxy's claim only, as `X-Forwarded-For`.
#[tokio::test]
async fn method_overrides_never_pass_and_x_real_ip_only_from_a_trusted_proxy() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let from = |local: &str| {
        reqwest::Client::builder()
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let ask = |client: reqwest::Client| {
        let request = client
            .post(app.url("/p/echo"))
            .bearer_auth(&token)
            .header("x-http-method-override", "DELETE")
            .header("X-Method-Override", "DELETE")
            .header("x-http-method", "DELETE")
            .header("x-real-ip", "198.51.100.7")
            .body("b");
        async move { status_json(request.send().await.unwrap()).await }
    };
    // 127.0.0.2 is no trusted proxy; 127.0.0.1 is (the default).
    for (peer, real_ip) in [("127.0.0.2", None), ("127.0.0.1", Some("198.51.100.7"))] {
        let (status, echo) = ask(from(peer)).await;
        assert_eq!(status, 200, "{echo}");
        assert_eq!(echo["method"], "POST");
        for name in [
            "x-http-method-override",
            "x-method-override",
            "x-http-method",
        ] {
            assert!(
                echoed(&echo, name).is_empty(),
                "{peer}: {name} reached the upstream"
            );
        }
        assert_eq!(
            echoed(&echo, "x-real-ip"),
            Vec::from_iter(real_ip),
            "{peer}"
        );
    }
}

#[tokio::test]
async fn requests_whose_target_or_body_could_not_go_on_as_decided_are_refused() {
    let upstream = Upstream::start();
    let app = gateway(
        &upstream.url(),
        "[[access]]\npaths = [\"/public/**\"]\npolicy = \"public\"\n",
    )
    .await;
    let head = |first: &str, extra: &str| {
        format!("{first}\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n")
    };
    for (request, expected) in [
        // CONNECT names an authority, never the path decided on.
        (head("CONNECT /p/public/x HTTP/1.1", ""), "HTTP/1.1 405"),
        // A chunked GET body would be dropped by the upstream client.
        (
            head("GET /p/public/x HTTP/1.1", "transfer-encoding: chunked\r\n")
                + "3\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 400",
        ),
        // `websocket` beside another `Upgrade`: actix streams the payload
        // raw, and no tunnel would carry it.
        (
            head(
                "GET /p/public/ws HTTP/1.1",
                "upgrade: foo\r\nupgrade: websocket\r\nconnection: upgrade\r\n",
            ),
            "HTTP/1.1 400",
        ),
    ] {
        let answer = raw_exchange(app.port, &request).await;
        assert!(answer.starts_with(expected), "{request:?}: {answer:?}");
    }
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn claims_of_a_proxy_go_on_only_from_a_trusted_one() {
    let upstream = Upstream::start();
    let app = gateway(&upstream.url(), "").await;
    let token = token(&app).await;
    let claims = [
        ("x-original-url", "/admin/x"),
        ("x-rewrite-url", "/admin/x"),
        ("x-original-uri", "/admin/x"),
        ("x-forwarded-uri", "/admin/x"),
        ("x-forwarded-method", "DELETE"),
        ("x-original-method", "DELETE"),
        ("client-ip", "198.51.100.7"),
        ("true-client-ip", "198.51.100.7"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-ssl", "on"),
    ];
    for (peer, passes) in [("127.0.0.2", false), ("127.0.0.1", true)] {
        let client = reqwest::Client::builder()
            .local_address(peer.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let mut request = client.get(app.url("/p/echo")).bearer_auth(&token);
        for (name, value) in claims {
            request = request.header(name, value);
        }
        let (status, echo) = status_json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{echo}");
        for (name, value) in claims {
            let expected: Vec<&str> = if passes { vec![value] } else { vec![] };
            assert_eq!(echoed(&echo, name), expected, "{peer}: {name}");
        }
    }
}
