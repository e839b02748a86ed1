//! `polyauth.toml`: the listeners, the store, the hashing pool.

use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

use super::secret::SecretSource;
use crate::duration::HumanDuration;
use crate::store::{RedisSettings, StoreSettings};

/// Where `store.kind = "redis"` connects when no URL is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// The server file, after defaults and `POLYAUTH__…` environment layering.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Public listener: dialect routes, verify, JWKS.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Admin listener: health and metrics, never public.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Extra or overriding dialect files.
    #[serde(default)]
    pub dialects_dir: Option<PathBuf>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Longest wait for a request body, from the end of its head.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: HumanDuration,
    /// Connections open at once on the public listener.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Peers allowed to set `X-Forwarded-For`.
    #[serde(default = "default_trusted_proxies")]
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP worker threads; defaults to the number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// `text` (default) or `json` log lines.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Record metrics and serve them at the admin listener's `/metrics`.
    #[serde(default = "default_metrics")]
    pub metrics: bool,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub hashing: HashingConfig,
    /// Where the admin API's bearer token is read from (one at most); with
    /// neither, the admin API is off and answers 404.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// Reload on a change under `tenants/` or `dialects_dir` (as SIGHUP does).
    #[serde(default)]
    pub watch_config: bool,
}

impl ServerConfig {
    /// The keys whose value differs in `other`: each needs a restart to
    /// take effect (a reload leaves them as they are).
    pub fn needs_restart(&self, other: &ServerConfig) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut differs = |key: &'static str, differ: bool| {
            if differ {
                changed.push(key);
            }
        };
        differs("listen", self.listen != other.listen);
        differs("admin_listen", self.admin_listen != other.admin_listen);
        differs("dialects_dir", self.dialects_dir != other.dialects_dir);
        differs(
            "max_body_bytes",
            self.max_body_bytes != other.max_body_bytes,
        );
        differs("body_timeout", self.body_timeout != other.body_timeout);
        differs(
            "max_connections",
            self.max_connections != other.max_connections,
        );
        differs(
            "max_connections_per_ip",
            self.max_connections_per_ip != other.max_connections_per_ip,
        );
        differs(
            "trusted_proxies",
            self.trusted_proxies != other.trusted_proxies,
        );
        differs("workers", self.workers != other.workers);
        differs("log_format", self.log_format != other.log_format);
        differs("metrics", self.metrics != other.metrics);
        differs(
            "store",
            format!("{:?}", self.store) != format!("{:?}", other.store),
        );
        differs(
            "hashing.max_concurrent",
            self.hashing.max_concurrent != other.hashing.max_concurrent,
        );
        differs(
            "admin_token_file / admin_token_env",
            (&self.admin_token_file, &self.admin_token_env)
                != (&other.admin_token_file, &other.admin_token_env),
        );
        differs("watch_config", self.watch_config != other.watch_config);
        changed
    }
}

/// Shortest admin token accepted, in bytes: it guards every user.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

impl ServerConfig {
    /// The admin API's bearer token, `None` when the API is off. The error
    /// never holds the token.
    pub fn admin_token(&self) -> Result<Option<SecretString>, String> {
        use secrecy::ExposeSecret;
        let Some(source) = SecretSource::pick(
            "admin_token",
            self.admin_token_file.as_ref(),
            self.admin_token_env.as_ref(),
        )?
        else {
            return Ok(None);
        };
        let token = source.read()?;
        let length = token.expose_secret().len();
        if length < MIN_ADMIN_TOKEN_BYTES {
            return Err(format!(
                "the admin token is {length} bytes; it must be at least {MIN_ADMIN_TOKEN_BYTES} (`openssl rand -base64 32` makes one)"
            ));
        }
        Ok(Some(token))
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub kind: StoreKind,
    /// Embedded store file.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Redis URL; may hold a password, so `url_env` / `url_file` are preferred.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Put before every Redis key, so several deployments can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for one Redis call; past it the call fails closed.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Longest wait for a connection to Redis.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

impl StoreConfig {
    /// What the store module opens.
    pub fn settings(&self) -> Result<StoreSettings, String> {
        Ok(match self.kind {
            StoreKind::Embedded => StoreSettings::Embedded {
                path: self.path.clone(),
            },
            StoreKind::Redis => StoreSettings::Redis(RedisSettings {
                url: self.redis_url()?,
                key_prefix: self.key_prefix.clone(),
                timeout: self.timeout.0,
                connect_timeout: self.connect_timeout.0,
            }),
        })
    }

    /// The Redis URL from `url`, `url_file` or `url_env` (one at most),
    /// else a local Redis. The error never holds the URL: it may hold a password.
    pub fn redis_url(&self) -> Result<SecretString, String> {
        let source = SecretSource::pick("url", self.url_file.as_ref(), self.url_env.as_ref())?;
        match (&self.url, source) {
            (Some(_), Some(_)) => Err("give only one of `url`, `url_file` and `url_env`".into()),
            (Some(url), None) => Ok(SecretString::from(url.clone())),
            (None, Some(source)) => source.read(),
            (None, None) => Ok(SecretString::from(DEFAULT_REDIS_URL.to_owned())),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::default(),
            path: default_store_path(),
            url: None,
            url_env: None,
            url_file: None,
            key_prefix: default_key_prefix(),
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashingConfig {
    /// argon2 verifications running at once, each on its own hashing thread.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            max_concurrent: default_max_concurrent(),
        }
    }
}

fn default_metrics() -> bool {
    true
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

fn default_body_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

fn default_max_connections() -> usize {
    25_000
}

fn default_max_connections_per_ip() -> usize {
    256
}

fn default_trusted_proxies() -> Vec<IpNet> {
    vec!["127.0.0.1/32".parse().expect("literal CIDR")]
}

fn default_store_path() -> PathBuf {
    PathBuf::from("data/polyauth.redb")
}

fn default_max_concurrent() -> usize {
    2
}

fn default_key_prefix() -> String {
    "polyauth".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(3)
}
