//! What the handlers share: one state for the gateway, one per tenant.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

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
/// document, and where it is mounted.
pub struct TenantContext {
    pub tenant: Tenant,
    pub dialect: Arc<Dialect>,
    /// The dialect's document; each answer fills in its server URL.
    pub openapi: utoipa::openapi::OpenApi,
    /// `Host` names it answers (a host match wins over a prefix).
    pub hosts: Vec<String>,
    pub path_prefix: Option<String>,
    /// Where requests that are not polyauth's are proxied.
    pub upstream: Option<crate::config::upstream::Upstream>,
}
