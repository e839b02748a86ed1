//! A real HTTP upstream for the proxy and forward-auth tests: an actix-web
//! server on a free port, in its own thread, stopped when dropped.
//!
//! - `GET|POST … /slow?ms=N` answers after N milliseconds;
//! - `POST … /upload` reads the body as it streams in and answers
//!   `{"bytes": n}`;
//! - any other path echoes the request as JSON: `method`, `path`, `query`,
//!   `headers` (name → every value, in order) and `body_bytes`.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

pub struct Upstream {
    pub port: u16,
    handle: Option<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(|| {
                    App::new()
                        .route("/{any:.*}/slow", web::route().to(slow))
                        .route("/slow", web::route().to(slow))
                        .route("/{any:.*}/upload", web::post().to(upload))
                        .route("/upload", web::post().to(upload))
                        .default_service(web::to(echo))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
                sender.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        let handle = receiver.recv().unwrap();
        Self {
            port,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops serving: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Its own thread: the caller may be inside an async runtime.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build();
                runtime.unwrap().block_on(handle.stop(false));
            })
            .join()
            .unwrap();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn slow(req: HttpRequest) -> HttpResponse {
    let ms: u64 = web::Query::<Map<String, Value>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("ms").and_then(|v| v.as_str()?.parse().ok()))
        .unwrap_or(1_000);
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
    HttpResponse::Ok().json(json!({ "slept_ms": ms }))
}

async fn upload(mut payload: web::Payload) -> HttpResponse {
    let mut bytes = 0u64;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => bytes += chunk.len() as u64,
            Err(error) => return HttpResponse::BadRequest().body(error.to_string()),
        }
    }
    HttpResponse::Ok().json(json!({ "bytes": bytes }))
}

async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        let values = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.push(
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
    }
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body_bytes": body.len(),
    }))
}

#[tokio::test]
async fn the_upstream_echoes_requests_and_refuses_once_stopped() {
    let mut upstream = Upstream::start();
    let client = reqwest::Client::new();
    let echoed: Value = client
        .post(format!("{}/a/b?c=d", upstream.url()))
        .header("x-one", "1")
        .body("four")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/a/b");
    assert_eq!(echoed["query"], "c=d");
    assert_eq!(echoed["headers"]["x-one"], json!(["1"]));
    assert_eq!(echoed["body_bytes"], 4);
    let uploaded: Value = client
        .post(format!("{}/x/upload", upstream.url()))
        .body(vec![0u8; 100_000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(uploaded["bytes"], 100_000);
    upstream.stop();
    assert!(client.get(upstream.url()).send().await.is_err());
}
