//! Real nginx and Caddy for the forward-auth tests, each in the foreground
//! with its configuration, pid, logs and temp files in its own temp
//! directory, on a free port (retried if another process takes it first),
//! killed when dropped. They run the files under `examples/proxy/`, which
//! the README shows, with the test's addresses in place of the examples'.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{free_port, program, repo};

/// The addresses the example files name, in place of the test's.
pub const EXAMPLE_PROXY: &str = "127.0.0.1:8000";
pub const EXAMPLE_POLYAUTH: &str = "127.0.0.1:8080";
pub const EXAMPLE_UPSTREAM: &str = "127.0.0.1:7000";

/// Where a proxy sends what it checked and what it passes on.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub polyauth_port: u16,
    pub upstream_port: u16,
}

/// The text of `examples/proxy/<name>`.
pub fn example(name: &str) -> String {
    let path = repo().join("examples/proxy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with every `(from, to)` replaced in one pass (a value put in is
/// never replaced again).
fn fill(text: &str, replacements: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = replacements
            .iter()
            .filter_map(|(from, to)| rest.find(from).map(|at| (at, *from, to)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, from, to)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(to);
        rest = &rest[at + from.len()..];
    }
}

/// An example file with the test's addresses.
fn example_for(name: &str, port: u16, backends: Backends) -> String {
    let text = example(name);
    for placeholder in [EXAMPLE_PROXY, EXAMPLE_POLYAUTH, EXAMPLE_UPSTREAM] {
        assert!(text.contains(placeholder), "{name} names no {placeholder}");
    }
    fill(
        &text,
        &[
            (EXAMPLE_PROXY, format!("127.0.0.1:{port}")),
            (
                EXAMPLE_POLYAUTH,
                format!("127.0.0.1:{}", backends.polyauth_port),
            ),
            (
                EXAMPLE_UPSTREAM,
                format!("127.0.0.1:{}", backends.upstream_port),
            ),
        ],
    )
}

/// A proxy process and the port it serves on.
pub struct ProxyServer {
    pub port: u16,
    name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
}

impl ProxyServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it logged, for a failing assertion.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for file in ["error.log", "stderr.log", "access.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(file)) {
                logs.push_str(&format!("--- {} {file}\n{text}", self.name));
            }
        }
        logs
    }

    /// Starts `launch(dir, port)` on free ports until one serves.
    fn start(name: &'static str, launch: impl Fn(&Path, u16) -> Command) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        let mut logs = String::new();
        for _ in 0..5 {
            let port = free_port();
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let child = launch(dir.path(), port)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
            let mut server = Self {
                port,
                name,
                child,
                dir,
            };
            if server.serves() {
                return server;
            }
            // It exited: most likely another process took the port first.
            logs = server.logs();
            dir = server.into_dir();
        }
        panic!("{name} did not start on any of 5 free ports; last logs:\n{logs}");
    }

    /// Waits until the port accepts connections; `false` if the process exited.
    fn serves(&mut self) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} never listened on {}:\n{}",
            self.name,
            self.port,
            self.logs()
        );
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx running `examples/proxy/nginx.conf` inside an `http { }` whose
/// temp paths and logs are in its directory; one process, in the foreground.
pub struct Nginx;

impl Nginx {
    pub fn start(backends: Backends) -> ProxyServer {
        let binary = nginx_binary();
        ProxyServer::start("nginx", move |dir, port| {
            std::fs::write(
                dir.join("polyauth.conf"),
                example_for("nginx.conf", port, backends),
            )
            .unwrap();
            let d = dir.display();
            let main = format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n    access_log {d}/access.log;\n\
                 \x20   client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n\
                 \x20   fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n\
                 \x20   scgi_temp_path {d}/scgi;\n    include {d}/polyauth.conf;\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), main).unwrap();
            let mut command = Command::new(&binary);
            command
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"));
            command
        })
    }
}

/// `$POLYAUTH_TEST_NGINX`, else `nginx` on the `PATH`, else Debian's
/// (`/usr/sbin` is not on every user's `PATH`).
fn nginx_binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/nginx");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nginx").is_file()));
    if std::env::var_os("POLYAUTH_TEST_NGINX").is_none() && !on_path && debian.is_file() {
        return debian.to_owned();
    }
    program("POLYAUTH_TEST_NGINX", "nginx")
}

/// Caddy running `examples/proxy/Caddyfile`, imported by one that turns the
/// admin endpoint and automatic HTTPS off; its pid file, home and XDG
/// directories are in its directory.
pub struct Caddy;

impl Caddy {
    pub fn start(backends: Backends) -> ProxyServer {
        let binary = program("POLYAUTH_TEST_CADDY", "caddy");
        ProxyServer::start("caddy", move |dir, port| {
            std::fs::write(
                dir.join("site.Caddyfile"),
                example_for("Caddyfile", port, backends),
            )
            .unwrap();
            let main = format!(
                "{{\n\tadmin off\n\tauto_https off\n}}\n\nimport {}\n",
                dir.join("site.Caddyfile").display()
            );
            std::fs::write(dir.join("Caddyfile"), main).unwrap();
            let mut command = Command::new(&binary);
            command
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(dir.join("Caddyfile"))
                .arg("--pidfile")
                .arg(dir.join("caddy.pid"))
                .env("HOME", dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_DATA_HOME", dir.join("data"));
            command
        })
    }
}
