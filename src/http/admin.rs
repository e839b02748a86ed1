//! The admin listener: liveness and readiness, never public.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::Gateway;

const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "admin",
    responses((status = 200, description = "The process is up.",
        body = serde_json::Value, example = json!({ "status": "ok" }))),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the process can serve, its store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "admin",
    responses(
        (status = 200, description = "The store answers.",
            body = serde_json::Value, example = json!({ "status": "ready" })),
        (status = 503, description = "The store is unreachable or slow.",
            body = serde_json::Value, example = json!({ "status": "unavailable", "store": "unreachable" })),
    ),
)]
pub async fn readyz(gateway: web::Data<Gateway>) -> HttpResponse {
    let store = gateway.engine.store();
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: store unavailable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "store": "unreachable" }))
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "store": "timeout" })),
    }
}
