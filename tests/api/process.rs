//! The real binary as an operator runs it: what it logs, how it stops.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, pixyle_tenant};

struct Served {
    child: Child,
    port: u16,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

/// Starts `polyauth serve` with JSON logs at debug level and waits for its port.
fn serve(dir: &std::path::Path) -> Served {
    let config = Setup::new()
        .server("log_format = \"json\"")
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir);
    let child = Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        port: 0,
        stdout: None,
    };
    served.stdout = served.child.stdout.take().map(BufReader::new);
    let event = served.wait_for("polyauth serving");
    served.port = event["port"].as_u64().unwrap() as u16;
    served
}

impl Served {
    fn stdout(&mut self) -> &mut BufReader<std::process::ChildStdout> {
        self.stdout.as_mut().unwrap()
    }

    /// Reads JSON log lines until one whose message is `message`.
    fn wait_for(&mut self, message: &str) -> Value {
        let started = Instant::now();
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout().read_line(&mut line).unwrap();
            assert!(read > 0, "polyauth exited before logging {message:?}");
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event["message"] == message {
                    return event;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no {message:?} line"
            );
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn logs_never_hold_a_password_token_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
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

    terminate(&served.child);
    let mut logs = String::new();
    served.stdout().read_to_string(&mut logs).unwrap();
    served
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    served.child.wait().unwrap();
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
    served.wait_for("argon2 verification running");
    terminate(&served.child);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    if !answer.starts_with("HTTP/1.1 200") {
        let mut logs = String::new();
        let _ = served.child.wait();
        let _ = served.stdout().read_to_string(&mut logs);
        panic!("answer {answer:?}; server log after the signal:\n{logs}");
    }
    let status = served.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}
