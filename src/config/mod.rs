//! Loading and validating configuration: `polyauth.toml`, then every
//! `tenants/*.toml`, then `POLYAUTH__SECTION__KEY` environment variables for
//! the server file. Strict: the server never starts half-configured.
//!
//! Relative paths (store file, dialects directory, key files) resolve against
//! the working directory polyauth runs in.

pub mod keys;
pub mod migration;
pub mod secret;
pub mod server;
pub mod tenant;
pub mod timestamp;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use server::{StoreConfig, StoreKind};

use crate::access::Rules;
use crate::cors::AllowedOrigins;
use crate::dialect::{Dialect, Dialects};
use crate::engine::Lifetimes;
use crate::engine::keys::KeyPair;
use crate::engine::tenant::normalize_email;
pub use server::ServerConfig;
pub use tenant::TenantConfig;

/// Live sessions a subject may hold unless the tenant or its dialect says.
const DEFAULT_MAX_SESSIONS: u32 = 100;

/// A configuration problem: which file, which key, what is wrong.
pub use crate::file_error::FileError as ConfigError;

/// What the upstream proxy may answer besides forward-auth's answers (the
/// gateway's own, which every dialect answers).
const PROXY_ERRORS: &[crate::engine::ErrorCode] = &[
    crate::engine::ErrorCode::MalformedRequest,
    crate::engine::ErrorCode::PayloadTooLarge,
    crate::engine::ErrorCode::RequestTimeout,
];

/// Most argon2 threads `hashing.max_concurrent` may ask for.
pub const MAX_HASHING_THREADS: usize = 1024;

/// A validated tenant, with its key material loaded.
pub struct LoadedTenant {
    pub file: String,
    pub config: TenantConfig,
    pub dialect: Arc<Dialect>,
    /// Empty: a key is generated on first start and kept in the store.
    pub keys: Vec<KeyPair>,
    /// The API-key derivation secret, when the tenant file names one.
    pub api_key_secret: Option<secrecy::SecretString>,
    pub lifetimes: Lifetimes,
    /// Live sessions a subject may hold; a new one ends the oldest.
    pub max_sessions: u32,
    /// The origins answered with CORS headers: the tenant's, else the
    /// dialect's; `None`: no CORS headers at all.
    pub cors: Option<AllowedOrigins>,
    /// The `[[access]]` rules, compiled.
    pub access: Rules,
    /// Where requests that are not polyauth's are proxied.
    pub upstream: Option<upstream::Upstream>,
    /// `[migration]`, validated.
    pub migration: Option<migration::Migration>,
}

/// Everything the gateway needs to start.
pub struct Loaded {
    /// The directory it was loaded from (what a reload reads again).
    pub dir: PathBuf,
    pub server: ServerConfig,
    pub tenants: Vec<LoadedTenant>,
    pub dialects: Dialects,
}

/// Loads `dir/polyauth.toml` and `dir/tenants/*.toml`, layering the
/// process environment over the server file.
pub fn load(dir: &Path) -> Result<Loaded, ConfigError> {
    load_with_env(dir, None)
}

/// As [`load`], with an explicit map for the `POLYAUTH__…` layering instead
/// of the process environment. Secrets named by `*_env` keys are still read
/// from the process environment.
pub fn load_with_env(
    dir: &Path,
    env: Option<HashMap<String, String>>,
) -> Result<Loaded, ConfigError> {
    let server = load_server(dir, env)?;
    load_tenants(dir, server)
}

/// The server file of `dir` alone, with the process environment over it
/// (what a reload compares with the running one).
pub fn load_server_file(dir: &Path) -> Result<ServerConfig, ConfigError> {
    load_server(dir, None)
}

/// The dialects and tenant files of `dir`, under `server` (a reload keeps
/// the running server settings: they need a restart).
pub fn load_tenants(dir: &Path, server: ServerConfig) -> Result<Loaded, ConfigError> {
    let dialects = Dialects::load(server.dialects_dir.as_deref())?;
    let tenants_dir = dir.join("tenants");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&tenants_dir)
        .map_err(|e| {
            ConfigError::new(
                tenants_dir.display(),
                "",
                format!("cannot read directory ({e})"),
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ConfigError::new(
            tenants_dir.display(),
            "",
            "no tenant files (tenants/*.toml)",
        ));
    }
    let mut tenants = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let config: TenantConfig = deserialize_file(&path)?;
        tenants.push(validate_tenant(file, config, &dialects)?);
    }
    check_unique(&tenants)?;
    Ok(Loaded {
        dir: dir.to_owned(),
        server,
        tenants,
        dialects,
    })
}

fn load_server(
    dir: &Path,
    env: Option<HashMap<String, String>>,
) -> Result<ServerConfig, ConfigError> {
    let path = dir.join("polyauth.toml");
    let file = path.display().to_string();
    if !path.is_file() {
        return Err(ConfigError::new(&file, "", "file not found"));
    }
    let environment = config::Environment::with_prefix("POLYAUTH")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("trusted_proxies")
        .source(env);
    let built = config::Config::builder()
        .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .map_err(|e| ConfigError::new(&file, "", e.to_string()))?;
    let server: ServerConfig = serde_path_to_error::deserialize(built)
        .map_err(|e| ConfigError::new(&file, e.path().to_string(), e.into_inner().to_string()))?;
    for (key, value) in [
        ("max_body_bytes", server.max_body_bytes),
        ("max_connections", server.max_connections),
        ("max_connections_per_ip", server.max_connections_per_ip),
    ] {
        if value == 0 {
            return Err(ConfigError::new(&file, key, "must be above zero"));
        }
    }
    if let Err(message) = server.admin_token() {
        let key = match server.admin_token_file {
            Some(_) => "admin_token_file",
            None => "admin_token_env",
        };
        return Err(ConfigError::new(&file, key, message));
    }
    // Each slot is a thread with its own argon2 buffer.
    if !(1..=MAX_HASHING_THREADS).contains(&server.hashing.max_concurrent) {
        return Err(ConfigError::new(
            &file,
            "hashing.max_concurrent",
            format!("must be between 1 and {MAX_HASHING_THREADS}"),
        ));
    }
    if server.workers == Some(0) {
        return Err(ConfigError::new(&file, "workers", "must be above zero"));
    }
    if server.store.kind == StoreKind::Redis {
        validate_redis(&file, &server.store)?;
    }
    Ok(server)
}

fn validate_redis(file: &str, store: &StoreConfig) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let url = store
        .redis_url()
        .map_err(|problem| ConfigError::new(file, "store.url", problem))?;
    if let Err(e) = redis::Client::open(url.expose_secret()) {
        // The parser's message can quote the URL, password and all: only its kind is told.
        return Err(ConfigError::new(
            file,
            "store.url",
            format!("not a usable Redis URL ({:?})", e.kind()),
        ));
    }
    let prefix = &store.key_prefix;
    if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.contains(char::is_whitespace) {
        return Err(ConfigError::new(
            file,
            "store.key_prefix",
            "must be non-empty, without `{`, `}` or spaces (the tenant's `{hash tag}` follows it)",
        ));
    }
    for (key, value) in [
        ("store.timeout", store.timeout.0),
        ("store.connect_timeout", store.connect_timeout.0),
    ] {
        if value > Duration::from_secs(30) {
            return Err(ConfigError::new(
                file,
                key,
                "at most 30s: a request waits this long",
            ));
        }
    }
    Ok(())
}

fn deserialize_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let file = path.display().to_string();
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::new(&file, "", e.to_string()))?;
    serde_path_to_error::deserialize(built)
        .map_err(|e| ConfigError::new(&file, e.path().to_string(), e.into_inner().to_string()))
}

fn validate_tenant(
    file: String,
    config: TenantConfig,
    dialects: &Dialects,
) -> Result<LoadedTenant, ConfigError> {
    let err = |key: &str, problem: String| ConfigError::new(&file, key, problem);
    let id_ok = !config.id.is_empty()
        && config
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !id_ok {
        return Err(err(
            "id",
            "use letters, digits, `-`, `_` and `.` only".into(),
        ));
    }
    let dialect = dialects.get(&config.dialect).cloned().ok_or_else(|| {
        err(
            "dialect",
            format!(
                "unknown dialect `{}` (known: {})",
                config.dialect,
                dialects.names().join(", ")
            ),
        )
    })?;
    if let Some(prefix) = &config.path_prefix {
        let valid = crate::dialect::is_plain_path(prefix)
            && prefix.len() > 1
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && !crate::reserved::is_reserved(prefix)
            // Nor hold the gateway's own segment further down: under a mount
            // `/api/_polyauth/verify`, paths would name two verify endpoints.
            && !prefix
                .split('/')
                .any(|segment| format!("/{segment}") == crate::reserved::POLYAUTH);
        if !valid {
            return Err(err(
                "path_prefix",
                format!("`{prefix}` must look like `/name` (no trailing slash, not reserved)"),
            ));
        }
    }
    if config.path_prefix.is_none() && config.hosts.is_empty() {
        return Err(err(
            "path_prefix",
            "give a `path_prefix`, `hosts`, or both".into(),
        ));
    }
    for (i, host) in config.hosts.iter().enumerate() {
        if host.is_empty() || host.contains(['/', ' ', ':']) {
            return Err(err(
                &format!("hosts[{i}]"),
                format!("`{host}` is not a host name"),
            ));
        }
        if host.ends_with('.') {
            return Err(err(
                &format!("hosts[{i}]"),
                format!("write `{host}` without its trailing dot (a request's is ignored)"),
            ));
        }
    }
    if config.issuer.trim().is_empty() {
        return Err(err("issuer", "must not be empty".into()));
    }
    if config.audience.trim().is_empty() {
        return Err(err("audience", "must not be empty".into()));
    }
    let upstream = upstream::Upstream::of(&config).map_err(|(key, problem)| err(key, problem))?;
    if upstream.is_some() {
        for code in PROXY_ERRORS {
            if !dialect.answers(*code) {
                return Err(err(
                    "upstream",
                    format!(
                        "dialect `{}` has no answer for `{}`, which the proxy can meet; \
                         map it in the dialect or give `[errors.default]`",
                        dialect.name,
                        code.as_str()
                    ),
                ));
            }
        }
    }
    let migration = match &config.migration {
        None => None,
        Some(_)
            if !dialect
                .routes
                .iter()
                .any(|r| r.operation == crate::dialect::operation::Operation::Login) =>
        {
            return Err(err(
                "migration",
                format!(
                    "dialect `{}` has no login route to replay to the vendor",
                    dialect.name
                ),
            ));
        }
        Some(written) => Some(
            migration::Migration::of(written)
                .map_err(|(key, problem)| err(&format!("migration.{key}"), problem))?,
        ),
    };
    let cors = match &config.cors_origins {
        Some(origins) => AllowedOrigins::parse(origins)
            .map_err(|(i, problem)| err(&format!("cors_origins[{i}]"), problem))?,
        None => dialect.cors.clone(),
    };
    if config.lockout.max_failures == 0 {
        return Err(err("lockout.max_failures", "must be at least 1".into()));
    }

    let mut kids = HashSet::new();
    let mut keys = Vec::new();
    for (i, key) in config.keys.iter().enumerate() {
        if key.kid.is_empty() || !kids.insert(key.kid.clone()) {
            return Err(err(
                &format!("keys[{i}].kid"),
                format!("`{}` is empty or repeated", key.kid),
            ));
        }
        let pair =
            keys::load_configured(key).map_err(|(k, e)| err(&format!("keys[{i}].{k}"), e))?;
        keys.push(pair);
    }
    if let Some((i, last)) = keys::all_retired(&config.keys, crate::store::unix_now()) {
        return Err(err(
            &format!("keys[{i}].retire_after"),
            format!(
                "every key is retired (the last at {last}): none is left to sign; put a new key first"
            ),
        ));
    }

    let api_key_secret = secret::SecretSource::pick(
        "api_key_secret",
        config.api_key_secret_file.as_ref(),
        config.api_key_secret_env.as_ref(),
    )
    .map_err(|e| err("api_key_secret_file", e))?
    .map(|source| {
        let key = match source {
            secret::SecretSource::File(_) => "api_key_secret_file",
            secret::SecretSource::Env(_) => "api_key_secret_env",
        };
        let secret = source.read().map_err(|e| err(key, e))?;
        if secrecy::ExposeSecret::expose_secret(&secret).len() < 32 {
            return Err(err(key, "the secret must be at least 32 bytes".into()));
        }
        Ok(secret)
    })
    .transpose()?;

    let mut emails = HashSet::new();
    let mut ids = HashSet::new();
    for (i, user) in config.users.iter().enumerate() {
        let email = normalize_email(&user.email);
        if email.contains(char::is_control) {
            return Err(err(
                &format!("users[{i}].email"),
                format!("{:?} holds a control character", user.email),
            ));
        }
        if !email.contains('@') || !emails.insert(email) {
            return Err(err(
                &format!("users[{i}].email"),
                format!("`{}` is not an email or is repeated", user.email),
            ));
        }
        if let Some(id) = &user.id {
            if id.is_empty() || !ids.insert(id.clone()) {
                return Err(err(&format!("users[{i}].id"), "empty or repeated".into()));
            }
        }
        crate::engine::hashes::check(&user.password_hash)
            .map_err(|e| err(&format!("users[{i}].password_hash"), e))?;
        check_roles(&user.roles).map_err(|(j, e)| err(&format!("users[{i}].roles[{j}]"), e))?;
    }
    let mut companies = HashSet::new();
    for (i, company) in config.companies.iter().enumerate() {
        if company.id.trim().is_empty() || !companies.insert(company.id.clone()) {
            return Err(err(
                &format!("companies[{i}].id"),
                "empty or repeated".into(),
            ));
        }
        check_roles(&company.roles)
            .map_err(|(j, e)| err(&format!("companies[{i}].roles[{j}]"), e))?;
    }
    check_clients(&config.clients).map_err(|(key, e)| err(&key, e))?;

    let access = Rules::compile(&config.access).map_err(|(key, e)| err(&key, e))?;
    for (i, rule) in config.access.iter().enumerate() {
        check_roles(&rule.roles).map_err(|(j, e)| err(&format!("access[{i}].roles[{j}]"), e))?;
    }

    let pick = |own: Option<crate::duration::HumanDuration>,
                dialect: Option<crate::duration::HumanDuration>,
                fallback: u64| {
        own.or(dialect)
            .map_or(Duration::from_secs(fallback), |d| d.0)
    };
    let max_sessions = config
        .tokens
        .max_sessions
        .or(dialect.tokens.max_sessions)
        .unwrap_or(DEFAULT_MAX_SESSIONS);
    if max_sessions == 0 {
        let key = if config.tokens.max_sessions.is_some() {
            "tokens.max_sessions"
        } else {
            "dialect"
        };
        return Err(err(key, "`max_sessions` must be at least 1".into()));
    }
    let lifetimes = Lifetimes {
        access: pick(config.tokens.access_ttl, dialect.tokens.access_ttl, 3600),
        refresh: pick(
            config.tokens.refresh_ttl,
            dialect.tokens.refresh_ttl,
            86_400,
        ),
        remember_refresh: pick(
            config.tokens.remember_refresh_ttl,
            dialect.tokens.remember_refresh_ttl,
            30 * 86_400,
        ),
    };
    Ok(LoadedTenant {
        file,
        config,
        dialect,
        keys,
        api_key_secret,
        lifetimes,
        max_sessions,
        cors,
        access,
        upstream,
        migration,
    })
}

/// Client ids are unique, non-empty printable ASCII (RFC 6749 Appendix A.1:
/// `VSCHAR`); secret hashes are `sha256:<64 lowercase hex>`. The error names
/// the key.
fn check_clients(clients: &[tenant::ClientConfig]) -> Result<(), (String, String)> {
    let mut ids = HashSet::new();
    for (i, client) in clients.iter().enumerate() {
        let printable = client.id.bytes().all(|b| (b' '..=b'~').contains(&b));
        if client.id.is_empty() || !printable {
            let problem = format!("{:?} must be printable ASCII, not empty", client.id);
            return Err((format!("clients[{i}].id"), problem));
        }
        if !ids.insert(client.id.as_str()) {
            let problem = format!("`{}` is repeated", client.id);
            return Err((format!("clients[{i}].id"), problem));
        }
        crate::engine::clients::SecretHash::parse(&client.secret_hash)
            .map_err(|problem| (format!("clients[{i}].secret_hash"), problem))?;
    }
    Ok(())
}

/// Roles travel comma-separated in `X-Auth-Roles`: each must be a
/// non-empty printable ASCII text without `,`. The error names the index.
fn check_roles(roles: &[String]) -> Result<(), (usize, String)> {
    for (j, role) in roles.iter().enumerate() {
        let problem = if role.is_empty() {
            "a role must not be empty"
        } else if role.contains(',') {
            "a role must not hold `,` (roles are sent comma-separated in X-Auth-Roles)"
        } else if role.contains(|c: char| c.is_ascii_control()) {
            "a role must not hold control characters (it is sent in X-Auth-Roles)"
        } else if !role.is_ascii() {
            "a role must be ASCII (it is sent in X-Auth-Roles)"
        } else {
            continue;
        };
        return Err((j, format!("{role:?}: {problem}")));
    }
    Ok(())
}

/// Tenant ids, path prefixes and hosts must each be unique.
fn check_unique(tenants: &[LoadedTenant]) -> Result<(), ConfigError> {
    let mut ids = HashMap::new();
    let mut prefixes = HashMap::new();
    let mut hosts = HashMap::new();
    for tenant in tenants {
        let config = &tenant.config;
        if let Some(other) = ids.insert(config.id.clone(), &tenant.file) {
            return Err(ConfigError::new(
                &tenant.file,
                "id",
                format!("`{}` is already the id of {other}", config.id),
            ));
        }
        if let Some(prefix) = &config.path_prefix {
            if let Some(other) = prefixes.insert(prefix.clone(), &tenant.file) {
                return Err(ConfigError::new(
                    &tenant.file,
                    "path_prefix",
                    format!("`{prefix}` is already the prefix of {other}"),
                ));
            }
        }
        for (i, host) in config.hosts.iter().enumerate() {
            if let Some(other) = hosts.insert(host.to_ascii_lowercase(), &tenant.file) {
                return Err(ConfigError::new(
                    &tenant.file,
                    format!("hosts[{i}]"),
                    format!("`{host}` is already a host of {other}"),
                ));
            }
        }
    }
    Ok(())
}
