//! Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Envoy
//! `ext_authz`: a reusable decision (credential → principal or error, given
//! the original request) and the `X-Auth-*` headers that carry its answer,
//! so that the upstream proxy and access rules can reuse both. Always real
//! HTTP statuses.

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use crate::dialect::Failure;
use crate::engine::{Engine, EngineError, Principal, TokenProblem};
use crate::http::request::to_http;
use crate::http::state::{AppState, TenantContext};

/// The request a forward-auth question is about.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub method: &'a str,
    /// The path under the tenant's mount, without the query.
    pub path: &'a str,
}

/// Whether the request `original` may pass, given the credentials in
/// `headers`: `Ok(Some(principal))` when they stand for someone allowed,
/// `Ok(None)` when the request needs no credential and none was sent, else
/// why not (`MissingToken`/`InvalidToken` → 401, `Forbidden` → 403,
/// `Unavailable` → 503). Every credential is valid for every request today;
/// the tenant's access rules will decide by `original`.
pub async fn decide(
    engine: &Engine,
    context: &TenantContext,
    headers: &HeaderMap,
    original: Original<'_>,
) -> Result<Option<Principal>, EngineError> {
    tracing::debug!(
        method = original.method,
        path = original.path,
        "forward-auth"
    );
    let dialect = &context.dialect;
    let presented = dialect.presented(headers)?;
    if presented.is_empty() {
        return Err(EngineError::MissingToken);
    }
    let company = dialect.claimed_company(headers)?;
    // Every credential given must be valid and stand for the same holder:
    // an upstream may read any of them.
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
    principal.ok_or(EngineError::MissingToken).map(Some)
}

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

/// Forward-auth: is this credential allowed?
///
/// For nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`.
/// Answers 200 with `X-Auth-*` headers naming the principal for a valid
/// credential, else the dialect's error body with a real 401, 403 or 503,
/// even where the dialect's own routes answer 200 for errors.
#[utoipa::path(
    method(get, post),
    path = "/_polyauth/verify",
    tag = "gateway",
    responses(
        (status = 200, description = "The credential is valid.", headers(
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
    let original = Original {
        // Asked without a convention naming another request: this one.
        method: req.method().as_str(),
        path: crate::reserved::VERIFY,
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
