//! Forward-auth for nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth` and Envoy `ext_authz`: which original request a proxy
//! asks about, a reusable decision (the tenant's access rules and the
//! credentials → principal or error) and the `X-Auth-*` headers that carry
//! its answer, so that the upstream proxy can reuse both. Always real HTTP
//! statuses.

use std::borrow::Cow;

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use crate::access::Decision;
use crate::dialect::Failure;
use crate::engine::{Engine, EngineError, Principal, TokenProblem};
use crate::http::request::to_http;
use crate::http::state::{AppState, TenantContext};

/// The request a forward-auth question is about.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub method: &'a str,
    /// The path under the tenant's mount, as sent (percent-encoded), without
    /// the query; the access rules read it ([`crate::access::RequestPath`]).
    pub path: &'a str,
}

/// Whether the request `original` may pass, given the credentials in
/// `headers` and the tenant's access rules: `Ok(Some(principal))` when they
/// stand for someone allowed, `Ok(None)` when the request needs no
/// credential and no valid one was sent, else why not
/// (`MissingToken`/`InvalidToken` → 401, `Forbidden` → 403 for a `deny`
/// rule, a missing role, an ambiguous path or a company mismatch,
/// `Unavailable` → 503).
pub async fn decide(
    engine: &Engine,
    context: &TenantContext,
    headers: &HeaderMap,
    original: Original<'_>,
) -> Result<Option<Principal>, EngineError> {
    let decision = context.access.decide(original.method, original.path);
    tracing::debug!(
        method = original.method,
        path = original.path,
        ?decision,
        "forward-auth"
    );
    match decision {
        Decision::Deny => Err(EngineError::Forbidden),
        // Whatever is wrong with a credential, a public page is still served, anonymously.
        Decision::Public => Ok(authenticate(engine, context, headers).await.ok()),
        Decision::Authenticated { roles } => {
            let principal = authenticate(engine, context, headers).await?;
            if !roles.is_empty() && !principal.roles.iter().any(|role| roles.contains(role)) {
                return Err(EngineError::Forbidden);
            }
            Ok(Some(principal))
        }
    }
}

/// Who the credentials in `headers` stand for: every one given must be
/// valid and stand for the same holder, since an upstream may read any.
async fn authenticate(
    engine: &Engine,
    context: &TenantContext,
    headers: &HeaderMap,
) -> Result<Principal, EngineError> {
    let dialect = &context.dialect;
    let presented = dialect.presented(headers)?;
    if presented.is_empty() {
        return Err(EngineError::MissingToken);
    }
    let company = dialect.claimed_company(headers)?;
    let mut principal: Option<Principal> = None;
    for (token, kind) in presented {
        let this = engine.verify(&context.tenant, token, kind, company).await?;
        match &principal {
            Some(first) if *first != this => {
                return Err(EngineError::InvalidToken(TokenProblem::Invalid));
            }
            Some(_) => {}
            None => principal = Some(this),
        }
    }
    principal.ok_or(EngineError::MissingToken)
}

/// Where a proxy names the original request, in the order they are read.
const CONVENTIONS: [(&str, &str); 2] = [
    // Traefik `forwardAuth`, Caddy `forward_auth`.
    ("x-forwarded-method", "x-forwarded-uri"),
    // nginx `auth_request`, as the shipped configuration sets them.
    ("x-original-method", "x-original-uri"),
];

/// The original request of a verify request, from the first convention it
/// follows: the path after `/_polyauth/verify` (Envoy `ext_authz`, which
/// sends the original method too), then a `(method, URI)` header pair of
/// [`CONVENTIONS`] (a missing method header: the verify request's own),
/// else the verify request itself. The query is dropped. A header sent
/// twice or unreadable names no path: the rules refuse it.
fn original_of<'a>(req: &'a HttpRequest, context: &TenantContext) -> (&'a str, Cow<'a, str>) {
    let own_method = req.method().as_str();
    if req.match_info().get(ORIGINAL).is_some() {
        // The suffix as sent, not actix's decoded copy (where `%3F` has
        // become a `?`): the rules decode it once themselves. It follows
        // the tenant's mount and the verify path spelled exactly; any other
        // spelling (`/%5Fpolyauth/verify/…`) names no path: refused.
        let raw = req.uri().path();
        let mounts = context
            .path_prefix
            .as_deref()
            .into_iter()
            .chain((!context.hosts.is_empty()).then_some(""));
        let suffix = mounts
            .map(|mount| format!("{mount}{}/", crate::reserved::VERIFY))
            .find_map(|marker| raw.strip_prefix(marker.as_str()));
        return (
            own_method,
            suffix.map_or(Cow::Borrowed(""), |suffix| format!("/{suffix}").into()),
        );
    }
    let headers = req.headers();
    for (method, uri) in CONVENTIONS {
        if headers.contains_key(uri) {
            let method = match headers.contains_key(method) {
                true => sole_value(headers, method).unwrap_or_default(),
                false => own_method,
            };
            let path = sole_value(headers, uri).map_or("", without_query);
            return (method, path.into());
        }
    }
    (own_method, crate::reserved::VERIFY.into())
}

fn without_query(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(path, _)| path)
}

/// The one readable value of header `name`.
fn sole_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name);
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// The match name of the original path after `/_polyauth/verify/`.
pub const ORIGINAL: &str = "original";

/// The principal as `X-Auth-*` headers; a value that cannot be a header
/// value is left out. Roles are header-safe (checked at startup); an email
/// that is not plain ASCII is percent-encoded.
pub fn principal_headers(principal: &Principal) -> Vec<(&'static str, HeaderValue)> {
    let roles = principal.roles.join(",");
    let email = principal.email.as_deref().map(header_safe_email);
    let headers = [
        ("x-auth-tenant", Some(principal.tenant.as_str())),
        ("x-auth-subject", Some(principal.subject.as_str())),
        ("x-auth-email", email.as_deref()),
        ("x-auth-roles", Some(roles.as_str())),
        ("x-auth-company", principal.company.as_deref()),
    ];
    headers
        .into_iter()
        .filter_map(|(name, value)| Some((name, HeaderValue::from_str(value?).ok()?)))
        .collect()
}

/// Sets the principal's `X-Auth-*` headers on `response`.
pub fn write_principal(response: &mut HttpResponseBuilder, principal: &Principal) {
    for header in principal_headers(principal) {
        response.insert_header(header);
    }
}

/// `email` as it goes in `X-Auth-Email`: unchanged when it is printable
/// ASCII without `%`, else percent-encoded as UTF-8 (RFC 3986), every byte but letters,
/// digits, `-._~`, `@` and `+` (so `%` itself is encoded too):
/// `jürgen@example.com` → `j%C3%BCrgen@example.com`.
pub fn header_safe_email(email: &str) -> std::borrow::Cow<'_, str> {
    // An ASCII email with a `%` is encoded too, so that no sent value can
    // stand for two emails (`j%C3%BCrgen@…` and `jürgen@…`).
    if email
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'%')
    {
        return email.into();
    }
    let mut encoded = String::with_capacity(email.len() * 3);
    for byte in email.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@+".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded.into()
}

/// Forward-auth: may this request pass?
///
/// For nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`
/// and Envoy `ext_authz`. The request asked about is read from the path
/// after `/_polyauth/verify/` with this request's method (Envoy appends the
/// original path and keeps the method: that form serves every method), else
/// from `X-Forwarded-Method` and `X-Forwarded-Uri` (Traefik, Caddy), else
/// from `X-Original-Method` and `X-Original-URI` (nginx), else it is this
/// request; the query never counts. The tenant's access rules decide.
/// Answers 200 with `X-Auth-*` headers naming the principal for a valid
/// credential (a public path needs none), else the dialect's error body
/// with a real 401, 403 (a denied path, a missing role, a path that can be
/// read two ways, a company mismatch) or 503, even where the dialect's own
/// routes answer 200 for errors. Never cached (`Cache-Control: no-store`).
#[utoipa::path(
    method(get, post),
    path = "/_polyauth/verify",
    tag = "gateway",
    responses(
        (status = 200, description = "The request may pass.", headers(
            ("X-Auth-Tenant" = String, description = "The tenant id."),
            ("X-Auth-Subject" = String, description = "The subject: a user or company id."),
            ("X-Auth-Email" = String, description = "The user's email, when the subject has one; percent-encoded (RFC 3986) when it is not ASCII."),
            ("X-Auth-Roles" = String, description = "The roles, comma-separated."),
            ("X-Auth-Company" = String, description = "The company id, when the subject has one."),
        )),
    )
)]
pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    let (method, path) = original_of(&req, &context);
    let original = Original {
        method,
        path: &path,
    };
    match decide(&state.engine, &context, req.headers(), original).await {
        Ok(principal) => {
            let mut response = HttpResponse::Ok();
            if let Some(principal) = &principal {
                write_principal(&mut response, principal);
            }
            response.insert_header(("cache-control", "no-store"));
            response.finish()
        }
        Err(error) => to_http(context.dialect.verify_error(&Failure::from(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::header_safe_email;

    #[test]
    fn only_an_email_beyond_ascii_is_percent_encoded() {
        assert_eq!(
            header_safe_email("user+tag@example.com"),
            "user+tag@example.com"
        );
        // A `%` is always encoded: no value stands for two emails.
        assert_eq!(header_safe_email("a%b@example.com"), "a%25b@example.com");
        assert_eq!(header_safe_email("j%C3%BCrgen@x"), "j%25C3%25BCrgen@x");
        assert_eq!(
            header_safe_email("jürgen@exämple.com"),
            "j%C3%BCrgen@ex%C3%A4mple.com"
        );
        assert_eq!(header_safe_email("ü%@x.test"), "%C3%BC%25@x.test");
    }
}
