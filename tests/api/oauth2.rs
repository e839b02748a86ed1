//! OAuth clients of a tenant; `[[clients]]` and `hash-secret` in `clients`.

mod clients;

use crate::helpers::{PASSWORD, password_hash};

/// A vendor whose login shows an access token, a refresh token and the
/// user's API key, and whose refresh rotates the refresh token.
pub const VENDOR: &str = r#"
name = "vendor"
title = "A vendor with every kind of token"

[tokens]
access_ttl = "10m"
refresh_ttl = "2h"

[verify]
credentials = [
    { from = "bearer", kind = "access_token_or_api_key" },
    { from = "header", name = "x-api-key", kind = "api_key" },
]

[errors]
default = { body = { error = "{{message}}" } }

[[routes]]
operation = "login"
method = "POST"
path = "/login"
encodings = ["json"]
fields = { email = "email", password = "password" }
success = { body = { access = "{{access_token}}", refresh = "{{refresh_token}}", key = "{{api_key}}" } }

[[routes]]
operation = "refresh"
method = "POST"
path = "/refresh"
token = { from = "bearer" }
success = { body = { access = "{{access_token}}", refresh = "{{refresh_token}}" } }
"#;

/// The secret of client `billing` of every tenant below.
pub const SECRET: &str = "billing-secret-0123456789-abcdefghij";

/// The `sha256:` hash `hash-secret` prints for `secret`.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Tenant `id` at `/id` speaking [`VENDOR`], with client `billing` and
/// user `user@<id>.test` (roles user and admin, company acme); `extra` goes
/// before the tables.
pub fn vendor_tenant(id: &str, extra: &str) -> String {
    format!(
        r#"
id = "{id}"
dialect = "vendor"
path_prefix = "/{id}"
issuer = "https://auth.test/{id}"
audience = "{id}-api"
{extra}

[[clients]]
id = "billing"
secret_hash = "{hash}"

[[users]]
email = "user@{id}.test"
password_hash = "{password}"
roles = ["user", "admin"]
company_id = "acme"
"#,
        hash = secret_hash(SECRET),
        password = password_hash(PASSWORD),
    )
}
