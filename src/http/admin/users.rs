//! The admin API: each tenant's user directory under `/admin/v1`, behind
//! the server's admin bearer token. JSON in and out; every error is
//! `{"error": "<code>", "message": "…"}` with its status. A hash is never
//! shown, only its scheme.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AdminError, Answer, ErrorBody, MAX_JSON_BYTES};
use crate::dialect::BodyError;
use crate::engine::import::{ImportCounts, Importer, Lines, Refused, without_position};
use crate::engine::{EngineError, NewUser, UserChange, hashes};
use crate::http::dispatch::Live;
use crate::http::request::read_body;
use crate::http::routing::RouteTag;
use crate::http::state::{AppState, TenantContext};
use crate::store::DirectoryUser;

/// What a path segment escapes: all but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Users on a page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Refused lines an import answers in full; the others are only counted.
const MAX_REPORTED: usize = 1000;
/// Longest an import waits for the next part of its body.
const IMPORT_IDLE: Duration = Duration::from_secs(30);

/// What the admin API serves from: its token and the tenants mounted now.
pub struct Admin {
    token: SecretString,
    live: Live,
}

impl Admin {
    pub fn new(token: SecretString, live: Live) -> Self {
        Self { token, live }
    }
}

/// A user as the admin API shows it: never its hash, only the scheme.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(example = "6a1f0c4e-2b7d-4f61-9a0e-3c5d8e9f1a2b")]
    id: String,
    #[schema(example = "ada@example.com")]
    email: String,
    roles: Vec<String>,
    active: bool,
    email_verified: bool,
    company_id: Option<String>,
    /// Unix seconds.
    #[schema(example = 1764547200)]
    created_at: u64,
    /// Unix seconds of the last good login, if any.
    last_login_at: Option<u64>,
    /// `argon2id`, `argon2i`, `argon2d`, `bcrypt`, `pbkdf2_sha256`,
    /// `pbkdf2_sha512` or `scrypt`; a login rehashes to the tenant's argon2id.
    #[schema(example = "argon2id")]
    hash_scheme: &'static str,
}

impl From<&DirectoryUser> for User {
    fn from(user: &DirectoryUser) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
            active: user.active,
            email_verified: user.email_verified,
            company_id: user.company_id.clone(),
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            hash_scheme: hashes::check(&user.password_hash).map_or("unknown", |s| s.name()),
        }
    }
}

/// A user to create: exactly one of `password` and `password_hash`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Its subject (the vendor's id, to keep it); a random one without.
    #[serde(default)]
    id: Option<String>,
    #[schema(example = "ada@example.com")]
    email: String,
    /// Hashed with the tenant's argon2id parameters; never stored or shown.
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
    /// A hash from elsewhere: argon2id/i/d, bcrypt, PBKDF2 (PHC or
    /// Django's) or scrypt, within cost bounds.
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    company_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// A change to a user: what is absent stays. Deactivating the user or a
/// new password ends every session it has.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    email_verified: Option<bool>,
    /// `null` removes the user's company.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    company_id: Option<Option<String>>,
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
}

/// A field that is present, `null` or not (absent is `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A page of users, in id order.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<User>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// What an import did, and the lines it refused.
#[derive(Serialize, ToSchema)]
pub struct ImportAnswer {
    imported: u64,
    unchanged: u64,
    refused: u64,
    /// The first 1,000 refused lines (1-based), with why.
    #[schema(value_type = Vec<ImportError>)]
    errors: Vec<Refused>,
}

/// One refused line of an import.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportError {
    #[schema(example = 3)]
    line: u64,
    #[schema(example = "email: is not an email address")]
    error: String,
}

/// The admin API's routes; absent without a token, so that it answers 404.
pub fn routes(config: &mut web::ServiceConfig, admin: Option<Arc<Admin>>) {
    let Some(admin) = admin else {
        return;
    };
    let tag = |tags: &'static [(Method, &'static str)]| RouteTag::new(tags);
    config.service(
        web::resource("/admin/v1/openapi.json")
            .app_data(tag(&[(Method::GET, "admin_openapi")]))
            .route(web::get().to(openapi))
            .default_service(web::to(method_not_allowed)),
    );
    config.service(
        web::scope("/admin/v1")
            .app_data(web::Data::from(admin))
            .wrap(from_fn(authorize))
            .service(
                web::resource("/tenants/{tenant}/users")
                    .app_data(tag(&[
                        (Method::POST, "admin_user_create"),
                        (Method::GET, "admin_users_list"),
                    ]))
                    .route(web::post().to(create))
                    .route(web::get().to(list))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tenants/{tenant}/users/import")
                    .app_data(tag(&[(Method::POST, "admin_users_import")]))
                    .route(web::post().to(import))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tenants/{tenant}/users/{id}")
                    .app_data(tag(&[
                        (Method::GET, "admin_user_get"),
                        (Method::PATCH, "admin_user_change"),
                        (Method::DELETE, "admin_user_delete"),
                    ]))
                    .route(web::get().to(get))
                    .route(web::patch().to(change))
                    .route(web::delete().to(delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tenants/{tenant}/users/{id}/logout")
                    .app_data(tag(&[(Method::POST, "admin_user_logout")]))
                    .route(web::post().to(logout))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tenants/{tenant}/users/{id}/lockout")
                    .app_data(tag(&[(Method::DELETE, "admin_user_unlock")]))
                    .route(web::delete().to(unlock))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(|| async {
                AdminError::not_found("no such admin API route").response()
            })),
    );
}

/// The bearer token, compared in constant time, before anything else.
async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use subtle::ConstantTimeEq;
    let admin = req.app_data::<web::Data<Admin>>().cloned();
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let allowed = match (&admin, presented) {
        (Some(admin), Some(token)) => bool::from(
            token
                .as_bytes()
                .ct_eq(admin.token.expose_secret().as_bytes()),
        ),
        _ => false,
    };
    if !allowed {
        let message = match presented {
            None => "an `Authorization: Bearer <admin token>` header is required",
            Some(_) => "the admin token is not the configured one",
        };
        let refused = AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        return Ok(req.into_response(refused.response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

async fn method_not_allowed() -> HttpResponse {
    AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
    .response()
}

/// The tenant `id` as mounted now (a reload may remove it while a call on
/// it runs: the call finishes on it).
fn tenant(admin: &Admin, id: &str) -> Result<Arc<TenantContext>, AdminError> {
    let mounted = admin.live.borrow();
    mounted
        .tenant(id)
        .cloned()
        .ok_or_else(|| AdminError::not_found(format!("no tenant `{id}`")))
}

/// A JSON body of a single-user route, read within its limits.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, AdminError> {
    let body = read_body(req, payload, MAX_JSON_BYTES, state.body_timeout).await?;
    serde_json::from_slice(&body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => AdminError::invalid(without_position(&error)),
        _ => AdminError::malformed(format!(
            "the body is not JSON ({})",
            without_position(&error)
        )),
    })
}

/// Create a user.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/users",
    tag = "users",
    operation_id = "create_user",
    params(("tenant" = String, Path, description = "The tenant's id.")),
    request_body(content = CreateUser, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = User,
            headers(("Location" = String, description = "The user's URL."))),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
        (status = 409, description = "The email or the id is taken (in the directory or the tenant's file).", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "The user breaks a rule.", body = ErrorBody),
        (status = 503, description = "The store or the hashing threads cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let context = tenant(&admin, &path)?;
    let body: CreateUser = json_body(&req, payload, &state).await?;
    let new = NewUser {
        id: body.id,
        email: body.email,
        password: body.password.map(SecretString::from),
        password_hash: body.password_hash,
        roles: body.roles,
        active: body.active,
        email_verified: body.email_verified,
        company_id: body.company_id,
        import: false,
    };
    let user = state.engine.user_create(&context.tenant, new).await?;
    let location = format!(
        "/admin/v1/tenants/{}/users/{}",
        utf8_percent_encode(&context.tenant.id, SEGMENT),
        utf8_percent_encode(&user.id, SEGMENT)
    );
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(User::from(&user)))
}

/// The query of a list: by email, or a page after a cursor.
#[derive(Default)]
struct ListQuery {
    email: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// List users (paged, in id order) or find one by email.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/users",
    tag = "users",
    operation_id = "list_users",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("email" = Option<String>, Query, description = "Find the user with this email, in any case (no match: an empty list)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Users on the page (default 100)."),
    ),
    responses(
        (status = 200, description = "A page of users.", body = UserList),
        (status = 400, description = "The query cannot be read.", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
        (status = 422, description = "A bad `limit` or `cursor`.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn list(
    req: HttpRequest,
    path: web::Path<String>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let context = tenant(&admin, &path)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| AdminError::malformed("the query string cannot be read"))?;
    let mut query = ListQuery::default();
    for (name, value) in pairs {
        match name.as_str() {
            "email" => query.email = Some(value),
            "cursor" => query.cursor = Some(value),
            "limit" => query.limit = Some(value),
            _ => {}
        }
    }
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| AdminError::invalid(format!("limit: must be 1 to {MAX_LIMIT}")))?,
    };
    let engine = &state.engine;
    if let Some(email) = query.email {
        let found = engine.user_find(&context.tenant, &email).await?;
        return Ok(HttpResponse::Ok().json(UserList {
            users: found.iter().map(User::from).collect(),
            next_cursor: None,
        }));
    }
    let after = query
        .cursor
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor.as_bytes())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| AdminError::invalid("cursor: not one this API gave"))
        })
        .transpose()?;
    let page = engine
        .users_list(&context.tenant, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(UserList {
        users: page.users.iter().map(User::from).collect(),
        next_cursor: page.next.map(|id| URL_SAFE_NO_PAD.encode(id.as_bytes())),
    }))
}

/// One user.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/users/{id}",
    tag = "users",
    operation_id = "get_user",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("id" = String, Path, description = "The user's id."),
    ),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant or user.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn get(
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let (tenant_id, id) = path.into_inner();
    let context = tenant(&admin, &tenant_id)?;
    let user = state.engine.user_get(&context.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(User::from(&user)))
}

/// Change a user's roles, state, company or password. Deactivating it or a
/// new password ends every live session of the user, and its API key.
#[utoipa::path(
    patch,
    path = "/admin/v1/tenants/{tenant}/users/{id}",
    tag = "users",
    operation_id = "change_user",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("id" = String, Path, description = "The user's id."),
    ),
    request_body(content = ChangeUser, content_type = "application/json"),
    responses(
        (status = 200, description = "The user as it is now.", body = User),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant or user.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "The change breaks a rule.", body = ErrorBody),
        (status = 503, description = "The store or the hashing threads cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn change(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let (tenant_id, id) = path.into_inner();
    let context = tenant(&admin, &tenant_id)?;
    let body: ChangeUser = json_body(&req, payload, &state).await?;
    let change = UserChange {
        roles: body.roles,
        active: body.active,
        email_verified: body.email_verified,
        company_id: body.company_id,
        password: body.password.map(SecretString::from),
    };
    let user = state
        .engine
        .user_change(&context.tenant, &id, change)
        .await?;
    Ok(HttpResponse::Ok().json(User::from(&user)))
}

/// Delete a user: every session, token and API key of it dies at once.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/users/{id}",
    tag = "users",
    operation_id = "delete_user",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("id" = String, Path, description = "The user's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant or user.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn delete(
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let (tenant_id, id) = path.into_inner();
    let context = tenant(&admin, &tenant_id)?;
    state.engine.user_delete(&context.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Log the user out everywhere: every session ends, with its API key.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/users/{id}/logout",
    tag = "users",
    operation_id = "logout_user",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("id" = String, Path, description = "The user's id."),
    ),
    responses(
        (status = 204, description = "Every session of the user has ended."),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant or user.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn logout(
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let (tenant_id, id) = path.into_inner();
    let context = tenant(&admin, &tenant_id)?;
    state.engine.user_logout(&context.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Clear the user's account lockout; the counters of the addresses it was
/// tried from stay.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/users/{id}/lockout",
    tag = "users",
    operation_id = "unlock_user",
    params(
        ("tenant" = String, Path, description = "The tenant's id."),
        ("id" = String, Path, description = "The user's id."),
    ),
    responses(
        (status = 204, description = "The account's failures and lock are forgotten."),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant or user.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn unlock(
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    let (tenant_id, id) = path.into_inner();
    let context = tenant(&admin, &tenant_id)?;
    state.engine.user_unlock(&context.tenant, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Import users: JSON lines of the create body, with `password_hash` only.
/// A line whose email exists is left as it is, so importing twice imports
/// once; a refused line never stops the others.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/users/import",
    tag = "users",
    operation_id = "import_users",
    params(("tenant" = String, Path, description = "The tenant's id.")),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One create body per line (`password_hash`, never `password`).",
        example = json!("{\"email\":\"ada@example.com\",\"password_hash\":\"$2b$12$…\"}\n")),
    responses(
        (status = 200, description = "What the lines did.", body = ImportAnswer),
        (status = 401, description = "No or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
        (status = 503, description = "The store cannot answer now; the lines before were imported.", body = ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn import(
    mut payload: web::Payload,
    path: web::Path<String>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Answer {
    use futures_util::StreamExt;
    let context = tenant(&admin, &path)?;
    let store = state.engine.store();
    let tenant = &context.tenant;
    let mut importer = Importer::new(store.as_ref(), &tenant.id, &tenant.accounts);
    let mut errors = Vec::new();
    let mut keep = |refused: Vec<Refused>| {
        let room = MAX_REPORTED.saturating_sub(errors.len());
        errors.extend(refused.into_iter().take(room));
    };
    let mut lines = Lines::default();
    loop {
        let next = tokio::time::timeout(IMPORT_IDLE, payload.next())
            .await
            .map_err(|_| BodyError::TimedOut)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        for (number, line) in lines.feed(&chunk) {
            keep(
                importer
                    .line(number, &line)
                    .await
                    .map_err(EngineError::from)?,
            );
        }
    }
    if let Some((number, line)) = lines.rest() {
        keep(
            importer
                .line(number, &line)
                .await
                .map_err(EngineError::from)?,
        );
    }
    keep(importer.finish().await.map_err(EngineError::from)?);
    let ImportCounts {
        imported,
        unchanged,
        refused,
    } = importer.counts;
    Ok(HttpResponse::Ok().json(ImportAnswer {
        imported,
        unchanged,
        refused,
        errors,
    }))
}

/// The admin API's own OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "polyauth admin API",
        description = "Each tenant's user directory: create, list, find, change, delete, log out everywhere, unlock and import users. On the admin listener only, behind the server's admin token (`admin_token_file` / `admin_token_env`); without one the API answers 404.",
    ),
    paths(create, list, get, change, delete, logout, unlock, import),
    components(schemas(User, CreateUser, ChangeUser, UserList, ImportAnswer, ImportError, ErrorBody)),
    modifiers(&Security),
    tags((name = "users", description = "A tenant's user directory.")),
)]
pub struct AdminDocument;

/// The bearer scheme of the admin token.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's admin token."))
                    .build(),
            ),
        );
    }
}

/// The document as committed in `openapi/admin.json` and served.
pub fn document_json() -> String {
    use utoipa::OpenApi as _;
    let mut json = AdminDocument::openapi()
        .to_pretty_json()
        .expect("the admin document serializes");
    json.push('\n');
    json
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
