//! What every request goes through: a request id, one access-log line, the
//! body limit, the client address, and turning a dialect answer into HTTP.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Payload};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use ipnet::IpNet;

use crate::dialect::Response;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the handler tells the access log about the request.
#[derive(Debug, Clone)]
pub struct LogTags {
    pub tenant: String,
    pub route: String,
}

/// Echoes a sane `x-request-id` or makes one; logs one line per request
/// (no query string, no headers, no body: nothing secret).
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = req.method().to_string();
    let path = req.path().chars().take(256).collect::<String>();
    let mut response = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let tags = response.request().extensions().get::<LogTags>().cloned();
    let (tenant, route) = tags.map_or((String::new(), String::new()), |t| (t.tenant, t.route));
    tracing::info!(
        target: "polyauth::access",
        request_id = %request_id,
        method = %method,
        path = %path,
        tenant = %tenant,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}

/// Why a body could not be read.
pub enum BodyError {
    TooLarge,
    Broken,
}

/// Reads the body up to `limit` bytes, refusing early on a large
/// `Content-Length`.
pub async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BodyError::Broken),
        Err(_) => Err(BodyError::TooLarge),
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// right-most address of `X-Forwarded-For` that is not itself trusted.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// A header value as text, if present and readable.
pub fn header_text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = header_text(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A dialect answer as an HTTP response.
pub fn to_http(response: Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            builder.insert_header((name, value));
        }
    }
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    match response.body {
        Some(body) => builder
            .content_type("application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default()),
        None => builder.finish(),
    }
}
