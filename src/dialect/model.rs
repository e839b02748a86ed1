//! The dialect file as written: TOML, deserialized strictly.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::decode::Encoding;
use super::operation::Operation;
use crate::duration::HumanDuration;
use crate::engine::{CredentialKind, RevokeScope};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectFile {
    pub name: String,
    pub title: String,
    /// The vendor page the dialect follows.
    #[serde(default)]
    pub vendor_page: Option<String>,
    /// Lifetimes a tenant of this dialect gets unless its file says otherwise.
    #[serde(default)]
    pub tokens: TokensConfig,
    #[serde(default)]
    pub verify: VerifySpec,
    /// Claims added to every token: name → `"{{subject}}"`, `"{{email}}"`,
    /// `"{{company_id}}"`, `"{{role}}"` or a literal value.
    #[serde(default)]
    pub claims: BTreeMap<String, toml::Value>,
    /// The vendor's own CORS answer, which a tenant's `cors_origins`
    /// replaces: `[cors] origins = ["*"]`.
    #[serde(default)]
    pub cors: CorsSpec,
    /// Paths match with and without a trailing slash.
    #[serde(default)]
    pub trailing_slash: bool,
    /// Path parameters: name → regex of one path segment (`version = "v[0-9]+"`);
    /// a route path names one as a whole segment, `/api/{version}/login`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Texts the `{{message}}` placeholder takes, by message key.
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
    /// Responses per error code, for every route (`default` catches the rest).
    #[serde(default)]
    pub errors: BTreeMap<String, ResponseSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// Token lifetimes, in a tenant file or as a dialect's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    #[serde(default)]
    pub access_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub refresh_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub remember_refresh_ttl: Option<HumanDuration>,
    /// Live sessions one subject may hold (default 100): a new login ends
    /// the oldest beyond it.
    #[serde(default)]
    pub max_sessions: Option<u32>,
}

/// `[cors]`: the origins the vendor's API answers with CORS headers, for
/// tenants whose file has no `cors_origins` of its own. `origins = ["*"]`
/// (any origin, answered `Access-Control-Allow-Origin: *`) or a list of
/// `scheme://host[:port]`; none or empty: no CORS unless a tenant sets it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    #[serde(default)]
    pub origins: Vec<String>,
}

/// Where `/_polyauth/verify` reads the credential, first match wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    #[serde(default = "default_verify_credentials")]
    pub credentials: Vec<CredentialSpec>,
    /// A request header naming the company the caller acts for; when sent,
    /// the credential must belong to that company (403 otherwise).
    #[serde(default)]
    pub company_header: Option<String>,
}

impl Default for VerifySpec {
    fn default() -> Self {
        Self {
            credentials: default_verify_credentials(),
            company_header: None,
        }
    }
}

fn default_verify_credentials() -> Vec<CredentialSpec> {
    vec![CredentialSpec {
        from: SourceKind::Bearer,
        name: None,
        kind: Some(CredentialKind::AccessTokenOrApiKey),
    }]
}

/// Where a presented token is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The request header `name`.
    Header,
    /// The body field `name`.
    Field,
}

/// A token source and what the token may be:
/// `{ from = "bearer" }`, `{ from = "header", name = "token" }`,
/// `{ from = "field", name = "refresh", kind = "refresh_token" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    pub from: SourceKind,
    #[serde(default)]
    pub name: Option<String>,
    /// Defaults per operation (refresh: refresh_token; others: access_token).
    #[serde(default)]
    pub kind: Option<CredentialKind>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub operation: Operation,
    pub method: String,
    /// Relative to the tenant mount.
    pub path: String,
    /// Accepted request encodings, for operations that read a body.
    #[serde(default)]
    pub encodings: Vec<Encoding>,
    /// Reject body fields the route does not name.
    #[serde(default)]
    pub strict: bool,
    /// Engine input name → wire name (`email`, `password`, `remember`, `company_id`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Body fields the vendor takes that the engine does not read: wire name →
    /// what its value must be when sent (`{}`: any text).
    #[serde(default)]
    pub accepts: BTreeMap<String, AcceptSpec>,
    /// Where the token is read (refresh, revoke, generate_api_key).
    #[serde(default)]
    pub token: Option<CredentialSpec>,
    /// How far a revoke reaches.
    #[serde(default)]
    pub scope: RevokeScope,
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
    pub success: ResponseSpec,
    #[serde(default)]
    pub errors: BTreeMap<String, ResponseSpec>,
}

/// A body field a route takes without reading it: `{}`, or
/// `{ pattern = "^password$" }` for a value that must match, when sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptSpec {
    #[serde(default)]
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Omitted in an error response: the error's usual status.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<toml::Value>,
}
