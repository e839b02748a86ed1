//! A real browser for the tests: headless Chromium on a page served by a
//! small HTTP server of the test's own, on another port (so another origin)
//! than the gateway. The page's script reports what it saw by POSTing it
//! to `/report` on its own server; [`Page::report`] waits for that.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::tools::program;

/// Longest wait for a page's report: Chromium's start on a busy machine
/// included.
const REPORT_WAIT: Duration = Duration::from_secs(90);

/// A port bound for a page before its HTML is known: the gateway's
/// configuration needs the page's origin first.
pub struct PageSite {
    listener: TcpListener,
}

impl PageSite {
    pub fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// `http://127.0.0.1:<port>`, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// Serves `html` at `/` and collects reports, in a thread of its own.
    pub fn serve(self, html: String) -> Page {
        let origin = self.origin();
        let (sender, reports) = unbounded_channel();
        let (handle_sender, handle_receiver) = std::sync::mpsc::channel();
        let listener = self.listener;
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let html = web::Data::new(html);
                let sender = web::Data::new(sender);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(html.clone())
                        .app_data(sender.clone())
                        .route("/", web::get().to(page))
                        .route("/report", web::post().to(report))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
                handle_sender.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        Page {
            origin,
            reports,
            handle: Some(handle_receiver.recv().unwrap()),
            thread: Some(thread),
        }
    }
}

async fn page(html: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html.get_ref().clone())
}

async fn report(body: web::Bytes, sender: web::Data<UnboundedSender<Value>>) -> HttpResponse {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let _ = sender.send(value);
    HttpResponse::NoContent().finish()
}

/// A page being served; stops serving when dropped.
pub struct Page {
    pub origin: String,
    reports: UnboundedReceiver<Value>,
    handle: Option<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Page {
    /// The next report the page POSTs, within [`REPORT_WAIT`]; panics with
    /// the browser's log otherwise.
    pub async fn report(&mut self, browser: &Browser) -> Value {
        match tokio::time::timeout(REPORT_WAIT, self.reports.recv()).await {
            Ok(Some(report)) => report,
            _ => panic!(
                "the page reported nothing within {REPORT_WAIT:?}; Chromium's log:\n{}",
                browser.log()
            ),
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            crate::upstream::stop_server(handle);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Headless Chromium showing one page, with a profile of its own; killed,
/// with every process it started, when dropped.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` (`$POLYAUTH_TEST_CHROMIUM`, else `chromium` on the PATH).
    pub fn open(url: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(log_path(profile.path())).unwrap();
        let child = Command::new(program("POLYAUTH_TEST_CHROMIUM", "chromium"))
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: the renderers and helpers go with it.
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, profile }
    }

    /// What Chromium wrote so far (its last 4 kB).
    pub fn log(&self) -> String {
        let text = std::fs::read(log_path(self.profile.path())).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(4096)..];
        String::from_utf8_lossy(tail).into_owned()
    }
}

fn log_path(profile: &Path) -> std::path::PathBuf {
    profile.join("chromium.log")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
