//! The tenant's OAuth 2.0 endpoints: token introspection (RFC 7662) and
//! token revocation (RFC 7009), both `POST` with a form body.
//!
//! Choices where the RFCs leave room:
//! - Client authentication is `client_secret_basic` (RFC 6749 §2.3.1: id
//!   and secret form-urlencoded inside Basic; as many clients do not encode
//!   them, they are also tried as sent) or `client_secret_post`. Using both is
//!   `invalid_request` (RFC 6749 §5.2). Introspection also accepts, instead
//!   of a client, a valid access token (`Authorization: Bearer`) or API key
//!   of the tenant, sent as the dialect's clients send them; every
//!   credential presented must be valid.
//! - Revocation needs no client (possession of the token is enough, as for
//!   public clients); a client's credentials, when sent, must be right. A
//!   `client_id` without a secret is a public client: nothing to check.
//! - Parameters sent twice are `invalid_request`, empty ones are absent
//!   (RFC 6749 §3.1); unknown ones are ignored.
//! - `token_type_hint` never changes an answer: every kind of token is
//!   looked for (RFC 7662 §2.1, RFC 7009 §2.1). Revoking an API key makes
//!   its holder's key rotate: the next one is shown where the dialect shows
//!   keys (a login, or generating one).
//! - Errors are RFC 6749 §5.2 bodies with real statuses: 400
//!   `invalid_request`, 401 `invalid_client` (with `WWW-Authenticate`
//!   challenges for Basic and Bearer), 503 `temporarily_unavailable` when
//!   the store cannot answer (never a guessed answer), 500 `server_error`.
//!   Every answer is `Cache-Control: no-store`.

mod caller;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::dialect::BodyError;
use crate::engine::{EngineError, IntrospectedKind, Introspection, TokenInfo, TokenTypeHint};
use crate::http::request::read_body;
use crate::http::state::{AppState, TenantContext};
use caller::{authenticate_caller, client_credentials};

/// Introspects a token (RFC 7662).
///
/// The caller authenticates as a client of the tenant (`client_secret_basic`
/// or `client_secret_post`) or with a valid access token or API key of the
/// tenant. An active token is described; any other (expired, revoked,
/// forged, malformed, another tenant's) is exactly `{"active":false}`.
#[utoipa::path(
    post,
    path = "/oauth2/introspect",
    request_body(content = inline(IntrospectForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "What the token is; `{\"active\":false}` for any token that is not active.",
            body = inline(IntrospectionAnswer), headers(("Cache-Control" = String))),
        (status = 400, description = "`invalid_request`: no `token`, a parameter sent twice, two client authentications, or a body that is not a form.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
        (status = 401, description = "`invalid_client`: no caller credential, or a wrong one.",
            body = inline(OAuthErrorBody), headers(("WWW-Authenticate" = String), ("Cache-Control" = String))),
        (status = 413, description = "`invalid_request`: the body is too large.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
        (status = 503, description = "`temporarily_unavailable`: the store cannot answer; ask again.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
    )
)]
#[tracing::instrument(skip_all, fields(tenant = %context.tenant.id))]
pub async fn post_introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, payload, &state).await?;
    authenticate_caller(&state, &context, req.headers(), &form).await?;
    let token = form.token.as_deref().ok_or(OAuthError::InvalidRequest)?;
    let hint = form
        .token_type_hint
        .as_deref()
        .and_then(TokenTypeHint::parse);
    let answer = match state
        .engine
        .introspect(&context.tenant, token, hint)
        .await?
    {
        Introspection::Active(info) => IntrospectionAnswer::active(*info),
        Introspection::Inactive => IntrospectionAnswer::inactive(),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

/// Revokes a token (RFC 7009).
///
/// Possession of the token is enough; a client's credentials are accepted
/// too, and must then be right. A refresh token takes its whole session
/// with it; an API key is rotated (the next one is shown where the dialect
/// shows keys). Every token, valid or not, is answered 200 with an empty body;
/// 503 when the revocation cannot be recorded.
#[utoipa::path(
    post,
    path = "/oauth2/revoke",
    request_body(content = inline(RevokeForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token is no longer valid (or never was).",
            headers(("Cache-Control" = String))),
        (status = 400, description = "`invalid_request`: no `token`, a parameter sent twice, two client authentications, or a body that is not a form.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
        (status = 401, description = "`invalid_client`: client credentials were sent and are wrong.",
            body = inline(OAuthErrorBody), headers(("WWW-Authenticate" = String), ("Cache-Control" = String))),
        (status = 413, description = "`invalid_request`: the body is too large.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
        (status = 503, description = "`temporarily_unavailable`: the revocation could not be recorded; the token may still be valid. Ask again.",
            body = inline(OAuthErrorBody), headers(("Cache-Control" = String))),
    )
)]
#[tracing::instrument(skip_all, fields(tenant = %context.tenant.id))]
pub async fn post_revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
) -> Result<HttpResponse, OAuthError> {
    let form = read_form(&req, payload, &state).await?;
    if let Some(client) = client_credentials(req.headers(), &form)? {
        client.authenticate(&state, &context)?;
    }
    let token = form.token.as_deref().ok_or(OAuthError::InvalidRequest)?;
    match state.engine.revoke_any(&context.tenant, token).await {
        // Nothing to revoke is answered as done (RFC 7009 §2.2).
        Ok(()) | Err(EngineError::InvalidToken(_) | EngineError::MissingToken) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

// The two request bodies, for the documents only: `read_form` reads them,
// as it must also refuse a parameter sent twice.

/// The introspection request body.
#[derive(ToSchema)]
#[allow(dead_code)]
struct IntrospectForm {
    /// The token to introspect: an access token, a refresh token or an API key.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token`, `refresh_token` or `api_key`; a hint only.
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
    /// `client_secret_post`: the client's id.
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`: the client's secret.
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// The revocation request body.
#[derive(ToSchema)]
#[allow(dead_code)]
struct RevokeForm {
    /// The access token, refresh token or API key to revoke.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only, any other is ignored.
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
    /// The client's id (a public client may send it alone).
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`: the client's secret.
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// An RFC 6749 §5.2 error body.
#[derive(Serialize, ToSchema)]
struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `temporarily_unavailable` or `server_error`.
    error: &'static str,
}

/// What kind of token an active one is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum TokenTypeName {
    AccessToken,
    RefreshToken,
    ApiKey,
}

/// An RFC 7662 introspection answer. Only `active` is sent for a token that
/// is not active. API keys have no `exp`, `nbf`, `jti` or `aud`; `iat` is
/// when the key was made. `username` is the holder's email, `roles` and
/// `company_id` are as the tenant's accounts say now.
#[derive(Serialize, ToSchema)]
struct IntrospectionAnswer {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline, nullable = false)]
    token_type: Option<TokenTypeName>,
    /// The tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tid: Option<String>,
    /// The holder's email, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    company_id: Option<String>,
}

impl IntrospectionAnswer {
    fn inactive() -> Self {
        Self {
            active: false,
            sub: None,
            exp: None,
            iat: None,
            nbf: None,
            jti: None,
            iss: None,
            aud: None,
            token_type: None,
            tid: None,
            username: None,
            roles: None,
            company_id: None,
        }
    }

    fn active(info: TokenInfo) -> Self {
        let token_type = match info.kind {
            IntrospectedKind::AccessToken => TokenTypeName::AccessToken,
            IntrospectedKind::RefreshToken => TokenTypeName::RefreshToken,
            IntrospectedKind::ApiKey => TokenTypeName::ApiKey,
        };
        Self {
            active: true,
            sub: Some(info.subject),
            exp: info.expires_at,
            iat: info.issued_at,
            nbf: info.not_before,
            jti: info.token_id,
            iss: Some(info.issuer),
            aud: info.audience,
            token_type: Some(token_type),
            tid: Some(info.tenant),
            username: info.email,
            roles: Some(info.roles),
            company_id: info.company,
        }
    }
}

/// The parameters of a request body, each at most once. Not `Debug`: it
/// holds a token and maybe a secret.
#[derive(Default)]
struct Form {
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
}

/// Reads the body as `application/x-www-form-urlencoded`.
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Form, OAuthError> {
    let body = read_body(req, payload, state.max_body_bytes, state.body_timeout)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => OAuthError::TooLarge,
            BodyError::TimedOut => OAuthError::TimedOut,
            BodyError::Broken => OAuthError::InvalidRequest,
        })?;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::InvalidRequest);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| OAuthError::InvalidRequest)?;
    let mut form = Form::default();
    for (name, value) in pairs {
        if value.is_empty() {
            continue;
        }
        let seen = match name.as_str() {
            "token" => form.token.replace(value).is_some(),
            "token_type_hint" => form.token_type_hint.replace(value).is_some(),
            "client_id" => form.client_id.replace(value).is_some(),
            "client_secret" => form
                .client_secret
                .replace(SecretString::from(value))
                .is_some(),
            _ => false,
        };
        if seen {
            return Err(OAuthError::InvalidRequest);
        }
    }
    Ok(form)
}

/// Why an OAuth endpoint refused a request.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid request")]
    InvalidRequest,
    #[error("request body too large")]
    TooLarge,
    #[error("request body timed out")]
    TimedOut,
    /// `bearer_refused`: a bearer token was presented and is not valid.
    #[error("invalid client")]
    InvalidClient { bearer_refused: bool },
    #[error("store unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl OAuthError {
    fn invalid_client(bearer_refused: bool) -> Self {
        Self::InvalidClient { bearer_refused }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::TooLarge | Self::TimedOut => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::Unavailable => "temporarily_unavailable",
            Self::Internal => "server_error",
        }
    }
}

impl From<EngineError> for OAuthError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Self::Unavailable
            }
            EngineError::Internal(cause) => {
                tracing::error!(error = ?cause, "engine failure");
                Self::Internal
            }
            // Everything else the endpoints meet is handled where it arises.
            _ => Self::Internal,
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
            Self::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Self::InvalidClient { bearer_refused } = self {
            let realm = "realm=\"polyauth\"";
            response.append_header((header::WWW_AUTHENTICATE, format!("Basic {realm}")));
            let bearer = match bearer_refused {
                true => format!("Bearer {realm}, error=\"invalid_token\""),
                false => format!("Bearer {realm}"),
            };
            response.append_header((header::WWW_AUTHENTICATE, bearer));
        }
        response.json(OAuthErrorBody { error: self.code() })
    }
}
