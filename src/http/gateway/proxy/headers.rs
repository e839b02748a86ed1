//! What headers cross the proxy, each way.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) stop here both ways: `Connection`
//! and every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding` and `Upgrade` (a WebSocket upgrade is re-stated
//! for the next hop). `Expect` is answered here (actix sends the
//! `100 Continue`), so it is not passed on either.
//!
//! A request's framing is the proxy's own: `Content-Length` goes on only
//! with the body it counts; a chunked body goes on chunked, without one; a
//! request that streams no body (a WebSocket upgrade, or one without a
//! body) goes on with neither, but `Content-Length: 0` when the client
//! declared an empty body. An upstream thus never waits for bytes that are
//! not sent, and never takes the next request's for them.
//!
//! Towards the upstream, as nginx and Traefik do behind trusted proxies:
//! - `Host` names the upstream (the original is in `X-Forwarded-Host`);
//! - `X-Forwarded-For` is the chain the trusted peer sent with the peer
//!   appended; from any other peer, only the peer (what it claims is dropped);
//! - `X-Forwarded-Proto` and `X-Forwarded-Host` are a trusted peer's, else
//!   `http` (the listener speaks plain HTTP) and the request's host;
//! - `Forwarded` (RFC 7239) and `X-Real-IP` go on from a trusted peer only,
//!   unchanged;
//! - every client-sent `X-Auth-*` is dropped, whatever its case and however
//!   many, and the principal's are set;
//! - every header whose name holds an underscore is dropped, as nginx does
//!   by default (`underscores_in_headers off`): CGI, WSGI and Rack read `_`
//!   as `-`, so `X_Auth_Roles` would be `X-Auth-Roles` to them (and
//!   `X_Forwarded_For` `X-Forwarded-For`), and no standard header has one;
//! - `X-HTTP-Method-Override`, `X-Method-Override` and `X-HTTP-Method` are
//!   dropped: access rules decide on the request's method, and a framework
//!   honouring an override would run another;
//! - `X-Request-Id` is the id the access log gives the request.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap as ClientHeaders;
use http::header::{HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Headers asking a framework to run another method than the request's.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
];

/// Headers that name another path, method, scheme, prefix or client than
/// the request's own, which frameworks believe (Symfony's and IIS's
/// `X-Original-URL`, Rails' `Client-IP`, the forward-auth conventions):
/// the access rules decided on the request itself, so they go on only from
/// a peer in `trusted_proxies`.
const CLAIMS_OF_A_PROXY: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-server",
];

/// Whether `name` (lower case) is a hop-by-hop header in itself.
fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name) || name.starts_with("proxy-")
}

/// The header names `Connection` lists, lower case.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|value| value.split(|b| *b == b','))
        .map(|token| String::from_utf8_lossy(token.trim_ascii()).to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// Whether the request asks for a WebSocket (`Connection: upgrade` and
/// `Upgrade: websocket`, any case); its `Upgrade` value if so. Exactly as
/// actix-http reads it (an `Upgrade` value that is `websocket` alone), so
/// that a tunnel is opened only where actix hands over the raw stream.
pub fn websocket_upgrade(headers: &ClientHeaders) -> Option<&[u8]> {
    let connection = headers.get_all("connection").map(|v| v.as_bytes());
    if !connection_tokens(connection).iter().any(|t| t == "upgrade") {
        return None;
    }
    let mut upgrades = headers.get_all("upgrade");
    let upgrade = upgrades.next()?;
    let alone = upgrades.next().is_none()
        && upgrade
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"websocket");
    alone.then_some(upgrade.as_bytes())
}

/// Who sent the request, and what the proxy adds for the upstream.
pub struct Forwarding<'a> {
    /// The TCP peer, and whether it is one of `trusted_proxies`.
    pub peer: Option<IpAddr>,
    pub peer_trusted: bool,
    /// The host the client asked for (`Host`, or an absolute target's).
    pub host: Option<&'a str>,
    /// The upstream's `host[:port]`.
    pub upstream_host: &'a str,
    /// The principal's `X-Auth-*` headers.
    pub principal: Vec<(&'static str, actix_web::http::header::HeaderValue)>,
    pub request_id: Option<String>,
    /// The `Upgrade` value of a WebSocket upgrade being passed on.
    pub websocket: Option<&'a [u8]>,
    /// What body goes with the request, which its framing headers state.
    pub body: SentBody,
}

/// The body a request goes on with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentBody {
    /// None is streamed: no `Content-Length`, no `Transfer-Encoding`.
    Nothing,
    /// The client declared `Content-Length: 0`: `Content-Length: 0` (some
    /// servers want a length with a POST), and nothing streamed.
    Empty,
    /// Of the client's `Content-Length`, which goes on.
    Sized,
    /// Chunked: a `Content-Length` beside it is not passed on.
    Chunked,
}

impl Forwarding<'_> {
    /// With `peer_trusted` set from `trusted_proxies`, as
    /// [`crate::http::request::client_ip`] reads them.
    pub fn trusting(mut self, trusted_proxies: &[ipnet::IpNet]) -> Self {
        self.peer_trusted = self
            .peer
            .is_some_and(|ip| trusted_proxies.iter().any(|net| net.contains(&ip)));
        self
    }
}

/// The headers the upstream gets for a request with `incoming`.
pub fn to_upstream(incoming: &ClientHeaders, forwarding: &Forwarding<'_>) -> HeaderMap {
    let named = connection_tokens(incoming.get_all("connection").map(|v| v.as_bytes()));
    let mut headers = HeaderMap::with_capacity(incoming.len() + 8);
    for (name, value) in incoming {
        let name = name.as_str();
        let dropped = is_hop_by_hop(name)
            || named.iter().any(|token| token == name)
            || name.starts_with("x-auth-")
            || name.contains('_')
            || METHOD_OVERRIDES.contains(&name)
            || (forwarding.body != SentBody::Sized && name == "content-length")
            || (!forwarding.peer_trusted && CLAIMS_OF_A_PROXY.contains(&name))
            || matches!(
                name,
                "host"
                    | "expect"
                    | "x-request-id"
                    | X_FORWARDED_FOR
                    | X_FORWARDED_PROTO
                    | X_FORWARDED_HOST
            );
        if !dropped {
            append(&mut headers, name, value.as_bytes());
        }
    }
    set(&mut headers, "host", forwarding.upstream_host.as_bytes());
    if forwarding.body == SentBody::Empty {
        set(&mut headers, "content-length", b"0");
    }
    let trusted = |name: &str| {
        forwarding
            .peer_trusted
            .then(|| incoming.get(name))
            .flatten()
            .map(|v| v.as_bytes())
    };
    let mut chain: Vec<&[u8]> = Vec::new();
    if forwarding.peer_trusted {
        chain.extend(
            incoming
                .get_all(X_FORWARDED_FOR)
                .map(|v| v.as_bytes().trim_ascii()),
        );
    }
    let peer = forwarding.peer.map(|ip| ip.to_string());
    chain.extend(peer.as_deref().map(str::as_bytes));
    if !chain.is_empty() {
        set(&mut headers, X_FORWARDED_FOR, &chain.join(&b", "[..]));
    }
    let proto = trusted(X_FORWARDED_PROTO).unwrap_or(b"http");
    set(&mut headers, X_FORWARDED_PROTO, proto);
    if let Some(host) = trusted(X_FORWARDED_HOST).or(forwarding.host.map(str::as_bytes)) {
        set(&mut headers, X_FORWARDED_HOST, host);
    }
    for (name, value) in &forwarding.principal {
        set(&mut headers, name, value.as_bytes());
    }
    if let Some(id) = &forwarding.request_id {
        set(&mut headers, "x-request-id", id.as_bytes());
    }
    if let Some(upgrade) = forwarding.websocket {
        set(&mut headers, "connection", b"upgrade");
        set(&mut headers, "upgrade", upgrade);
    }
    headers
}

/// The upstream's answer headers the client gets: end-to-end ones only,
/// without `Content-Length` (the body states its own length).
pub fn from_upstream(incoming: &HeaderMap) -> Vec<(&str, &[u8])> {
    let named = connection_tokens(incoming.get_all("connection").iter().map(|v| v.as_bytes()));
    incoming
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .filter(|(name, _)| {
            !is_hop_by_hop(name) && !named.iter().any(|t| t == name) && *name != "content-length"
        })
        .collect()
}

fn append(headers: &mut HeaderMap, name: &str, value: &[u8]) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_bytes(value),
    ) {
        headers.append(name, value);
    }
}

fn set(headers: &mut HeaderMap, name: &str, value: &[u8]) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_bytes(value),
    ) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName as Name, HeaderValue as Value};

    use super::*;

    fn client(headers: &[(&str, &str)]) -> ClientHeaders {
        let mut map = ClientHeaders::new();
        for (name, value) in headers {
            map.append(
                Name::from_bytes(name.as_bytes()).unwrap(),
                Value::from_str(value).unwrap(),
            );
        }
        map
    }

    fn forwarding(peer: &str, trusted: bool) -> Forwarding<'static> {
        Forwarding {
            peer: Some(peer.parse().unwrap()),
            peer_trusted: trusted,
            host: Some("gateway.test:8080"),
            upstream_host: "up:7000",
            principal: vec![("x-auth-subject", Value::from_static("u1"))],
            request_id: Some("rid".into()),
            websocket: None,
            body: SentBody::Nothing,
        }
    }

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_stay_here() {
        let incoming = client(&[
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("proxy-authorization", "Basic eA=="),
            ("upgrade", "h2c"),
            ("expect", "100-continue"),
            ("accept", "a/b"),
            ("accept", "c/d"),
        ]);
        let headers = to_upstream(&incoming, &forwarding("203.0.113.5", false));
        for name in [
            "connection",
            "x-hop",
            "keep-alive",
            "te",
            "trailer",
            "proxy-authorization",
            "upgrade",
            "expect",
        ] {
            assert!(headers.get(name).is_none(), "{name}");
        }
        assert_eq!(values(&headers, "accept"), ["a/b", "c/d"]);
        assert_eq!(values(&headers, "host"), ["up:7000"]);
        assert_eq!(values(&headers, "x-request-id"), ["rid"]);
    }

    #[test]
    fn forged_identity_and_forwarding_claims_of_an_untrusted_peer_are_dropped() {
        let incoming = client(&[
            ("X-Auth-Subject", "admin"),
            ("x-auth-roles", "admin"),
            ("X-AUTH-TENANT", "other"),
            ("x-auth-anything", "x"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
        ]);
        let headers = to_upstream(&incoming, &forwarding("203.0.113.5", false));
        let auth: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("x-auth-"))
            .collect();
        assert_eq!(auth, ["x-auth-subject"]);
        assert_eq!(values(&headers, "x-auth-subject"), ["u1"]);
        assert_eq!(values(&headers, "x-forwarded-for"), ["203.0.113.5"]);
        assert_eq!(values(&headers, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&headers, "x-forwarded-host"), ["gateway.test:8080"]);
    }

    #[test]
    fn underscored_names_method_overrides_and_an_untrusted_real_ip_are_dropped() {
        let incoming = client(&[
            ("x_auth_roles", "admin"),
            ("x-auth_subject", "root"),
            ("x_custom", "1"),
            ("x-http-method-override", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-real-ip", "6.6.6.6"),
            ("x-custom", "kept"),
        ]);
        for trusted in [false, true] {
            let headers = to_upstream(&incoming, &forwarding("127.0.0.1", trusted));
            assert!(headers.keys().all(|name| !name.as_str().contains('_')));
            for name in METHOD_OVERRIDES {
                assert!(headers.get(*name).is_none(), "{name}");
            }
            let real_ip: &[&str] = if trusted { &["6.6.6.6"] } else { &[] };
            assert_eq!(values(&headers, "x-real-ip"), real_ip);
            assert_eq!(values(&headers, "x-custom"), ["kept"]);
        }
    }

    #[test]
    fn the_framing_headers_state_the_body_sent() {
        let incoming = client(&[("content-length", "00")]);
        for (body, length) in [
            (SentBody::Nothing, None),
            (SentBody::Empty, Some("0")),
            (SentBody::Sized, Some("00")),
            (SentBody::Chunked, None),
        ] {
            let mut forwarding = forwarding("203.0.113.5", false);
            forwarding.body = body;
            let headers = to_upstream(&incoming, &forwarding);
            let sent = headers.get("content-length").map(|v| v.to_str().unwrap());
            assert_eq!(sent, length, "{body:?}");
        }
    }

    #[test]
    fn a_trusted_peer_s_chain_is_extended_and_its_claims_kept() {
        let incoming = client(&[
            ("x-forwarded-for", "198.51.100.1, 10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
        ]);
        let headers = to_upstream(&incoming, &forwarding("127.0.0.1", true));
        assert_eq!(
            values(&headers, "x-forwarded-for"),
            ["198.51.100.1, 10.0.0.1, 10.0.0.2, 127.0.0.1"]
        );
        assert_eq!(values(&headers, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&headers, "x-forwarded-host"), ["app.example"]);
    }

    #[test]
    fn only_a_websocket_upgrade_is_passed_on() {
        let asked = client(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert_eq!(websocket_upgrade(&asked), Some(&b"WebSocket"[..]));
        let h2c = client(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert_eq!(websocket_upgrade(&h2c), None);
        let unnamed = client(&[("upgrade", "websocket")]);
        assert_eq!(websocket_upgrade(&unnamed), None);
        let mut forwarding = forwarding("203.0.113.5", false);
        forwarding.websocket = websocket_upgrade(&asked);
        let headers = to_upstream(&asked, &forwarding);
        assert_eq!(values(&headers, "connection"), ["upgrade"]);
        assert_eq!(values(&headers, "upgrade"), ["WebSocket"]);
    }

    #[test]
    fn answers_lose_their_hop_by_hop_headers_and_length() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-up-hop"),
            ("x-up-hop", "1"),
            ("keep-alive", "timeout=9"),
            ("proxy-authenticate", "Basic"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ] {
            incoming.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let kept = from_upstream(&incoming);
        assert_eq!(
            kept,
            [("set-cookie", &b"a=1"[..]), ("set-cookie", &b"b=2"[..])]
        );
    }
}
