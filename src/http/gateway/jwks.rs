//! The tenant's public signing keys as a JWK set (RFC 7517), for services
//! and proxies that verify polyauth's tokens themselves (PyJWT
//! `PyJWKClient`, `jose`, nginx and Envoy JWT filters).

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::http::state::TenantContext;
use crate::store::unix_now;

/// A client may keep the set five minutes. A key rotated in signs at once,
/// so a client meeting a `kid` it does not know fetches the set again
/// (PyJWT's `PyJWKClient` and jose's `createRemoteJWKSet` do).
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The tenant's public signing keys (JWK set).
///
/// Every public key that may still verify a live token of the tenant, in
/// the order they are preferred for signing. Private and symmetric (HS256) key
/// material is never listed: a tenant signing with HS256 answers an empty
/// set. A key leaves the set when it retires (`retire_after`) or, for
/// generated keys, once every token it signed before a rotation has
/// expired. Clients may cache the set for five minutes; on a token whose
/// `kid` they do not know, they should fetch it again.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "gateway",
    responses(
        (status = 200, description = "The tenant's public signing keys.",
            body = inline(JwkSet),
            headers(("Cache-Control" = String, description = "`public, max-age=300`.")),
            example = json!({ "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "gen-3q2-7w8Qz1Vb",
                "alg": "EdDSA",
                "use": "sig"
            }]})),
    )
)]
pub async fn get_jwks(context: web::Data<TenantContext>) -> HttpResponse {
    let keys = context.tenant.keys.load().jwks(unix_now());
    HttpResponse::Ok()
        .insert_header(("cache-control", CACHE_CONTROL))
        .json(keys)
}

// What `KeySet::jwks` writes, described for the OpenAPI documents.

/// A JWK set (RFC 7517 §5).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// The public keys, in the order they are preferred for signing.
    #[schema(inline)]
    keys: Vec<PublicJwk>,
}

/// One public key: `crv` and `x` for Ed25519 (RFC 8037), `crv`, `x` and
/// `y` for P-256, `n` and `e` for RSA (RFC 7518 §6), all base64url.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    #[schema(inline)]
    kty: KeyType,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline, nullable = false)]
    crv: Option<Curve>,
    /// The public key (Ed25519) or its x coordinate (P-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    x: Option<String>,
    /// The y coordinate (P-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    y: Option<String>,
    /// The RSA modulus.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    n: Option<String>,
    /// The RSA public exponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    e: Option<String>,
    /// The key id tokens name in their header.
    kid: String,
    #[schema(inline)]
    alg: KeyAlg,
    #[serde(rename = "use")]
    #[schema(inline)]
    key_use: KeyUse,
}

/// The key type.
#[derive(Serialize, utoipa::ToSchema)]
pub enum KeyType {
    #[serde(rename = "OKP")]
    Okp,
    #[serde(rename = "EC")]
    Ec,
    #[serde(rename = "RSA")]
    Rsa,
}

/// The curve of an `OKP` or `EC` key.
#[derive(Serialize, utoipa::ToSchema)]
pub enum Curve {
    Ed25519,
    #[serde(rename = "P-256")]
    P256,
}

/// The algorithm tokens signed with the key name in `alg`.
#[derive(Serialize, utoipa::ToSchema)]
pub enum KeyAlg {
    EdDSA,
    ES256,
    RS256,
}

/// What the key is for: always `sig`, it verifies signatures.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyUse {
    Sig,
}
