//! Reading a request (its body within limits, the client's address) and
//! writing a dialect answer as HTTP.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::{Bytes, Payload};
use actix_web::{HttpRequest, HttpResponse};
use ipnet::IpNet;

use crate::dialect::{BodyError, Response};

/// An oversized body up to this size is read and thrown away before the 413
/// goes out: a client still sending when the connection closes would see a
/// reset instead of the answer. Larger ones are cut off at once.
pub const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

/// Reads the body up to `limit` bytes, all of it within `timeout`.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(BodyError::TooLarge);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = actix_web::web::BytesMut::new();
    let mut seen = 0usize;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, payload.next()).await else {
            // Too large is the better answer, when it is already known.
            return Err(match seen > limit {
                true => BodyError::TooLarge,
                false => BodyError::TimedOut,
            });
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if seen <= limit {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(body.freeze())
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Only entries appended by trusted proxies are believed: the walk stops at
/// the first entry it cannot read, so a client cannot hide behind garbage.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().flat_map(|v| v.split(',')).rev() {
        match parse_forwarded(entry) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return Some(ip),
            None => return Some(client),
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
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

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    use super::*;

    fn ip_of(peer: &str, forwarded: Option<&[u8]>) -> IpAddr {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(value) = forwarded {
            req = req.insert_header(("x-forwarded-for", HeaderValue::from_bytes(value).unwrap()));
        }
        client_ip(&req.to_http_request(), &trusted).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            ip_of("203.0.113.9:1", Some(b"198.51.100.1")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let client = "198.51.100.1".parse::<IpAddr>().unwrap();
        assert_eq!(ip_of("127.0.0.1:1", Some(b"198.51.100.1")), client);
        assert_eq!(
            ip_of("127.0.0.1:1", Some(b"6.6.6.6, 198.51.100.1, 10.1.2.3")),
            client
        );
        assert_eq!(ip_of("127.0.0.1:1", Some(b"198.51.100.1:4711")), client);
        assert_eq!(
            ip_of("127.0.0.1:1", Some(b"[2001:db8::1]:443")),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn garbage_a_client_sends_cannot_hide_it() {
        let client = "198.51.100.1".parse::<IpAddr>().unwrap();
        // Bytes that are not text, or not an address, left of what the proxy appended.
        assert_eq!(
            ip_of("127.0.0.1:1", Some(b"\xff\xfe, 198.51.100.1")),
            client
        );
        assert_eq!(ip_of("127.0.0.1:1", Some(b"unknown, 198.51.100.1")), client);
        // An unreadable entry appended by a trusted hop: fall back to that hop.
        assert_eq!(
            ip_of("127.0.0.1:1", Some(b"198.51.100.1, garbage")),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ip_of("127.0.0.1:1", None),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
