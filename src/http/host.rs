//! The host a request is for, as tenant routing reads it (RFC 9112 §3.2):
//! a request with more than one `Host` header, a `Host` that is not
//! `name[:port]`, or an HTTP/1.1 request without one is answered 400 before
//! any routing. Host names match case-insensitively, port and a trailing
//! dot aside; an absolute request target (`GET http://host/path`) names the
//! host itself, and its `Host` header is ignored.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::guard::{Guard, GuardContext};
use actix_web::http::{Version, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};

use super::routing::GatewayRoute;

/// Why a request's host cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    Repeated,
    Invalid,
    Missing,
}

/// The host `head` is for, without port or trailing dot; `None` for a
/// request that names none (HTTP/1.0 may not).
pub fn request_host(head: &RequestHead) -> Result<Option<&str>, HostProblem> {
    let mut values = head.headers.get_all(header::HOST);
    let value = values.next();
    if values.next().is_some() {
        return Err(HostProblem::Repeated);
    }
    let from_header = match value {
        Some(value) => {
            let text = value.to_str().map_err(|_| HostProblem::Invalid)?;
            Some(host_of(text).ok_or(HostProblem::Invalid)?)
        }
        None if head.version >= Version::HTTP_11 => return Err(HostProblem::Missing),
        None => None,
    };
    match head.uri.host() {
        Some(target) => Ok(Some(host_of(target).ok_or(HostProblem::Invalid)?)),
        None => Ok(from_header.filter(|host| !host.is_empty())),
    }
}

/// The host of `name[:port]` (or `[v6]:port`), trailing dot removed;
/// `None` when it is anything else (user info, a list, spaces, a path).
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            let literal = &rest[..end];
            if !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b".:".contains(&b))
            {
                return None;
            }
            (&authority[..end + 2], &rest[end + 1..])
        }
        None => match authority.find(':') {
            Some(colon) => (&authority[..colon], &authority[colon..]),
            None => (authority, ""),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    (port_ok && name_ok).then(|| host.strip_suffix('.').unwrap_or(host))
}

/// Answers 400 (and closes the connection) when the host cannot be read:
/// two tenants could each take such a request for their own.
pub async fn check_host(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    if let Err(problem) = request_host(req.head()) {
        tracing::debug!(?problem, "request refused: unreadable Host");
        req.extensions_mut().insert(GatewayRoute("bad_host"));
        let answer = HttpResponse::BadRequest()
            .force_close()
            .json(serde_json::json!({ "error": "malformed_request" }));
        return Ok(req.into_response(answer).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Matches requests for any of a tenant's host names.
pub struct HostGuard(Vec<String>);

impl HostGuard {
    pub fn new(hosts: &[String]) -> Self {
        Self(hosts.to_vec())
    }
}

impl Guard for HostGuard {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        request_host(ctx.head())
            .ok()
            .flatten()
            .is_some_and(|host| self.0.iter().any(|name| name.eq_ignore_ascii_case(host)))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    use super::*;

    fn host(headers: &[&[u8]], uri: &str, version: Version) -> Result<Option<String>, HostProblem> {
        let mut req = TestRequest::default().uri(uri).version(version);
        for value in headers {
            req = req.append_header((header::HOST, HeaderValue::from_bytes(value).unwrap()));
        }
        let req = req.to_srv_request();
        request_host(req.head()).map(|h| h.map(str::to_owned))
    }

    fn of(value: &str) -> Result<Option<String>, HostProblem> {
        host(&[value.as_bytes()], "/", Version::HTTP_11)
    }

    #[test]
    fn the_host_is_the_name_without_port_or_trailing_dot() {
        assert_eq!(of("auth.pixyle.test"), Ok(Some("auth.pixyle.test".into())));
        assert_eq!(
            of("AUTH.Pixyle.test:8080"),
            Ok(Some("AUTH.Pixyle.test".into()))
        );
        assert_eq!(
            of("auth.pixyle.test.:80"),
            Ok(Some("auth.pixyle.test".into()))
        );
        assert_eq!(of("127.0.0.1:8080"), Ok(Some("127.0.0.1".into())));
        assert_eq!(of("[::1]:8080"), Ok(Some("[::1]".into())));
        assert_eq!(of(""), Ok(None));
    }

    #[test]
    fn a_host_that_is_not_name_and_port_is_invalid() {
        for bad in [
            "a.test, b.test",
            "user@a.test",
            "a.test:80:80",
            "a.test:port",
            "a.test/path",
            "a test",
            "[::1",
            "[nope]:80",
            "a.test:123456",
        ] {
            assert_eq!(of(bad), Err(HostProblem::Invalid), "{bad:?}");
        }
        assert_eq!(
            host(&[b"caf\xc3\xa9.test"], "/", Version::HTTP_11),
            Err(HostProblem::Invalid)
        );
    }

    #[test]
    fn one_host_header_exactly_on_http_1_1() {
        assert_eq!(
            host(&[b"a.test", b"b.test"], "/", Version::HTTP_11),
            Err(HostProblem::Repeated)
        );
        assert_eq!(
            host(&[b"a.test", b"a.test"], "/", Version::HTTP_10),
            Err(HostProblem::Repeated)
        );
        assert_eq!(host(&[], "/", Version::HTTP_11), Err(HostProblem::Missing));
        assert_eq!(host(&[], "/", Version::HTTP_10), Ok(None));
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        assert_eq!(
            host(
                &[b"other.test"],
                "http://Auth.Pixyle.test:8080/x",
                Version::HTTP_11
            ),
            Ok(Some("Auth.Pixyle.test".into()))
        );
    }
}
