//! JWT issuance and verification. Verification trusts nothing in the token
//! until its `kid` has been found in the tenant's own key set and its `alg`
//! matches that key.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::TokenProblem;
use super::keys::KeySet;
use crate::store::unix_now;

/// Tolerated clock difference between replicas for `nbf` and `iat`, and
/// the slack a token's lifetime may have over the tenant's TTL.
pub const SKEW_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims polyauth writes and reads.
#[derive(Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub typ: TokenType,
    pub tid: String,
    /// The refresh family (session) the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Company of a company login, or of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The holder is a user of the tenant's directory in the store (not of
    /// its file): its sessions end when the user is changed there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
}

/// What a verification expects of a token besides a good signature.
pub struct Expectation<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub tenant: &'a str,
    pub typ: TokenType,
    /// The longest the tenant issues a token of that type for: `exp - iat`
    /// may exceed it by [`SKEW_SECS`] at most.
    pub max_lifetime_secs: u64,
}

/// Signs `claims`, plus a dialect's `extra` claims, with the key that signs
/// at the token's `iat`, naming it in `kid`. Extra claims never replace ours.
pub fn sign(
    keys: &KeySet,
    claims: &Claims,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<String> {
    let key = keys.signing(claims.iat).ok_or_else(|| {
        anyhow::anyhow!("every signing key of the tenant has retired: add a key to its [[keys]]")
    })?;
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    if extra.is_empty() {
        return Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?);
    }
    let mut body = serde_json::to_value(claims)?;
    if let Some(object) = body.as_object_mut() {
        for (name, value) in extra {
            object.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    Ok(jsonwebtoken::encode(&header, &body, &key.encoding)?)
}

/// Names polyauth's own claims use; a dialect cannot add claims under them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ", "tid", "sid", "email", "roles", "cid",
    "dir",
];

/// A token whose signature one of the tenant's keys verified.
pub struct Verified {
    pub claims: Claims,
    /// When the key that verified it retires, if it does.
    pub key_retires_at: Option<u64>,
}

/// Verifies signature, algorithm, issuer, audience, tenant, time, type and
/// lifetime. A `crit` header is refused: polyauth understands no extension
/// (RFC 7515 §4.1.11).
pub fn verify(
    keys: &KeySet,
    token: &str,
    expect: &Expectation<'_>,
) -> Result<Verified, TokenProblem> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenProblem::Invalid)?;
    if header.crit.is_some() {
        return Err(TokenProblem::Invalid);
    }
    let now = unix_now();
    let kid = header.kid.as_deref().ok_or(TokenProblem::Invalid)?;
    let (key, key_retires_at) = keys.verifying(kid, now).ok_or(TokenProblem::Invalid)?;
    if header.alg != key.alg {
        return Err(TokenProblem::Invalid);
    }
    let mut validation = Validation::new(key.alg);
    validation.leeway = 0;
    validation.validate_nbf = false;
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(&[expect.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenProblem::Expired,
            _ => TokenProblem::Invalid,
        })?
        .claims;
    check_claims(&claims, expect, now)?;
    Ok(Verified {
        claims,
        key_retires_at,
    })
}

/// Everything [`verify`] asks of the claims of a token whose signature is
/// good, at `now`: what a token verified earlier must still satisfy.
pub fn check_claims(
    claims: &Claims,
    expect: &Expectation<'_>,
    now: u64,
) -> Result<(), TokenProblem> {
    if claims.iss != expect.issuer || claims.aud != expect.audience {
        return Err(TokenProblem::Invalid);
    }
    if claims.exp < now {
        return Err(TokenProblem::Expired);
    }
    if claims.nbf > now + SKEW_SECS || claims.iat > now + SKEW_SECS || claims.tid != expect.tenant {
        return Err(TokenProblem::Invalid);
    }
    if claims.typ != expect.typ {
        return Err(TokenProblem::WrongType);
    }
    // A token the tenant could not have issued, even if signed with its key.
    if claims.exp.saturating_sub(claims.iat) > expect.max_lifetime_secs.saturating_add(SKEW_SECS) {
        return Err(TokenProblem::Invalid);
    }
    Ok(())
}
