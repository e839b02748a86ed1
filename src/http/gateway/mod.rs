//! The gateway's own endpoints under every tenant mount, one file each,
//! each at its path in [`crate::reserved`].

pub mod docs;
pub mod jwks;
pub mod oauth2;
pub mod openapi;
pub mod proxy;
pub mod verify;

use actix_web::http::Method;
use actix_web::{Route, Scope, web};

use super::routing::{every_method_resource, resource};
use crate::reserved;

/// Mounts every gateway endpoint on a tenant's scope.
pub fn configure(scope: Scope) -> Scope {
    let get = |name: &str, route: Route| (Method::GET, name.to_owned(), route);
    let post = |name: &str, route: Route| (Method::POST, name.to_owned(), route);
    let endpoints = [
        (
            reserved::OPENAPI.to_owned(),
            vec![get("openapi", web::route().to(openapi::get_openapi))],
        ),
        (
            reserved::DOCS.to_owned(),
            vec![get("docs", web::route().to(docs::get_docs_root))],
        ),
        (
            format!("{}/{{file:.*}}", reserved::DOCS),
            vec![get("docs", web::route().to(docs::get_docs))],
        ),
        (
            reserved::JWKS.to_owned(),
            vec![get("jwks", web::route().to(jwks::get_jwks))],
        ),
        (
            reserved::VERIFY.to_owned(),
            vec![
                get("verify", web::route().to(verify::verify)),
                post("verify", web::route().to(verify::verify)),
            ],
        ),
        (
            reserved::INTROSPECT.to_owned(),
            vec![post(
                "oauth2_introspect",
                web::route().to(oauth2::post_introspect),
            )],
        ),
        (
            reserved::REVOKE.to_owned(),
            vec![post("oauth2_revoke", web::route().to(oauth2::post_revoke))],
        ),
    ];
    let scope = endpoints.into_iter().fold(scope, |scope, (path, routes)| {
        scope.service(resource(vec![path], routes))
    });
    // Envoy `ext_authz` appends the original path and keeps its method.
    scope.service(every_method_resource(
        format!("{}/{{{}:.*}}", reserved::VERIFY, verify::ORIGINAL),
        "verify",
        web::route().to(verify::verify),
    ))
}
