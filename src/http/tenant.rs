//! A tenant's routes: its dialect's operations, mounted under its prefix or
//! host, then the gateway's own endpoints. One handler serves every dialect
//! route: decode, call, render.

use std::sync::Arc;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::{Method, header};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, Scope, web};

use super::legacy::Replay;
use super::request::{client_ip, read_body, to_http};
use super::routing::{not_found, resource};
use super::state::{AppState, TenantContext};
use super::{cors, gateway};
use crate::dialect::RequestView;
use crate::engine::Call;

/// Adds the tenant's routes to `scope`, all behind its CORS answers.
pub fn mount(scope: Scope, context: &Arc<TenantContext>) -> impl HttpServiceFactory + use<> {
    let cors = context.cors.clone();
    routes(scope, context).wrap(from_fn(move |req, next| {
        cors::apply(cors.clone(), req, next)
    }))
}

fn routes(scope: Scope, context: &Arc<TenantContext>) -> Scope {
    let mut scope = scope.app_data(web::Data::from(Arc::clone(context)));
    let routes = &context.dialect.routes;
    let mut mounted: Vec<String> = Vec::new();
    let mut patterns: Vec<&str> = Vec::new();
    for route in routes {
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
        mounted.extend(forms.iter().cloned());
        let served = routes
            .iter()
            .enumerate()
            .filter(|(_, route)| route.pattern == pattern)
            .map(|(index, route)| {
                let method = Method::from_bytes(route.method.as_bytes()).unwrap_or(Method::POST);
                let handler =
                    move |req: HttpRequest,
                          payload: web::Payload,
                          state: web::Data<AppState>,
                          context: web::Data<TenantContext>| {
                        serve_route(index, req, payload, state, context)
                    };
                (method, route.label(), web::route().to(handler))
            })
            .collect();
        scope = scope.service(resource(forms, served));
    }
    let scope = gateway::configure(scope);
    match &context.upstream {
        // Made here, once per worker: its connections stay on the worker.
        Some(upstream) => scope
            .app_data(web::Data::new(gateway::proxy::Proxy::new(
                upstream, &mounted,
            )))
            .default_service(web::to(gateway::proxy::forward)),
        None => scope.default_service(web::to(not_found)),
    }
}

/// Serves route `index` of the tenant's dialect.
async fn serve_route(
    index: usize,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    let dialect = &context.dialect;
    let route = &dialect.routes[index];
    let body = match route.reads_body() {
        true => read_body(&req, payload, state.max_body_bytes, state.body_timeout).await,
        false => Ok(Default::default()),
    };
    let request = RequestView {
        headers: req.headers(),
        body: body.as_deref().map_err(|e| *e),
        client_ip: client_ip(&req, &state.trusted_proxies),
    };
    let answer = match route.decode(&request) {
        Ok(mut call) => {
            if let (Call::Login(login), Some(migration)) = (&mut call, &context.migration) {
                login.legacy = Some(Box::new(Replay {
                    migration: Arc::clone(migration),
                    dialect: Arc::clone(dialect),
                    route: index,
                    content_type: req
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok()),
                    body: body.clone().unwrap_or_default(),
                }));
            }
            dialect.answer(route, state.engine.call(&context.tenant, call).await)
        }
        Err(failure) => dialect.render_error(Some(route), &failure),
    };
    to_http(answer)
}
