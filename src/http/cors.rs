//! CORS over a tenant's whole mount (SPEC §11): every dialect route and
//! gateway path, present and to come, answers preflights and carries the
//! headers a browser needs. Which origins is [`crate::cors`]'s business; a
//! tenant with none gets no CORS header at all.
//!
//! - A preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) from an allowed origin is answered here,
//!   204, with `Access-Control-Allow-Origin`, `-Allow-Methods` (every method
//!   the tenant serves), `-Allow-Headers` (those asked for that the tenant
//!   reads) and `-Max-Age`.
//! - An actual answer to an allowed origin carries `-Allow-Origin` and
//!   `-Expose-Headers: Retry-After, X-Request-Id`.
//! - A listed origin is echoed; `["*"]` is answered `*`, as PayHub does.
//!   Credentials are never allowed (`-Allow-Credentials` is never sent):
//!   polyauth neither sets nor reads cookies, and `*` forbids them anyway.
//! - With a policy, the mount's answers carry no CORS header but these: an
//!   upstream's own (proxied paths) are removed.
//! - Any other origin, or a request without one, gets no CORS header: a
//!   preflight goes on to routing (the dialect's `method_not_allowed`).
//!   Every answer of a tenant with CORS says `Vary: Origin`, since each
//!   depends on it.
//!
//! Written here, not with `actix-cors` (0.7): it answers a preflight 200
//! (not 204), sends its whole configured header list rather than the asked
//! ones it allows, refuses with a 400 error body any preflight asking for a
//! header outside that list, and answers an unlisted origin's preflight
//! with a 400 error body too.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};

use super::routing::GatewayRoute;
use crate::cors::AllowedOrigins;
use crate::dialect::Dialect;

/// Request headers a browser may always send: the body's type, a bearer
/// token, a request id, and the company id services send (SPEC §11).
const ALWAYS_ALLOWED: &[&str] = &[
    "content-type",
    "authorization",
    "x-request-id",
    "x-company-id",
];

/// Seconds a browser may keep a preflight's answer: Chromium's own cap. A
/// removed origin loses access at once all the same: actual answers stop
/// carrying its `Access-Control-Allow-Origin`.
const MAX_AGE: HeaderValue = HeaderValue::from_static("7200");

/// Answer headers a page's script may read: when to retry after a lockout,
/// and the id to quote when reporting a problem.
const EXPOSED: HeaderValue = HeaderValue::from_static("Retry-After, X-Request-Id");

/// What a preflight's answer depends on.
const PREFLIGHT_VARY: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

/// Methods in the order `Access-Control-Allow-Methods` lists them.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A tenant's CORS answers.
#[derive(Debug)]
pub struct CorsPolicy {
    origins: AllowedOrigins,
    /// Request headers a browser may send (lower case).
    allowed_headers: Vec<String>,
    /// Every method the tenant serves, gateway endpoints included.
    methods: HeaderValue,
}

impl CorsPolicy {
    /// The answers of a tenant speaking `dialect` to `origins`.
    pub fn new(origins: AllowedOrigins, dialect: &Dialect) -> Self {
        let mut allowed_headers: Vec<String> = ALWAYS_ALLOWED
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        for name in dialect.credential_headers() {
            if !allowed_headers.iter().any(|known| known == name) {
                allowed_headers.push(name.to_owned());
            }
        }
        // The gateway's endpoints take GET and POST (verify, documents,
        // OAuth 2.0); the dialect's routes add theirs.
        let served: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|method| {
                ["GET", "POST"].contains(method)
                    || dialect.routes.iter().any(|r| r.method == *method)
            })
            .collect();
        let methods = HeaderValue::from_str(&served.join(", "))
            .unwrap_or(HeaderValue::from_static("GET, POST"));
        Self {
            origins,
            allowed_headers,
            methods,
        }
    }

    /// `Access-Control-Allow-Origin` for a request from an allowed origin:
    /// `*` or the origin itself. `None` for any other origin, for none, and
    /// for two `Origin` headers (which no browser sends).
    fn allow_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut values = headers.get_all(header::ORIGIN);
        let origin = values.next()?;
        if values.next().is_some() || !self.origins.allows(origin.to_str().ok()?) {
            return None;
        }
        Some(match self.origins {
            AllowedOrigins::Any => HeaderValue::from_static("*"),
            AllowedOrigins::Listed(_) => origin.clone(),
        })
    }

    /// The headers a preflight asks for that the tenant allows, in the
    /// order asked, lower case; `None` when there are none.
    fn allow_headers(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut allowed: Vec<String> = Vec::new();
        let asked = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','));
        for name in asked {
            let name = name.trim().to_ascii_lowercase();
            if self.allowed_headers.contains(&name) && !allowed.contains(&name) {
                allowed.push(name);
            }
        }
        if allowed.is_empty() {
            return None;
        }
        HeaderValue::from_str(&allowed.join(", ")).ok()
    }

    /// The 204 answer to a preflight from an allowed origin.
    fn preflight(&self, allow_origin: HeaderValue, headers: &HeaderMap) -> HttpResponse {
        let mut answer = HttpResponse::NoContent();
        answer
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone()))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .insert_header((header::VARY, PREFLIGHT_VARY));
        if let Some(allowed) = self.allow_headers(headers) {
            answer.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allowed));
        }
        answer.finish()
    }
}

/// Whether `req` is a CORS preflight rather than a plain `OPTIONS`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The middleware of a tenant's mount: answers preflights, adds the CORS
/// headers to actual answers. Without a policy it does nothing.
pub async fn apply<B: MessageBody>(
    policy: Option<Arc<CorsPolicy>>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(policy) = policy else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let allow_origin = policy.allow_origin(req.headers());
    if let Some(allow_origin) = &allow_origin {
        if is_preflight(&req) {
            req.extensions_mut().insert(GatewayRoute("cors_preflight"));
            let answer = policy.preflight(allow_origin.clone(), req.headers());
            return Ok(req.into_response(answer).map_into_right_body());
        }
    }
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    // The tenant's policy is the mount's: an upstream's own CORS answer
    // (proxied paths) would contradict it, so it never reaches the browser.
    let upstreams: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in upstreams {
        headers.remove(name);
    }
    if let Some(allow_origin) = allow_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;
    use actix_web::test::TestRequest;

    use super::*;

    fn policy(dialect: &str, origins: AllowedOrigins) -> CorsPolicy {
        let dialects = crate::dialect::Dialects::load(None).unwrap();
        CorsPolicy::new(origins, dialects.get(dialect).unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut req = TestRequest::default();
        for (name, value) in pairs {
            req = req.append_header((HeaderName::from_bytes(name.as_bytes()).unwrap(), *value));
        }
        req.to_http_request().headers().clone()
    }

    #[test]
    fn methods_are_every_method_the_tenant_serves() {
        let listed = AllowedOrigins::Listed(vec!["https://a.example".into()]);
        assert_eq!(policy("payhub", listed.clone()).methods, "GET, POST");
        assert_eq!(policy("pixyle", listed).methods, "GET, POST, DELETE");
    }

    #[test]
    fn the_dialects_credential_headers_are_allowed() {
        let any = |dialect| policy(dialect, AllowedOrigins::Any).allowed_headers;
        assert!(any("payhub").ends_with(&["token".into(), "apikey".into()]));
        assert!(any("visualyze").contains(&"x-api-key".to_string()));
        assert_eq!(any("pixyle"), ALWAYS_ALLOWED);
    }

    #[test]
    fn two_origin_headers_are_no_allowed_origin() {
        let policy = policy("payhub", AllowedOrigins::Any);
        let one = headers(&[("origin", "https://a.example")]);
        assert_eq!(
            policy.allow_origin(&one),
            Some(HeaderValue::from_static("*"))
        );
        let two = headers(&[
            ("origin", "https://a.example"),
            ("origin", "https://b.example"),
        ]);
        assert_eq!(policy.allow_origin(&two), None);
    }

    #[test]
    fn asked_headers_split_over_several_lines_are_all_read() {
        let policy = policy("payhub", AllowedOrigins::Any);
        let asked = headers(&[
            ("access-control-request-headers", "Content-Type, x-other"),
            ("access-control-request-headers", " token ,content-type"),
        ]);
        assert_eq!(
            policy.allow_headers(&asked),
            Some(HeaderValue::from_static("content-type, token"))
        );
    }
}
