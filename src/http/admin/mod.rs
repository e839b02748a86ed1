//! The admin listener: liveness, readiness, metrics and the admin API
//! ([`users`]), never public.

mod error;
pub mod users;

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpResponse, guard, web};

use super::routing::RouteTag;
use super::state::AppState;

const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// GET only: another method finds no resource (404), as a health checker
/// expects; `/metrics` only with `metrics`.
pub fn routes(
    config: &mut web::ServiceConfig,
    metrics: bool,
    admin: Option<std::sync::Arc<users::Admin>>,
) {
    users::routes(config, admin);
    config
        .service(
            web::resource("/healthz")
                .guard(guard::Get())
                .app_data(RouteTag::new(&[(Method::GET, "healthz")]))
                .route(web::get().to(healthz)),
        )
        .service(
            web::resource("/readyz")
                .guard(guard::Get())
                .app_data(RouteTag::new(&[(Method::GET, "readyz")]))
                .route(web::get().to(readyz)),
        );
    if metrics {
        config.service(
            web::resource("/metrics")
                .guard(guard::Get())
                .app_data(RouteTag::new(&[(Method::GET, "metrics")]))
                .route(web::get().to(self::metrics)),
        );
    }
}

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics, in the text exposition format (see the README's
/// Metrics section for the names).
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(PROMETHEUS_TEXT)
        .body(crate::meters::render().unwrap_or_default())
}

/// What the health endpoints answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable`.
    #[schema(example = "ok")]
    status: &'static str,
    /// Why the store did not answer: `unreachable` or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<&'static str>,
}

impl Health {
    fn new(status: &'static str, store: Option<&'static str>) -> Self {
        Self { status, store }
    }
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "admin",
    responses((status = 200, description = "The process is up.",
        body = inline(Health), example = json!({ "status": "ok" }))),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health::new("ok", None))
}

/// Readiness: the process can serve, its store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "admin",
    responses(
        (status = 200, description = "The store answers.",
            body = inline(Health), example = json!({ "status": "ready" })),
        (status = 503, description = "The store is unreachable or slow.",
            body = inline(Health), example = json!({ "status": "unavailable", "store": "unreachable" })),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.engine.store();
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(Health::new("ready", None)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: store unavailable");
            HttpResponse::ServiceUnavailable().json(Health::new("unavailable", Some("unreachable")))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(Health::new("unavailable", Some("timeout")))
        }
    }
}
