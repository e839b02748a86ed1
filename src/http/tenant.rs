//! A tenant's routes: its dialect's operations, mounted under its prefix or
//! host, plus the gateway's own verify endpoint. A handler decodes, calls the
//! engine, and renders; nothing else.

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, Scope, web};
use secrecy::SecretString;

use super::Gateway;
use super::request::{
    BodyError, LogTags, client_ip, header_credential, header_text, read_body, to_http,
};
use super::verify::verify;
use crate::dialect::decode::{self, Input, Inputs, Problem};
use crate::dialect::model::Operation;
use crate::dialect::template::{Placeholder, Values};
use crate::dialect::{Dialect, Failure, Response, Route, TokenSource};
use crate::engine::{CredentialKind, EngineError, Grant, LoginRequest, Tenant};

/// A tenant at run time: the engine's view and the dialect it speaks.
pub struct TenantContext {
    pub tenant: Tenant,
    pub dialect: Arc<Dialect>,
    /// The dialect's document; each answer fills in its server URL.
    pub openapi: utoipa::openapi::OpenApi,
}

impl TenantContext {
    /// Marks the request for the access log.
    pub fn tag(&self, req: &HttpRequest, route: impl Into<String>) {
        req.extensions_mut().insert(LogTags {
            tenant: self.tenant.id.clone(),
            route: route.into(),
        });
    }
}

/// Adds the tenant's routes to `scope`.
pub fn mount(mut scope: Scope, context: &Arc<TenantContext>) -> Scope {
    scope = scope.app_data(web::Data::from(Arc::clone(context)));
    let mut patterns: Vec<&str> = Vec::new();
    for route in &context.dialect.routes {
        if !patterns.contains(&route.pattern.as_str()) {
            patterns.push(&route.pattern);
        }
    }
    for pattern in patterns {
        let mut forms = vec![pattern.to_owned()];
        if context.dialect.trailing_slash && pattern != "/" {
            forms.push(match pattern.strip_suffix('/') {
                Some(bare) if !bare.is_empty() => bare.to_owned(),
                _ => format!("{pattern}/"),
            });
        }
        let mut resource = web::resource(forms);
        for (index, route) in context.dialect.routes.iter().enumerate() {
            if route.pattern != pattern {
                continue;
            }
            let method = actix_web::http::Method::from_bytes(route.method.as_bytes())
                .unwrap_or(actix_web::http::Method::POST);
            resource = resource.route(web::method(method).to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      gateway: web::Data<Gateway>,
                      context: web::Data<TenantContext>| async move {
                    run_operation(index, req, payload, gateway, context).await
                },
            ));
        }
        scope = scope.service(resource.default_service(web::to(method_not_allowed)));
    }
    scope
        .service(
            web::resource("/openapi.json")
                .route(web::get().to(get_openapi))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/docs")
                .route(web::get().to(get_docs_root))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/docs/{file:.*}")
                .route(web::get().to(get_docs))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/_polyauth/verify")
                .route(web::get().to(verify))
                .route(web::post().to(verify))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found))
}

/// The tenant's OpenAPI document, its server URL the one the client used.
/// Only a trusted proxy's `X-Forwarded-Proto`/`-Host` (the right-most
/// values, the ones it set) may change scheme and host; a host that is not
/// a plain `name[:port]` is not repeated.
async fn get_openapi(
    req: HttpRequest,
    gateway: web::Data<Gateway>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    context.tag(&req, "openapi");
    let mount = req.path().strip_suffix("/openapi.json").unwrap_or_default();
    let proxied = req.peer_addr().is_some_and(|peer| {
        let peer = peer.ip().to_canonical();
        gateway
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer))
    });
    let forwarded = |name: &str| {
        proxied
            .then(|| header_text(&req, name))
            .flatten()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
    };
    let scheme = match forwarded("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let local = req.app_config().host().to_owned();
    let host = forwarded("x-forwarded-host")
        .or_else(|| header_text(&req, "host"))
        .filter(|host| is_plain_host(host))
        .unwrap_or(&local);
    let mut document = context.openapi.clone();
    document.servers = Some(vec![utoipa::openapi::server::Server::new(format!(
        "{scheme}://{host}{mount}"
    ))]);
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(document)
}

/// `example.com`, `127.0.0.1:8080`, `[::1]:8080`: nothing that could turn
/// a URL into another one.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// `<mount>/docs` → `<mount>/docs/`, so the page's relative links resolve.
async fn get_docs_root(req: HttpRequest, context: web::Data<TenantContext>) -> HttpResponse {
    context.tag(&req, "docs");
    HttpResponse::Found()
        .insert_header(("location", "docs/"))
        .finish()
}

/// Swagger UI for the tenant's document, served from the binary (no CDN).
async fn get_docs(
    req: HttpRequest,
    file: web::Path<String>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    context.tag(&req, "docs");
    static CONFIG: std::sync::LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
        std::sync::LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"])));
    match utoipa_swagger_ui::serve(&file, Arc::clone(&CONFIG)) {
        Ok(Some(file)) => HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.into_owned()),
        Ok(None) => not_found(req, context).await,
        Err(error) => {
            tracing::error!(%error, "swagger ui");
            to_http(
                context
                    .dialect
                    .render_error(None, &Failure::gateway("internal")),
            )
        }
    }
}

async fn not_found(req: HttpRequest, context: web::Data<TenantContext>) -> HttpResponse {
    context.tag(&req, "not_found");
    to_http(
        context
            .dialect
            .render_error(None, &Failure::gateway("not_found")),
    )
}

async fn method_not_allowed(req: HttpRequest, context: web::Data<TenantContext>) -> HttpResponse {
    context.tag(&req, "method_not_allowed");
    to_http(
        context
            .dialect
            .render_error(None, &Failure::gateway("method_not_allowed")),
    )
}

async fn run_operation(
    index: usize,
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    let route = &context.dialect.routes[index];
    context.tag(&req, route.label());
    let response = match operate(&gateway, &context, route, &req, payload).await {
        Ok(response) => response,
        Err(failure) => context.dialect.render_error(Some(route), &failure),
    };
    to_http(response)
}

async fn operate(
    gateway: &Gateway,
    context: &TenantContext,
    route: &Route,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Response, Failure> {
    let mut inputs = if route.reads_body() {
        let body = read_body(req, payload, gateway.max_body_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => Failure::gateway("payload_too_large"),
                BodyError::Broken => Failure::from_problem(&Problem::InvalidBody, &route.inputs),
            })?;
        let content_type = header_text(req, "content-type");
        decode::decode(
            &route.encodings,
            &route.inputs,
            route.strict,
            content_type,
            &body,
        )
        .map_err(|problem| Failure::from_problem(&problem, &route.inputs))?
    } else {
        Inputs::default()
    };
    let engine = &gateway.engine;
    let tenant = &context.tenant;
    let values = match route.operation {
        Operation::Login => {
            let request = LoginRequest {
                email: inputs.take_text(Input::Email).unwrap_or_default(),
                password: SecretString::from(inputs.take_text(Input::Password).unwrap_or_default()),
                remember: inputs.flag(Input::Remember),
                client_ip: client_ip(req, &gateway.trusted_proxies),
                with_api_key: route.shows_api_key,
            };
            grant_values(engine.login(tenant, request).await.map_err(failed)?)
        }
        Operation::ClientLogin => {
            let company = inputs.text(Input::CompanyId).unwrap_or_default();
            let ip = client_ip(req, &gateway.trusted_proxies);
            grant_values(
                engine
                    .client_login(tenant, company, ip)
                    .await
                    .map_err(failed)?,
            )
        }
        Operation::Refresh => {
            let token = presented_token(route, req, &mut inputs)?;
            let grant = if token_kind(route) == CredentialKind::AccessToken {
                engine.slide(tenant, &token).await
            } else {
                engine.refresh(tenant, &token, route.rotates_refresh).await
            };
            grant_values(grant.map_err(failed)?)
        }
        Operation::Revoke => {
            let (token, kind) = (presented_token(route, req, &mut inputs)?, token_kind(route));
            engine
                .revoke(tenant, &token, kind, route.scope)
                .await
                .map_err(failed)?;
            Values::default()
        }
        Operation::GenerateApiKey => {
            let token = presented_token(route, req, &mut inputs)?;
            let key = engine
                .generate_api_key(tenant, &token)
                .await
                .map_err(failed)?;
            let mut values = Values::default();
            values
                .text(Placeholder::ApiKey, key.key)
                .text(Placeholder::Subject, key.subject)
                .maybe_text(Placeholder::Email, key.email.as_deref());
            values
        }
    };
    Ok(route.render_success(&values))
}

fn token_kind(route: &Route) -> CredentialKind {
    route
        .token
        .as_ref()
        .map_or(CredentialKind::AccessToken, |t| t.kind)
}

/// Reads the route's token where the dialect says clients send it.
fn presented_token(
    route: &Route,
    req: &HttpRequest,
    inputs: &mut Inputs,
) -> Result<String, Failure> {
    let token = route
        .token
        .as_ref()
        .and_then(|credential| match &credential.source {
            TokenSource::Field(_) => inputs.take_text(Input::Token),
            source => header_credential(req, source).map(str::to_owned),
        });
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed(EngineError::MissingToken))
}

fn grant_values(grant: Grant) -> Values {
    let mut values = Values::default();
    values
        .text(Placeholder::AccessToken, grant.access_token)
        .text(Placeholder::TokenType, "Bearer")
        .number(Placeholder::ExpiresIn, grant.expires_in)
        .text(Placeholder::Subject, grant.subject)
        .maybe_text(Placeholder::RefreshToken, grant.refresh_token.as_deref())
        .maybe_text(Placeholder::ApiKey, grant.api_key.as_deref())
        .maybe_text(Placeholder::Email, grant.email.as_deref())
        .maybe_text(Placeholder::CompanyId, grant.company_id.as_deref());
    if let Some(secs) = grant.refresh_expires_in {
        values.number(Placeholder::RefreshExpiresIn, secs);
    }
    values
}

/// Logs what the client is not told, and words the failure for the dialect.
pub fn failed(error: EngineError) -> Failure {
    match &error {
        EngineError::Internal(cause) => tracing::error!(error = ?cause, "engine failure"),
        EngineError::Unavailable(cause) => tracing::warn!(error = %cause, "store unavailable"),
        _ => {}
    }
    Failure::from(&error)
}
