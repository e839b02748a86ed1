//! The real binary as an operator runs it: what it logs, how it stops.

use std::io::Read;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Served, Setup, pixyle_tenant};

/// Starts `polyauth serve` with JSON logs at debug level and waits for its port.
fn serve(dir: &std::path::Path) -> Served {
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir);
    Served::start(&config, "debug")
}

#[tokio::test]
async fn logs_never_hold_a_password_token_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let base = format!("http://127.0.0.1:{}/a", served.port);
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/auth/v1/token"))
        .json(&json!({"email": "user@a.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let wrong = "wrong-password-that-must-not-be-logged";
    client
        .post(format!("{base}/auth/v1/token"))
        .json(&json!({"email": "user@a.test", "password": wrong}))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/auth/v1/refresh"))
        .bearer_auth(&refresh)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/_polyauth/verify?token={access}"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    client
        .delete(format!("{base}/auth/v1/revoke_access"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();

    served.terminate();
    let (_, logs) = served.wait();
    let requests = logs
        .lines()
        .filter(|l| l.contains("polyauth::access"))
        .count();
    assert!(requests >= 5, "one access line per request:\n{logs}");
    for secret in [PASSWORD, wrong, access.as_str(), refresh.as_str()] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
    // The signature part alone must not leak either.
    let signature = access.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}

/// The access-log line of each request names its tenant and route, whoever served it.
#[tokio::test]
async fn access_lines_name_tenant_and_route() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let base = format!("http://127.0.0.1:{}", served.port);
    let client = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/a/auth/v1/token"),
        ("GET", "/a/_polyauth/verify"),
        ("GET", "/a/openapi.json"),
        ("PUT", "/a/auth/v1/token"),
        ("GET", "/a/nothing-here"),
        ("GET", "/nowhere"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        client
            .request(method, format!("{base}{path}"))
            .send()
            .await
            .unwrap();
    }
    // Refused before routing: two `Host` headers.
    let answer = crate::helpers::raw_exchange(
        served.port,
        "GET /a/openapi.json HTTP/1.1\r\nhost: localhost\r\nhost: other\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    served.terminate();
    let (_, logs) = served.wait();
    let tags: Vec<(String, String, String)> = logs
        .lines()
        .filter(|l| l.contains("polyauth::access"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|line| {
            let field = |name: &str| line[name].as_str().unwrap_or_default().to_owned();
            (field("path"), field("tenant"), field("route"))
        })
        .collect();
    for expected in [
        ("/a/auth/v1/token", "a", "POST /auth/v1/token"),
        ("/a/_polyauth/verify", "a", "verify"),
        ("/a/openapi.json", "a", "openapi"),
        ("/a/auth/v1/token", "a", "method_not_allowed"),
        ("/a/nothing-here", "a", "not_found"),
        ("/nowhere", "", "no_tenant"),
        ("/a/openapi.json", "", "bad_host"),
    ] {
        let expected = (expected.0.into(), expected.1.into(), expected.2.into());
        assert!(tags.contains(&expected), "{expected:?} not in {tags:?}");
    }
}

#[test]
fn sigterm_drains_and_exits_zero() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
    // A login whose password is being hashed when the signal comes gets its answer.
    let body = json!({"email": "user@a.test", "password": PASSWORD}).to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    write!(
        stream,
        "POST /a/auth/v1/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    served.wait_for("argon2 job running");
    served.terminate();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (status, logs) = served.wait();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answer {answer:?}; server log:\n{logs}"
    );
    assert!(status.success(), "exit status {status}");
}

/// A store file the operator left readable by others is a startup warning,
/// naming the file; polyauth serves anyway and leaves the mode alone.
#[tokio::test]
async fn a_store_file_open_to_others_is_a_startup_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = data.join("polyauth.redb");
    std::fs::write(&store, b"").unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let served = serve(dir.path());
    let status = reqwest::get(served.admin_url("/readyz"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    served.terminate();
    let (_, logs) = served.wait();
    let warning = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| {
            event["level"] == "WARN"
                && event["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("store file is open to other users"))
        })
        .unwrap_or_else(|| panic!("no warning about the store file:\n{logs}"));
    assert_eq!(warning["path"], store.display().to_string());
    assert_eq!(warning["mode"], "644");
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the operator's file is not chmodded");
}

/// Logs `user@a.test` in on `served`; answers its refresh token.
async fn login_for_refresh(served: &Served) -> String {
    let login: Value = reqwest::Client::new()
        .post(served.url("/a/auth/v1/token"))
        .json(&json!({"email": "user@a.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["refresh_token"].as_str().unwrap().to_owned()
}

/// The status of refreshing with `refresh` on `served`.
async fn refresh_status(served: &Served, refresh: &str) -> u16 {
    reqwest::Client::new()
        .post(served.url("/a/auth/v1/refresh"))
        .bearer_auth(refresh)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// How many times the embedded store's sync thread has synced, from `/metrics`.
async fn syncs(served: &Served) -> u64 {
    let text = reqwest::get(served.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| {
            line.starts_with("polyauth_store_operation_duration_seconds_count{")
                && line.contains(r#"operation="sync""#)
        })
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0, |count| count.parse().unwrap())
}

/// A login's session commits without an fsync; the sync thread makes it
/// durable within a second, so a SIGKILL after that keeps it.
#[tokio::test]
async fn a_new_session_survives_sigkill_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
    let before = syncs(&served).await;
    let refresh = login_for_refresh(&served).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while syncs(&served).await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the session was never synced:\n{}",
            served.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    drop(served);

    let served = serve(dir.path());
    assert_eq!(refresh_status(&served, &refresh).await, 200);
}

/// A SIGTERM straight after a login (most likely before any sync tick)
/// keeps it: the store syncs on the way out, so nothing written is lost by
/// a restart.
#[tokio::test]
async fn a_session_started_just_before_sigterm_survives_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let refresh = login_for_refresh(&served).await;
    served.terminate();
    let (status, logs) = served.wait();
    assert!(status.success(), "exit status {status}:\n{logs}");

    let served = serve(dir.path());
    assert_eq!(refresh_status(&served, &refresh).await, 200);
}
