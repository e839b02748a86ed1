//! `<mount>/openapi.json`: the tenant's OpenAPI document.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::dialect::credential::header_text;
use crate::http::connection::LocalAddr;
use crate::http::state::{AppState, TenantContext};

/// The tenant's OpenAPI document, its server URL the one the client used.
/// Only a trusted proxy's `X-Forwarded-Proto`/`-Host` (the right-most
/// values, the ones it set) may change scheme and host; a host that is not
/// a plain `name[:port]` is not repeated.
pub async fn get_openapi(
    req: HttpRequest,
    state: web::Data<AppState>,
    context: web::Data<TenantContext>,
) -> HttpResponse {
    let mount = req.path().strip_suffix("/openapi.json").unwrap_or_default();
    let proxied = req.peer_addr().is_some_and(|peer| {
        let peer = peer.ip().to_canonical();
        state.trusted_proxies.iter().any(|net| net.contains(&peer))
    });
    let headers = req.headers();
    let forwarded = |name: &str| {
        proxied
            .then(|| header_text(headers, name))
            .flatten()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
    };
    let scheme = match forwarded("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    // No host named (HTTP/1.0): the address the client reached.
    let local = req
        .conn_data::<LocalAddr>()
        .map_or_else(|| req.app_config().host().to_owned(), |at| at.0.to_string());
    let host = forwarded("x-forwarded-host")
        .or_else(|| header_text(headers, "host"))
        .filter(|host| is_plain_host(host))
        .unwrap_or(&local);
    let mut document = (*context.openapi).clone();
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
