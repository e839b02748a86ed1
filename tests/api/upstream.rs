//! A real HTTP upstream for the proxy and forward-auth tests: an actix-web
//! server on a free port, in its own thread, stopped when dropped.
//!
//! - `GET|POST … /slow?ms=N` answers after N milliseconds;
//! - `POST … /upload` reads the body as it streams in and answers
//!   `{"bytes": n}`;
//! - `GET|HEAD … /download?bytes=N` streams N bytes (with their length), made
//!   as they are sent;
//! - `GET … /hop` answers with hop-by-hop headers a proxy must not pass on;
//! - any other path echoes the request as JSON: `method`, `path`, `query`,
//!   `headers` (name → every value, in order) and `body_bytes`.
//!
//! [`Upstream::requests`] counts the requests it was sent. [`WsEcho`] is a
//! WebSocket upstream that echoes every message; [`TlsUpstream`] an https
//! one with a certificate of a CA made for the test; [`RawUpstream`] one
//! that frames requests by their `Content-Length` alone, as many servers
//! do, and keeps the head of every request it reads.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

pub struct Upstream {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    handle: Option<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, receiver) = std::sync::mpsc::channel();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let counter = Arc::clone(&counter);
                    App::new()
                        .wrap_fn(move |req, srv| {
                            counter.fetch_add(1, Ordering::SeqCst);
                            actix_web::dev::Service::call(srv, req)
                        })
                        .route("/{any:.*}/slow", web::route().to(slow))
                        .route("/slow", web::route().to(slow))
                        .route("/{any:.*}/upload", web::post().to(upload))
                        .route("/upload", web::post().to(upload))
                        .route("/{any:.*}/download", web::route().to(download))
                        .route("/download", web::route().to(download))
                        .route("/{any:.*}/hop", web::get().to(hop))
                        .route("/hop", web::get().to(hop))
                        .route("/{any:.*}/cors", web::route().to(cors))
                        .route("/cors", web::route().to(cors))
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
            requests,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests it has been sent.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops serving: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            stop_server(handle);
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Stops an actix-web server at once, from a thread of its own: the caller
/// may be inside an async runtime.
pub fn stop_server(handle: ServerHandle) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        runtime.unwrap().block_on(handle.stop(false));
    })
    .join()
    .unwrap();
}

/// A TCP server on a free port, in its own thread and runtime: each
/// accepted stream is served by `serve(stream, its number)`; stopped when
/// dropped.
struct Acceptor {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let accept = async {
                    for connection in 0.. {
                        if let Ok((stream, _)) = listener.accept().await {
                            tokio::task::spawn_local(serve(stream, connection));
                        }
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The request headers of one WebSocket handshake.
pub type Handshake = Vec<(String, String)>;

/// A WebSocket upstream on a free port, in its own thread: echoes every
/// text and binary message; keeps each handshake's request headers.
pub struct WsEcho {
    pub port: u16,
    handshakes: Arc<std::sync::Mutex<Vec<Handshake>>>,
    _acceptor: Acceptor,
}

impl WsEcho {
    pub fn start() -> Self {
        let handshakes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&handshakes);
        let acceptor = Acceptor::start(move |stream, _| echo_socket(stream, Arc::clone(&seen)));
        Self {
            port: acceptor.port,
            handshakes,
            _acceptor: acceptor,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request headers of every handshake so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}

/// Accepts one WebSocket on `stream`, noting its handshake, and echoes it.
async fn echo_socket(stream: tokio::net::TcpStream, seen: Arc<std::sync::Mutex<Vec<Handshake>>>) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    // The callback's error type is tungstenite's, large as it is.
    #[allow(clippy::result_large_err)]
    let note = |request: &Request, response: Response| {
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        seen.lock().unwrap().push(headers);
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, note).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        if message.is_close() {
            return;
        }
        if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
            return;
        }
    }
}

/// The head of one request a [`RawUpstream`] read, and the number of the
/// connection it came on (counted from 0 as they are accepted).
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub connection: usize,
    pub head: String,
}

impl RawRequest {
    /// Its request line's target.
    pub fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }
}

/// A plain HTTP/1.1 upstream on a free port, in its own thread, as simple
/// servers are: it answers each request as soon as its head is read (`404`
/// for a path ending in `/missing`, else `200`, both with a length and the
/// connection kept open), then skips the `Content-Length` bytes of its body
/// and reads the next request on the connection. It knows no WebSocket.
pub struct RawUpstream {
    pub port: u16,
    requests: Arc<std::sync::Mutex<Vec<RawRequest>>>,
    _acceptor: Acceptor,
}

impl RawUpstream {
    pub fn start() -> Self {
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let acceptor = Acceptor::start(move |stream, connection| {
            serve_raw(stream, connection, Arc::clone(&seen))
        });
        Self {
            port: acceptor.port,
            requests,
            _acceptor: acceptor,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request it has read, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves the requests of one connection (see [`RawUpstream`]).
async fn serve_raw(
    mut stream: tokio::net::TcpStream,
    connection: usize,
    seen: Arc<std::sync::Mutex<Vec<RawRequest>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end);
        let length: usize = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        let request = RawRequest { connection, head };
        let status = match request.path().ends_with("/missing") {
            true => "404 Not Found",
            false => "200 OK",
        };
        seen.lock().unwrap().push(request);
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        // The body, skipped once answered.
        while buffer.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..length);
    }
}

/// An https upstream on a free port with a certificate for `127.0.0.1`
/// signed by a CA made for it (`ca_file`): answers every request with
/// `{"path", "x-auth-subject"}` and closes the connection.
pub struct TlsUpstream {
    pub port: u16,
    pub ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _acceptor: Acceptor,
}

impl TlsUpstream {
    pub fn start() -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path());
        let certificates: Vec<CertificateDer> =
            CertificateDer::pem_file_iter(dir.path().join("leaf.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.path().join("leaf.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let acceptor = Acceptor::start(move |stream, _| answer_tls(tls.clone(), stream));
        Self {
            port: acceptor.port,
            ca_file: dir.path().join("ca.pem"),
            _dir: dir,
            _acceptor: acceptor,
        }
    }
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed
/// (`leaf.pem`, `leaf.key`), made with the openssl command.
fn make_certificates(dir: &std::path::Path) {
    let openssl = crate::tools::program("POLYAUTH_TEST_OPENSSL", "openssl");
    // Each command's words hold no spaces.
    let run = |command: &str| {
        let status = std::process::Command::new(&openssl)
            .args(command.split_whitespace())
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {command}");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=polyauth-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    ));
    run(&format!(
        "req {ec} -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1"
    ));
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
         -days 2 -extfile leaf.ext",
    );
}

/// Reads one request head over TLS and answers it.
async fn answer_tls(acceptor: tokio_rustls::TlsAcceptor, stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let subject = head
        .lines()
        .find_map(|line| line.strip_prefix("x-auth-subject: "))
        .map(str::to_owned);
    let body = json!({ "path": path, "x-auth-subject": subject }).to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(answer.as_bytes()).await;
    let _ = tls.shutdown().await;
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

async fn download(req: HttpRequest) -> HttpResponse {
    const CHUNK: usize = 64 * 1024;
    let total: u64 = web::Query::<Map<String, Value>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("bytes").and_then(|v| v.as_str()?.parse().ok()))
        .unwrap_or(0);
    let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let n = (total - sent).min(CHUNK as u64);
        let chunk = web::Bytes::from(vec![b'x'; n as usize]);
        Some((Ok::<_, std::io::Error>(chunk), sent + n))
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(actix_web::body::SizedStream::new(total, chunks))
}

async fn hop() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("keep-alive", "timeout=99"))
        .insert_header(("proxy-authenticate", "Basic realm=\"up\""))
        .insert_header(("trailer", "x-checksum"))
        .insert_header(("upgrade", "h2c"))
        .insert_header(("x-end-to-end", "kept"))
        .append_header(("set-cookie", "a=1"))
        .append_header(("set-cookie", "b=2"))
        .body("hop")
}

/// An upstream answering CORS for itself, generously.
async fn cors() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("access-control-allow-origin", "https://evil.example"))
        .insert_header(("access-control-allow-credentials", "true"))
        .insert_header(("access-control-allow-headers", "*"))
        .body("cors")
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
