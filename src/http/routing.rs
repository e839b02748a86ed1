//! Mounting a resource: its routes, what the access log calls each, and the
//! answers for a path that matches no route or a method it does not serve.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, Resource, Route, web};
use metrics::SharedString;

use super::request::to_http;
use super::state::TenantContext;
use crate::dialect::Failure;
use crate::engine::ErrorCode;

/// What the access log calls the routes of a resource, by method.
#[derive(Debug, Clone)]
pub struct RouteTag {
    /// Names are shared strings: a metric label takes them without a copy.
    routes: Arc<[(Method, SharedString)]>,
    /// The name of every method, on a resource that serves them all.
    every_method: Option<SharedString>,
}

/// A route name as a shared label value.
fn shared(name: &str) -> SharedString {
    SharedString::from_shared(Arc::<str>::from(name))
}

static METHOD_NOT_ALLOWED: SharedString = SharedString::const_str("method_not_allowed");

impl RouteTag {
    pub fn new(routes: &[(Method, &str)]) -> Self {
        let routes: Vec<(Method, SharedString)> = routes
            .iter()
            .map(|(method, name)| (method.clone(), shared(name)))
            .collect();
        Self {
            routes: routes.into(),
            every_method: None,
        }
    }

    /// The route a request took; a method the resource does not serve is
    /// `method_not_allowed`.
    pub fn name(&self, method: &Method) -> &str {
        self.label(method)
    }

    /// [`RouteTag::name`], shared.
    pub fn label(&self, method: &Method) -> &SharedString {
        if let Some(name) = &self.every_method {
            return name;
        }
        self.routes
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&METHOD_NOT_ALLOWED, |(_, name)| name)
    }

    /// The methods the resource serves, as an `Allow` header lists them.
    pub fn allow(&self) -> String {
        let mut methods: Vec<&str> = Vec::new();
        for (method, _) in self.routes.iter() {
            if !methods.contains(&method.as_str()) {
                methods.push(method.as_str());
            }
        }
        methods.join(", ")
    }
}

/// What the access log calls a request the gateway answered before routing
/// (in the request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct GatewayRoute(pub &'static str);

/// A resource at `paths` serving `routes` (method, log name, handler);
/// any other method gets the dialect's `method_not_allowed`, with an
/// `Allow` header naming the methods it serves (RFC 9110).
pub fn resource(paths: Vec<String>, routes: Vec<(Method, String, Route)>) -> Resource {
    let tags: Vec<(Method, SharedString)> = routes
        .iter()
        .map(|(method, name, _)| (method.clone(), shared(name)))
        .collect();
    let tag = RouteTag {
        routes: tags.into(),
        every_method: None,
    };
    let mut resource = web::resource(paths).app_data(tag);
    for (method, _, route) in routes {
        resource = resource.route(route.method(method));
    }
    resource.default_service(web::to(method_not_allowed))
}

/// A resource at `path` whose one route, logged as `name`, serves every method.
pub fn every_method_resource(path: String, name: &str, route: Route) -> Resource {
    let tag = RouteTag {
        routes: Arc::new([]),
        every_method: Some(shared(name)),
    };
    web::resource(path).app_data(tag).route(route)
}

/// No route of the tenant has this path.
pub async fn not_found(context: web::Data<TenantContext>) -> HttpResponse {
    to_http(
        context
            .dialect
            .render_error(None, &Failure::of(ErrorCode::NotFound)),
    )
}

async fn method_not_allowed(req: HttpRequest, context: web::Data<TenantContext>) -> HttpResponse {
    let mut answer = context
        .dialect
        .render_error(None, &Failure::of(ErrorCode::MethodNotAllowed));
    if let Some(tag) = req.app_data::<RouteTag>() {
        answer
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("allow"));
        answer.headers.push(("Allow".into(), tag.allow()));
    }
    to_http(answer)
}

/// No tenant is mounted here.
pub async fn no_tenant() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": "not_found" }))
}
