//! The paths the gateway keeps for itself under every tenant mount, in one
//! list: dialect routes and tenant prefixes may not claim them, the HTTP
//! layer mounts its endpoints (`http/gateway/`) at them, the OpenAPI
//! documents name them. A root is kept whole (`/.well-known`, `/oauth2`), so
//! that no dialect takes a path under it first.

/// The gateway's own endpoints (forward-auth today).
pub const POLYAUTH: &str = "/_polyauth";
/// Forward-auth: nginx `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`.
pub const VERIFY: &str = "/_polyauth/verify";
/// Well-known documents.
pub const WELL_KNOWN: &str = "/.well-known";
/// The tenant's public signing keys (RFC 7517 JWK set).
pub const JWKS: &str = "/.well-known/jwks.json";
/// OAuth 2.0 endpoints of the gateway.
pub const OAUTH2: &str = "/oauth2";
/// Token introspection (RFC 7662).
pub const INTROSPECT: &str = "/oauth2/introspect";
/// Token revocation (RFC 7009).
pub const REVOKE: &str = "/oauth2/revoke";
/// The tenant's OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";
/// Swagger UI for that document.
pub const DOCS: &str = "/docs";

/// Every reserved root: the path itself and everything below it.
pub const ROOTS: &[&str] = &[POLYAUTH, WELL_KNOWN, OAUTH2, OPENAPI, DOCS];

/// Whether `path` (under a mount) is a reserved root or lies below one.
/// A trailing slash changes nothing.
pub fn is_reserved(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The reserved roots, as error messages list them.
pub fn listed() -> String {
    let roots: Vec<String> = ROOTS.iter().map(|root| format!("`{root}`")).collect();
    roots.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_what_lies_below_them_are_reserved() {
        for path in [
            "/_polyauth",
            "/_polyauth/verify",
            "/docs/",
            "/docs/index.html",
        ] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/.well-known/jwks.json", "/oauth2/revoke", "/openapi.json"] {
            assert!(is_reserved(path), "{path}");
        }
        for path in [
            "/",
            "/auth/v1/token",
            "/docsx",
            "/_polyauthx",
            "/openapi.jsonx",
        ] {
            assert!(!is_reserved(path), "{path}");
        }
    }
}
