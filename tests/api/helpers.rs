//! A real gateway on port 0, its own temp directory and store per test.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use polyauth::Application;
use polyauth::http::Stopper;
use secrecy::SecretString;
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

/// An argon2id PHC string for `password`, hashed once per test binary.
pub fn password_hash(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hash) = cache.lock().unwrap().get(password) {
        return hash.clone();
    }
    let hash = polyauth::engine::password::hash_password(
        &SecretString::from(password.to_owned()),
        polyauth::engine::password::default_params(),
    )
    .unwrap();
    cache
        .lock()
        .unwrap()
        .insert(password.to_owned(), hash.clone());
    hash
}

/// A Pixyle tenant with an active user, an inactive one and an unverified
/// demo account, all with [`PASSWORD`]; `extra` is appended verbatim.
pub fn pixyle_tenant(id: &str, prefix: &str, extra: &str) -> String {
    let hash = password_hash(PASSWORD);
    format!(
        r#"
id = "{id}"
dialect = "pixyle"
path_prefix = "{prefix}"
issuer = "http://polyauth.test{prefix}"
audience = "{id}-api"
{extra}

[[users]]
email = "user@{id}.test"
password_hash = "{hash}"
roles = ["user", "admin"]

[[users]]
email = "inactive@{id}.test"
password_hash = "{hash}"
active = false

[[users]]
email = "demo@{id}.test"
password_hash = "{hash}"
demo = true
email_verified = false
"#
    )
}

/// Files of one gateway configuration, written into a directory.
pub struct Setup {
    pub server_extra: String,
    /// Lines of the `[store]` table (after the embedded store's `path`).
    pub store_extra: String,
    pub workers: usize,
    pub tenants: Vec<(String, String)>,
    pub dialects: Vec<(String, String)>,
}

impl Setup {
    pub fn new() -> Self {
        Self {
            server_extra: String::new(),
            store_extra: String::new(),
            workers: 2,
            tenants: Vec::new(),
            dialects: Vec::new(),
        }
    }

    pub fn tenant(mut self, file_stem: &str, toml: String) -> Self {
        self.tenants.push((file_stem.to_owned(), toml));
        self
    }

    pub fn dialect(mut self, name: &str, toml: &str) -> Self {
        self.dialects.push((name.to_owned(), toml.to_owned()));
        self
    }

    /// HTTP worker threads (2 unless told).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    pub fn server(mut self, extra: &str) -> Self {
        self.server_extra.push_str(extra);
        self.server_extra.push('\n');
        self
    }

    /// Uses the Redis at `url`, keys under `prefix`. Calls may take 3 s
    /// (not 1 s): a busy test machine must not look like an outage.
    pub fn redis(self, url: &str, prefix: &str) -> Self {
        self.redis_with_timeout(url, prefix, "3s")
    }

    pub fn redis_with_timeout(mut self, url: &str, prefix: &str, timeout: &str) -> Self {
        self.store_extra.push_str(&format!(
            "kind = \"redis\"\nurl = {url:?}\nkey_prefix = {prefix:?}\ntimeout = {timeout:?}\n"
        ));
        self
    }

    /// Writes `polyauth.toml`, `tenants/` and `dialects/` under `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let config = dir.join("config");
        std::fs::create_dir_all(config.join("tenants")).unwrap();
        let dialects_line = if self.dialects.is_empty() {
            String::new()
        } else {
            let dialects = dir.join("dialects");
            std::fs::create_dir_all(&dialects).unwrap();
            for (name, text) in &self.dialects {
                std::fs::write(dialects.join(format!("{name}.toml")), text).unwrap();
            }
            format!("dialects_dir = {:?}\n", dialects.display().to_string())
        };
        let server = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = {}\n{dialects_line}{}\n[store]\npath = {:?}\n{}",
            self.workers,
            self.server_extra,
            dir.join("data/polyauth.redb").display().to_string(),
            self.store_extra,
        );
        std::fs::write(config.join("polyauth.toml"), server).unwrap();
        for (stem, text) in &self.tenants {
            std::fs::write(config.join("tenants").join(format!("{stem}.toml")), text).unwrap();
        }
        config
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub admin_address: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stopper: Stopper,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// Starts a gateway for `setup` in a fresh temp directory.
    pub async fn spawn(setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        setup.write(dir.path());
        Self::start_in(dir).await
    }

    /// Starts a gateway on the configuration already written in `dir`.
    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            // Kept for the whole test process: its lines are written to the end.
            std::mem::forget(polyauth::telemetry::init(
                polyauth::config::server::LogFormat::Text,
            ));
        }
        let loaded = polyauth::config::load(&dir.path().join("config")).unwrap();
        let public = TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build_with_listeners(loaded, public, admin)
            .await
            .unwrap();
        let port = app.port();
        let address = format!("http://127.0.0.1:{port}");
        let admin_address = format!("http://127.0.0.1:{}", app.admin_port());
        let stopper = app.stopper();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            address,
            port,
            admin_address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            dir,
            stopper,
            server,
        }
    }

    /// Stops the gateway and hands its directory back (to restart). Tests
    /// stop between requests, so nothing is in flight: no graceful drain
    /// (that is tested with the real binary and SIGTERM, in `process.rs`).
    pub async fn stop(self) -> tempfile::TempDir {
        let limit = std::time::Duration::from_secs(30);
        tokio::time::timeout(limit, self.stopper.halt())
            .await
            .expect("the gateway did not stop within 30 s");
        tokio::time::timeout(limit, self.server)
            .await
            .expect("the server task did not end within 30 s")
            .unwrap()
            .unwrap();
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Logs in on a Pixyle tenant mounted at `prefix`; returns the body.
    pub async fn pixyle_login(&self, prefix: &str, email: &str, password: &str) -> (u16, Value) {
        let response = self
            .post_json(
                &format!("{prefix}/auth/v1/token"),
                &serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `/_polyauth/verify` of the tenant at `prefix` with a bearer token.
    pub async fn verify(&self, prefix: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("{prefix}/_polyauth/verify")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// Longest wait of a raw exchange: far above any timeout it checks.
pub const RAW_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A TCP connection to `127.0.0.1:port` from the local address `from`
/// (any of 127.0.0.0/8 is local on Linux).
pub async fn connect_from(from: &str, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
}

/// Everything the server sends on `stream` until it closes it (a reset
/// ends it too), within [`RAW_WAIT`].
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(RAW_WAIT, read_all)
        .await
        .expect("the server kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes `request` as is on a new connection and returns all the server
/// sends before closing it.
pub async fn raw_exchange(port: u16, request: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = connect_from("127.0.0.1", port).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Status and JSON body of a response.
pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// The real binary, `polyauth serve`, with JSON logs collected as it runs.
pub struct Served {
    pub child: std::process::Child,
    pub port: u16,
    pub admin_port: u16,
    lines: std::sync::mpsc::Receiver<String>,
    logs: std::sync::Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Starts `polyauth serve --config <config>` at `RUST_LOG=<level>` and
    /// waits until it serves.
    pub fn start(config: &Path, level: &str) -> Self {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_polyauth"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", level)
            .env("POLYAUTH__LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(Mutex::new(String::new()));
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        // Both pipes are always drained, so a chatty server never blocks on them.
        let readers = [stdout, stderr]
            .into_iter()
            .map(|pipe| {
                let (logs, sender) = (std::sync::Arc::clone(&logs), sender.clone());
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                        logs.lock().unwrap().push_str(&line);
                        logs.lock().unwrap().push('\n');
                        let _ = sender.send(line);
                    }
                })
            })
            .collect();
        let mut served = Self {
            child,
            port: 0,
            admin_port: 0,
            lines,
            logs,
            readers,
        };
        let event = served.wait_for("polyauth serving");
        served.port = event["port"].as_u64().unwrap() as u16;
        served.admin_port = event["admin_port"].as_u64().unwrap() as u16;
        served
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Waits for the JSON log line whose message is `message`.
    pub fn wait_for(&mut self, message: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {message:?} line; logs so far:\n{}", self.logs()));
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event["message"] == message {
                    return event;
                }
            }
        }
    }

    /// Waits for the JSON log line whose message is one of `messages`.
    pub fn wait_for_any(&mut self, messages: &[&str]) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no line of {messages:?}; logs so far:\n{}", self.logs())
            });
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if messages.iter().any(|m| event["message"] == *m) {
                    return event;
                }
            }
        }
    }

    /// Everything logged so far, stdout and stderr.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGHUP: reload the configuration.
    pub fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its status and all it logged.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        (status, self.logs())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
