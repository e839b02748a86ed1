//! What the handlers share: one state for the gateway, one per tenant.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::cors::CorsPolicy;
use crate::access::Rules;
use crate::dialect::Dialect;
use crate::engine::{Engine, Tenant};

/// What every handler shares.
pub struct AppState {
    pub engine: Engine,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
}

/// A tenant at run time: the engine's view, the dialect it speaks, its
/// document, where it is mounted, and its access rules.
pub struct TenantContext {
    pub tenant: Tenant,
    pub dialect: Arc<Dialect>,
    /// The dialect's document; each answer fills in its server URL.
    /// Its dialect's document, shared by the dialect's tenants.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// `Host` names it answers (a host match wins over a prefix).
    pub hosts: Vec<String>,
    pub path_prefix: Option<String>,
    /// Its CORS answers; `None`: no CORS headers at all.
    pub cors: Option<Arc<CorsPolicy>>,
    /// Its `[[access]]` rules, which forward-auth and the proxy apply.
    pub access: Rules,
    /// Where requests that are not polyauth's are proxied.
    pub upstream: Option<crate::config::upstream::Upstream>,
    /// The vendor asked about logins no directory knows (`[migration]`).
    pub migration: Option<Arc<crate::config::migration::Migration>>,
    /// With generated signing keys: how long a retired one still verifies
    /// (see `keys::rotation_grace`); `None` with `[[keys]]`.
    pub generated_grace: Option<u64>,
}
