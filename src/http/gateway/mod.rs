//! The gateway's own endpoints under every tenant mount, one file each,
//! each at its path in [`crate::reserved`].

pub mod docs;
pub mod openapi;
pub mod verify;

use actix_web::http::Method;
use actix_web::{Route, Scope, web};

use super::routing::resource;
use crate::reserved;

/// Mounts every gateway endpoint on a tenant's scope.
pub fn configure(scope: Scope) -> Scope {
    let route = |method: Method, name: &str, route: Route| (method, name.to_owned(), route);
    scope
        .service(resource(
            vec![reserved::OPENAPI.to_owned()],
            vec![route(
                Method::GET,
                "openapi",
                web::route().to(openapi::get_openapi),
            )],
        ))
        .service(resource(
            vec![reserved::DOCS.to_owned()],
            vec![route(
                Method::GET,
                "docs",
                web::route().to(docs::get_docs_root),
            )],
        ))
        .service(resource(
            vec![format!("{}/{{file:.*}}", reserved::DOCS)],
            vec![route(Method::GET, "docs", web::route().to(docs::get_docs))],
        ))
        .service(resource(
            vec![reserved::VERIFY.to_owned()],
            vec![
                route(Method::GET, "verify", web::route().to(verify::verify)),
                route(Method::POST, "verify", web::route().to(verify::verify)),
            ],
        ))
}
