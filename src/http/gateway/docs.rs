//! `<mount>/docs/`: Swagger UI for the tenant's document, served from the
//! binary (no CDN).

use std::sync::{Arc, LazyLock};

use actix_web::{HttpResponse, web};

use crate::dialect::Failure;
use crate::engine::ErrorCode;
use crate::http::request::to_http;
use crate::http::routing::not_found;
use crate::http::state::TenantContext;

/// `<mount>/docs` → `<mount>/docs/`, so the page's relative links resolve.
pub async fn get_docs_root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", "docs/"))
        .finish()
}

/// One file of Swagger UI, configured to read `../openapi.json`.
pub async fn get_docs(file: web::Path<String>, context: web::Data<TenantContext>) -> HttpResponse {
    static CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
        LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"])));
    match utoipa_swagger_ui::serve(&file, Arc::clone(&CONFIG)) {
        Ok(Some(file)) => HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.into_owned()),
        Ok(None) => not_found(context).await,
        Err(error) => {
            tracing::error!(%error, "swagger ui");
            to_http(
                context
                    .dialect
                    .render_error(None, &Failure::of(ErrorCode::Internal)),
            )
        }
    }
}
