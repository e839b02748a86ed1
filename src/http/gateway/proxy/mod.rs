//! The upstream proxy: every request under a tenant's mount that is no
//! dialect route and no gateway path goes to the tenant's `upstream`,
//! after the same decision as forward-auth (access rules included).
//!
//! Method, path (mount stripped, the upstream's base prepended), query and
//! body go on; the body streams both ways, never buffered whole, and is
//! bounded by `upstream_max_body_bytes`, not `max_body_bytes`. Headers:
//! see [`headers`]. A WebSocket upgrade is passed through ([`tunnel`]).
//!
//! What polyauth answers itself, always with the code's real HTTP status
//! and the dialect's body (as forward-auth): 401/403/503 when the decision
//! refuses; 502 when the upstream cannot be reached or breaks off before
//! its answer's head; 504 when that head has not come `upstream_timeout`
//! after the request was sent (timed from the body's end, as Envoy does,
//! so a long upload is not cut short), or when the upstream takes none of
//! the body for that long; 413 for a body over the limit; 408 when the
//! client stalls its body for `body_timeout`; 400 for a path with `.` or
//! `..` segments, an encoded slash or a backslash ([`path`]), and for a
//! WebSocket upgrade that declares a body (a `Content-Length` other than 0,
//! or a `Transfer-Encoding`): an upgrade has none, and an upstream that
//! refuses it could read the declared body from the next request sent on
//! its connection; 404 for a path that only names a dialect route or
//! gateway path once its slashes are merged (those are never proxied).
//!
//! One client per worker and tenant: its pooled connections stay on the
//! worker's runtime. The connection of an upgrade the upstream did not
//! take (any answer but a 101) is never used again: the upstream may still
//! take what follows on it for the new protocol, or for a body. HTTP/1.1
//! to the upstream, as nginx speaks it; over TLS for an https upstream,
//! its certificate verified ([`crate::config::upstream`]).

mod body;
mod headers;
mod path;
mod tunnel;

use std::time::Duration;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{HttpConnector, capture_connection};
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use self::body::{BodyEnd, BodyLimits, UpstreamBody};
use self::headers::{Forwarding, SentBody};
use self::path::PathProblem;
use super::verify::{Original, decide, principal_headers};
use crate::config::upstream::Upstream;
use crate::dialect::Failure;
use crate::engine::ErrorCode;
use crate::http::access_log::RequestId;
use crate::http::request::{read_body, to_http};
use crate::http::routing::GatewayRoute;
use crate::http::state::{AppState, TenantContext};

/// A pooled upstream connection is dropped after this long unused: before
/// the 5 s after which many servers (Node, actix, Go's default) close idle
/// ones themselves, so a request is rarely sent on a connection being closed.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// A tenant's upstream, as one worker reaches it.
pub struct Proxy {
    upstream: Upstream,
    client: UpstreamClient,
    /// The dialect's routes as mounted: a path that names one after its
    /// slashes are merged is not proxied.
    routes: Vec<ResourceDef>,
}

impl Proxy {
    /// The proxy to `upstream` of a tenant whose dialect routes are mounted
    /// at `route_paths`.
    pub fn new(upstream: &Upstream, route_paths: &[String]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE);
        let client = match &upstream.tls {
            Some(tls) => {
                // The TLS layer above it takes the https URIs.
                connector.enforce_http(false);
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(ClientConfig::clone(tls))
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                UpstreamClient::Tls(builder.build(connector))
            }
            None => UpstreamClient::Plain(builder.build(connector)),
        };
        Self {
            upstream: upstream.clone(),
            client,
            routes: route_paths.iter().map(ResourceDef::new).collect(),
        }
    }
}

/// A client for an http or an https upstream.
enum UpstreamClient {
    Plain(Client<HttpConnector, UpstreamBody>),
    Tls(Client<HttpsConnector<HttpConnector>, UpstreamBody>),
}

impl UpstreamClient {
    fn request(&self, request: hyper::Request<UpstreamBody>) -> ResponseFuture {
        match self {
            Self::Plain(client) => client.request(request),
            Self::Tls(client) => client.request(request),
        }
    }
}

/// Proxies a request that is no dialect route and no gateway path to the
/// tenant's upstream, once forward-auth's decision lets it pass.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
    proxy: web::Data<Proxy>,
) -> HttpResponse {
    req.extensions_mut().insert(GatewayRoute("proxy"));
    let refuse = |code: ErrorCode| to_http(context.dialect.verify_error(&Failure::of(code)));
    // CONNECT names an authority, not a path the rules could decide on.
    if req.method() == Method::CONNECT {
        return refuse(ErrorCode::MethodNotAllowed);
    }
    let paths = match proxy.paths_of(&req) {
        Ok(paths) => paths,
        Err(code) => return refuse(code),
    };
    // The rules read the path as sent (they decode it once, and refuse what
    // decodes ambiguously), as the upstream will get it: never actix's
    // decoded copy, where `%3F` has become a `?`.
    let original = Original {
        method: req.method().as_str(),
        path: match paths.forwarded.as_str() {
            "" => "/",
            forwarded => forwarded,
        },
    };
    let principal = match decide(&state.engine, &context, req.headers(), original).await {
        Ok(principal) => principal,
        Err(error) => return to_http(context.dialect.verify_error(&Failure::from(error))),
    };
    let upstream = &proxy.upstream;
    let framing = Framing::of(&req);
    if framing.upgrade_with_body() || framing.unsendable() {
        return refuse(ErrorCode::MalformedRequest);
    }
    if framing.declared > Some(upstream.max_body_bytes) {
        // Read and dropped (up to a bound), so that the client reads the answer.
        let _ = read_body(&req, payload, 0, state.body_timeout).await;
        return refuse(ErrorCode::PayloadTooLarge);
    }
    let forwarding = Forwarding {
        peer: req.peer_addr().map(|addr| addr.ip().to_canonical()),
        peer_trusted: false,
        host: requested_host(&req),
        upstream_host: upstream.authority.as_str(),
        principal: principal
            .as_ref()
            .map(principal_headers)
            .unwrap_or_default(),
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
        websocket: framing.websocket,
        body: framing.sent_body(),
    }
    .trusting(&state.trusted_proxies);
    let (sender, body) = match framing.streams_body() {
        true => {
            let (sender, body) = body::channel();
            (Some(sender), body)
        }
        false => (None, body::empty()),
    };
    let mut request = match upstream_request(&req, upstream, &paths, &forwarding, body) {
        Ok(request) => request,
        Err(code) => return refuse(code),
    };
    let upgrading = framing
        .websocket
        .is_some()
        .then(|| capture_connection(&mut request));

    let exchange = proxy.client.request(request);
    let (pump, payload) = match sender {
        Some(sender) => {
            let limits = BodyLimits {
                max_bytes: upstream.max_body_bytes,
                client_idle: state.body_timeout,
                upstream_idle: upstream.timeout,
            };
            (
                Some(actix_web::rt::spawn(body::pump(payload, sender, limits))),
                None,
            )
        }
        None => (None, Some(payload)),
    };
    let answer = match answer_head(exchange, pump, upstream.timeout).await {
        Ok(answer) => answer,
        Err(Refusal::Code(code)) => return refuse(code),
        Err(Refusal::Unreachable(error)) => {
            tracing::warn!(
                tenant = %context.tenant.id,
                error = %error_chain(&error),
                "the upstream cannot be reached"
            );
            return refuse(ErrorCode::BadGateway);
        }
    };
    let switching = answer.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let Some(connection) = upgrading.filter(|_| !switching) {
        // Not back to the pool: what the upstream makes of the bytes after
        // an upgrade it did not take is not for the proxy to guess.
        if let Some(connected) = connection.connection_metadata().as_ref() {
            connected.poison();
        }
    }
    match (framing.websocket, payload) {
        (Some(_), Some(payload)) if switching => {
            tunnel::splice(&req, payload, answer, upstream.timeout)
                .await
                .unwrap_or_else(refuse)
        }
        _ => to_client(answer),
    }
}

impl Proxy {
    /// The paths `req` is routed and forwarded on; the code to answer
    /// instead when it is not to be proxied.
    fn paths_of(&self, req: &HttpRequest) -> Result<path::Paths, ErrorCode> {
        let routed = req.match_info();
        let paths = path::of(req.uri().path(), routed.as_str(), routed.unprocessed()).map_err(
            |problem| match problem {
                PathProblem::Ambiguous => ErrorCode::MalformedRequest,
                PathProblem::MountEncoded => ErrorCode::NotFound,
            },
        )?;
        let polyauths = crate::reserved::is_reserved(&paths.routed)
            || self
                .routes
                .iter()
                .any(|route| route.is_match(&paths.routed));
        match polyauths {
            true => Err(ErrorCode::NotFound),
            false => Ok(paths),
        }
    }
}

/// How a request's body travels.
struct Framing<'a> {
    /// Its `Content-Length`, and whether it has one at all.
    declared: Option<u64>,
    length_stated: bool,
    chunked: bool,
    /// The `Upgrade` value of a WebSocket upgrade: its payload is the
    /// tunnel's, not a body.
    websocket: Option<&'a [u8]>,
    /// Some `Upgrade` value is `websocket` (how actix decides that the
    /// payload is a raw stream).
    upgrade_names_websocket: bool,
    method: Method,
}

impl<'a> Framing<'a> {
    fn of(req: &'a HttpRequest) -> Self {
        let headers = req.headers();
        Self {
            declared: headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok()),
            length_stated: headers.contains_key(header::CONTENT_LENGTH),
            chunked: headers.contains_key(header::TRANSFER_ENCODING),
            websocket: headers::websocket_upgrade(headers),
            upgrade_names_websocket: headers.get_all(header::UPGRADE).any(|value| {
                value
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"websocket")
            }),
            method: req.method().clone(),
        }
    }

    /// A WebSocket upgrade declaring a body: its payload is the tunnel's,
    /// so none would be sent, and an upstream framing by the declaration
    /// could take the next request's bytes for it.
    fn upgrade_with_body(&self) -> bool {
        self.websocket.is_some() && (self.chunked || self.length_stated && self.declared != Some(0))
    }

    /// A request whose body could not go on as framed: `websocket` among
    /// other `Upgrade` values (actix hands over the raw stream, but no
    /// tunnel would be opened), or a chunked body on GET or HEAD (which
    /// the upstream client would drop, not send).
    fn unsendable(&self) -> bool {
        (self.websocket.is_none() && self.upgrade_names_websocket)
            || (self.chunked && matches!(self.method, Method::GET | Method::HEAD))
    }

    /// What body goes on, which the upstream's framing headers state.
    fn sent_body(&self) -> SentBody {
        match self.declared {
            _ if self.websocket.is_some() => SentBody::Nothing,
            _ if self.chunked => SentBody::Chunked,
            Some(0) => SentBody::Empty,
            Some(_) => SentBody::Sized,
            None => SentBody::Nothing,
        }
    }

    fn streams_body(&self) -> bool {
        matches!(self.sent_body(), SentBody::Sized | SentBody::Chunked)
    }
}

/// The request the upstream gets for `req`, with `body`.
fn upstream_request(
    req: &HttpRequest,
    upstream: &Upstream,
    paths: &path::Paths,
    forwarding: &Forwarding<'_>,
    body: UpstreamBody,
) -> Result<hyper::Request<UpstreamBody>, ErrorCode> {
    let uri = upstream
        .uri(&paths.forwarded, req.query_string())
        .map_err(|_| ErrorCode::MalformedRequest)?;
    let method = http::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ErrorCode::MalformedRequest)?;
    let mut request = hyper::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers::to_upstream(req.headers(), forwarding);
    Ok(request)
}

/// Why there is no upstream answer to pass on.
enum Refusal {
    Code(ErrorCode),
    Unreachable(hyper_util::client::legacy::Error),
}

/// The upstream's answer head, while the body (if any) streams under its
/// own limits; the head's deadline starts once the body is all sent.
async fn answer_head(
    exchange: impl Future<Output = Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error>>,
    mut pump: Option<tokio::task::JoinHandle<BodyEnd>>,
    timeout: Duration,
) -> Result<hyper::Response<Incoming>, Refusal> {
    enum Event {
        Answer(Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error>),
        Body(Option<BodyEnd>),
        Late,
    }
    let mut exchange = std::pin::pin!(exchange);
    let mut deadline = pump
        .is_none()
        .then(|| tokio::time::Instant::now() + timeout);
    loop {
        let body_end = async {
            match &mut pump {
                Some(pump) => pump.await.ok(),
                None => std::future::pending().await,
            }
        };
        let late = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            answer = &mut exchange => Event::Answer(answer),
            end = body_end => Event::Body(end),
            () = late => Event::Late,
        };
        match event {
            Event::Answer(answer) => return answer.map_err(Refusal::Unreachable),
            Event::Late => return Err(Refusal::Code(ErrorCode::GatewayTimeout)),
            Event::Body(end) => {
                pump = None;
                let code = match end {
                    Some(BodyEnd::Complete | BodyEnd::UpstreamDone) => {
                        deadline = Some(tokio::time::Instant::now() + timeout);
                        continue;
                    }
                    Some(BodyEnd::TooLarge) => ErrorCode::PayloadTooLarge,
                    Some(BodyEnd::ClientStalled) => ErrorCode::RequestTimeout,
                    Some(BodyEnd::UpstreamStalled) => ErrorCode::GatewayTimeout,
                    Some(BodyEnd::ClientBroken) | None => ErrorCode::MalformedRequest,
                };
                return Err(Refusal::Code(code));
            }
        }
    }
}

/// The upstream's answer as the client gets it, its body streamed.
fn to_client(answer: hyper::Response<Incoming>) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    copy_headers(&mut response, &headers::from_upstream(answer.headers()));
    // A length beside a chunked encoding is not to be believed (RFC 9112 §6.3).
    let length = match answer
        .headers()
        .contains_key(http::header::TRANSFER_ENCODING)
    {
        true => None,
        false => answer
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok()),
    };
    let body = answer.into_body().into_data_stream();
    match length {
        Some(length) => response.body(SizedStream::new(length, body)),
        None => response.body(BodyStream::new(body)),
    }
}

fn copy_headers(response: &mut HttpResponseBuilder, headers: &[(&str, &[u8])]) {
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            response.append_header((name, value));
        }
    }
}

/// The host the client asked for, as it wrote it (with its port).
fn requested_host(req: &HttpRequest) -> Option<&str> {
    match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => req.headers().get(header::HOST)?.to_str().ok(),
    }
}

/// An error and its causes, for the log (no request data is in them).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
