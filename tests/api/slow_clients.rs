//! Slow and silent clients cannot exhaust the server: a body must arrive
//! within `body_timeout`, a request head within 5 s (on every request of a
//! connection), and connections are capped in all and per client address.
//! Bounds, never timings: each test asserts that something happens before a
//! generous limit, never how fast.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    RAW_WAIT, Served, Setup, TestApp, connect_from, pixyle_tenant, raw_exchange, read_until_closed,
};

/// A gateway with one Pixyle tenant at `/a` and `server` in its server file.
async fn app(server: &str) -> TestApp {
    TestApp::spawn(
        Setup::new()
            .server(server)
            .tenant("a", pixyle_tenant("a", "/a", "")),
    )
    .await
}

/// The head of a login whose 64-byte body never comes: the connection is
/// being served (waiting for the body), so only `body_timeout` ends it.
const HOLDING_HEAD: &str = "POST /a/auth/v1/token HTTP/1.1\r\nhost: localhost\r\n\
                            content-type: application/json\r\ncontent-length: 64\r\n\r\n";

/// `n` connections from `from`, each holding a slot with [`HOLDING_HEAD`]
/// (a refused one may fail to take the write: it is closed already).
async fn hold(port: u16, from: &str, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut stream = connect_from(from, port).await;
        let _ = stream.write_all(HOLDING_HEAD.as_bytes()).await;
        streams.push(stream);
    }
    streams
}

/// Splits `streams` into those the server closed within `wait` and those
/// it still holds open.
async fn closed_and_open(streams: Vec<TcpStream>, wait: Duration) -> (usize, Vec<TcpStream>) {
    let probes = streams.into_iter().map(|stream| async move {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(wait, stream.peek(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => panic!("a held connection was answered before its body came"),
            Err(_) => Some(stream),
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let closed = results.iter().filter(|r| r.is_none()).count();
    (closed, results.into_iter().flatten().collect())
}

/// A client whose connections come from `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .build()
        .unwrap()
}

/// The status of `GET <app>/a/openapi.json` from `from`; `None` when the
/// server closes the connection instead of answering.
async fn status_from(app: &TestApp, from: &str) -> Option<u16> {
    client_from(from)
        .get(app.url("/a/openapi.json"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Retries until a request from `from` is answered, within [`RAW_WAIT`].
async fn eventually_served(app: &TestApp, from: &str) -> u16 {
    let deadline = Instant::now() + RAW_WAIT;
    loop {
        if let Some(status) = status_from(app, from).await {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {from} within {RAW_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_body_that_stops_is_answered_408_within_body_timeout() {
    let app = app("body_timeout = \"1s\"").await;
    // Ten bytes of the 64 announced, then nothing.
    let answer = raw_exchange(app.port, &format!("{HOLDING_HEAD}{{\"email\":")).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.ends_with(r#"{"error":"Request timed out"}"#),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_trickling_body_is_cut_at_body_timeout() {
    let app = app("body_timeout = \"1s\"").await;
    let head = HOLDING_HEAD.replace("content-length: 64", "content-length: 100000");
    let stream = connect_from("127.0.0.1", app.port).await;
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    // One byte every 100 ms: never idle, never done.
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(RAW_WAIT, read)
        .await
        .expect("the trickling body was awaited for ever");
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test]
async fn oauth_form_answers_a_late_body_in_its_own_shape() {
    let app = TestApp::spawn(
        Setup::new()
            .server("body_timeout = \"1s\"")
            .tenant("o", oauth_form_tenant()),
    )
    .await;
    let answer = raw_exchange(
        app.port,
        "POST /o/auth/login HTTP/1.1\r\nhost: localhost\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 50\r\n\r\nusername=",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.ends_with(r#"{"detail":"Request timed out"}"#),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_first_request_head_that_stops_is_answered_408_and_closed() {
    let app = app("").await;
    let answer = raw_exchange(app.port, "GET /a/openapi.js").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let app = app("").await;
    let mut stream = connect_from("127.0.0.1", app.port).await;
    read_until_closed(&mut stream).await;
}

/// actix times only the first head of a connection; the gateway times every one.
#[tokio::test]
async fn a_later_head_that_stops_on_a_kept_alive_connection_is_closed() {
    let app = app("").await;
    let mut stream = connect_from("127.0.0.1", app.port).await;
    stream
        .write_all(b"GET /a/_polyauth/verify HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    // The first answer (a 401 with a JSON body) arrives whole, then the connection stays open.
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&first).contains("}") {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(RAW_WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after the first answer");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 401"));
    stream.write_all(b"GET /a/_polyauth/ver").await.unwrap();
    read_until_closed(&mut stream).await;
}

/// Both a full request and the start of the next in one write: the next
/// head's bytes arrive while the first is served.
#[tokio::test]
async fn a_pipelined_head_that_stops_is_closed() {
    let app = app("").await;
    let mut stream = connect_from("127.0.0.1", app.port).await;
    stream
        .write_all(
            b"GET /a/_polyauth/verify HTTP/1.1\r\nhost: localhost\r\n\r\nGET /a/_polyauth/ver",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed_until_slots_free() {
    let app = app("max_connections_per_ip = 20\nbody_timeout = \"60s\"").await;
    let streams = hold(app.port, "127.0.0.1", 30).await;
    let (closed, held) = closed_and_open(streams, Duration::from_secs(5)).await;
    assert_eq!((closed, held.len()), (10, 20));
    // Another connection from the same address is closed too, unanswered.
    assert_eq!(status_from(&app, "127.0.0.1").await, None);
    // Once the held ones close, the address is served again.
    drop(held);
    assert_eq!(eventually_served(&app, "127.0.0.1").await, 200);
}

#[tokio::test]
async fn silent_connections_from_one_address_do_not_lock_out_another() {
    let app = app("max_connections_per_ip = 20\nbody_timeout = \"60s\"").await;
    let streams = hold(app.port, "127.0.0.1", 25).await;
    let (closed, held) = closed_and_open(streams, Duration::from_secs(5)).await;
    assert_eq!((closed, held.len()), (5, 20));
    assert_eq!(status_from(&app, "127.0.0.2").await, Some(200));
    assert_eq!(status_from(&app, "127.0.0.1").await, None);
    drop(held);
}

#[tokio::test]
async fn the_total_cap_holds_across_addresses() {
    let app = app("max_connections = 4\nbody_timeout = \"60s\"").await;
    let mut streams = hold(app.port, "127.0.0.1", 2).await;
    streams.extend(hold(app.port, "127.0.0.2", 2).await);
    let (closed, held) = closed_and_open(streams, Duration::from_secs(5)).await;
    assert_eq!((closed, held.len()), (0, 4));
    assert_eq!(status_from(&app, "127.0.0.3").await, None);
    drop(held);
    assert_eq!(eventually_served(&app, "127.0.0.3").await, 200);
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Open descriptors of process `pid` once the count stops moving.
async fn settled_fds(pid: u32) -> usize {
    let mut last = open_fds(pid);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = open_fds(pid);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The real binary: 60 connections from one address leave it holding 20.
#[tokio::test]
async fn the_served_binary_holds_no_connection_beyond_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .server("max_connections_per_ip = 20\nbody_timeout = \"60s\"")
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let served = Served::start(&config, "info");
    let pid = served.child.id();
    // Workers open some descriptors of their own on their first requests.
    for _ in 0..4 {
        reqwest::get(served.url("/a/openapi.json")).await.unwrap();
    }
    let before = settled_fds(pid).await;
    let streams = hold(served.port, "127.0.0.1", 60).await;
    let (closed, held) = closed_and_open(streams, Duration::from_secs(5)).await;
    assert_eq!((closed, held.len()), (40, 20));
    let during = open_fds(pid);
    assert!(
        (before + 20..=before + 24).contains(&during),
        "{before} descriptors before, {during} with 20 connections held"
    );
    drop(held);
    let deadline = Instant::now() + RAW_WAIT;
    while open_fds(pid) > before {
        assert!(Instant::now() < deadline, "connections were not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An OAuth2-form tenant at `/o`.
fn oauth_form_tenant() -> String {
    "id = \"o\"\ndialect = \"oauth-form\"\npath_prefix = \"/o\"\nissuer = \"iss\"\naudience = \"aud\"\n".into()
}
