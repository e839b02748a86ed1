//! One access-log line and one request count per request, tagged with its
//! tenant and route, and a request id on every answer. Handlers tag
//! nothing: the tenant is the scope's data, the route the resource's
//! [`RouteTag`].

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use metrics::SharedString;

use super::routing::{GatewayRoute, RouteTag};
use super::state::TenantContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions (the upstream proxy passes it on).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Echoes a sane `x-request-id` or makes one; logs one line per request
/// (no query string, no headers, no body: nothing secret).
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = req.method().clone();
    let path = req.path().chars().take(256).collect::<String>();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    // What routing attached to the request on its way in.
    let request = response.request();
    let tenant = request.app_data::<web::Data<TenantContext>>();
    let refused = request.extensions().get::<GatewayRoute>().copied();
    let route = match (refused, request.app_data::<RouteTag>(), tenant) {
        (Some(GatewayRoute(name)), _, _) => SharedString::const_str(name),
        (None, Some(tag), _) => tag.label(&method).clone(),
        (None, None, Some(_)) => SharedString::const_str("not_found"),
        (None, None, None) => SharedString::const_str("no_tenant"),
    };
    let status = response.status().as_u16();
    crate::meters::request(tenant.map(|t| &*t.tenant.meters.tenant), &route, status);
    tracing::info!(
        target: "polyauth::access",
        request_id = %request_id,
        method = %method,
        path = %path,
        tenant = %tenant.map_or("", |t| t.tenant.id.as_str()),
        route = %&*route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
