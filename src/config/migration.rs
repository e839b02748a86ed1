//! A tenant's `[migration]`: the legacy vendor's own login endpoint, asked
//! about a login for an email no directory knows (lazy migration).

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use rustls::ClientConfig;
use serde::Deserialize;

use super::upstream::client_config;
use crate::duration::HumanDuration;

/// The vendor must answer within this by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// And within this at most: a login waits for it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// `[migration]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// The vendor's login URL, e.g. `https://api.pixyle.ai/auth/v1/token`.
    pub legacy_login_url: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// PEM CAs an https vendor's certificate must chain to, instead of the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// A validated `[migration]`.
#[derive(Debug, Clone)]
pub struct Migration {
    pub url: Uri,
    pub timeout: Duration,
    /// How an https vendor is verified (`None` for http).
    pub tls: Option<Arc<ClientConfig>>,
}

impl Migration {
    /// Errors are `(key under [migration], problem)`; none quotes the URL,
    /// which could hold a password.
    pub fn of(config: &MigrationConfig) -> Result<Self, (&'static str, String)> {
        const SHAPE: &str = "write it as `https://host/path/of/the/login`";
        let url: Uri = config
            .legacy_login_url
            .parse()
            .map_err(|_| ("legacy_login_url", format!("not a URL; {SHAPE}")))?;
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err((
                    "legacy_login_url",
                    format!("must start with `http://` or `https://`; {SHAPE}"),
                ));
            }
        };
        match url.authority() {
            Some(authority) if authority.as_str().contains('@') => {
                return Err((
                    "legacy_login_url",
                    "must not hold a user or password".into(),
                ));
            }
            Some(authority) if !authority.host().is_empty() => {}
            _ => return Err(("legacy_login_url", format!("names no host; {SHAPE}"))),
        }
        let timeout = config.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err((
                "timeout",
                format!("must be above zero and at most {MAX_TIMEOUT:?}"),
            ));
        }
        let tls = match (https, config.ca_file.as_deref()) {
            (true, ca_file) => {
                let key = ca_file.map_or("legacy_login_url", |_| "ca_file");
                Some(Arc::new(client_config(ca_file).map_err(|e| (key, e))?))
            }
            (false, Some(_)) => {
                return Err((
                    "ca_file",
                    "only has a meaning with an https `legacy_login_url`".into(),
                ));
            }
            (false, None) => None,
        };
        Ok(Self { url, timeout, tls })
    }
}
