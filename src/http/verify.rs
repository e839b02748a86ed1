//! `/_polyauth/verify`: forward-auth for nginx `auth_request`, Traefik
//! `forwardAuth` and Envoy `ext_authz`. Always real HTTP statuses.

use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, HttpResponse, web};

use super::Gateway;
use super::request::{header_credential, to_http};
use super::tenant::{TenantContext, failed};
use crate::engine::EngineError;

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
            ("X-Auth-Email" = String, description = "The user's email, when the subject has one."),
            ("X-Auth-Roles" = String, description = "The roles, comma-separated."),
            ("X-Auth-Company" = String, description = "The company id, when the subject has one."),
        )),
    )
)]
pub async fn verify(
    req: HttpRequest,
    gateway: web::Data<Gateway>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    context.tag(&req, "verify");
    let dialect = &context.dialect;
    let presented = dialect.verify.iter().find_map(|credential| {
        header_credential(&req, &credential.source).map(|t| (t, credential.kind))
    });
    // The company the caller acts for, where the dialect has clients say it.
    let result = match (
        presented,
        claimed_company(&req, dialect.company_header.as_deref()),
    ) {
        (None, _) => Err(EngineError::MissingToken),
        (Some(_), Err(())) => Err(EngineError::Forbidden),
        (Some((token, kind)), Ok(company)) => {
            gateway
                .engine
                .verify(&context.tenant, token, kind, company)
                .await
        }
    };
    match result {
        Ok(principal) => {
            let mut response = HttpResponse::Ok();
            let roles = principal.roles.join(",");
            let headers = [
                ("x-auth-tenant", Some(principal.tenant.as_str())),
                ("x-auth-subject", Some(principal.subject.as_str())),
                ("x-auth-email", principal.email.as_deref()),
                ("x-auth-roles", Some(roles.as_str())),
                ("x-auth-company", principal.company.as_deref()),
            ];
            for (name, value) in headers {
                if let Some(Ok(value)) = value.map(HeaderValue::from_str) {
                    response.insert_header((name, value));
                }
            }
            response.insert_header(("cache-control", "no-store"));
            response.finish()
        }
        Err(error) => {
            let failure = failed(error);
            let mut answer = dialect.render_error(None, &failure);
            answer.status = crate::dialect::usual_status(failure.code);
            to_http(answer)
        }
    }
}

/// The company named by `header`: none when the header is absent. Sent
/// twice, empty or unreadable, it is refused (`Err`): an upstream might read
/// another copy than the one checked here.
fn claimed_company<'a>(req: &'a HttpRequest, header: Option<&str>) -> Result<Option<&'a str>, ()> {
    let Some(header) = header else {
        return Ok(None);
    };
    let mut values = req.headers().get_all(header);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => match value.to_str().map(str::trim) {
            Ok(company) if !company.is_empty() => Ok(Some(company)),
            _ => Err(()),
        },
        (Some(_), Some(_)) => Err(()),
    }
}
