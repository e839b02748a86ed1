//! `tenants/<id>.toml`: one tenant, its dialect, keys, users and companies.

use std::path::PathBuf;

use serde::Deserialize;

use crate::access::RuleSpec;
use crate::duration::HumanDuration;
use crate::engine::clients::{Clients, SecretHash};
use crate::engine::keys::KeySet;
use secrecy::SecretString;

use crate::engine::tenant::{Accounts, ClaimValue, Company, Lifetimes, Tenant, UserSpec};
use crate::store::LockoutPolicy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    pub dialect: String,
    /// The tenant is reached under this prefix ...
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// ... and/or by `Host` header (any case; port and trailing dot ignored).
    #[serde(default)]
    pub hosts: Vec<String>,
    pub issuer: String,
    pub audience: String,
    /// `http://host:port/base`: every request under the mount that is no
    /// dialect route or gateway path is proxied here, after the same
    /// decision as forward-auth.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The upstream's answer must begin within this time (default 30 s).
    #[serde(default)]
    pub upstream_timeout: Option<HumanDuration>,
    /// The largest proxied request body (default 1 GiB).
    #[serde(default)]
    pub upstream_max_body_bytes: Option<u64>,
    /// PEM certificates of the CAs an https upstream's certificate must
    /// chain to, instead of the system's trust store.
    #[serde(default)]
    pub upstream_ca_file: Option<PathBuf>,
    /// Browser origins answered with CORS headers: `["*"]` or
    /// `scheme://host[:port]` each. Absent: the dialect's default (PayHub's
    /// `*`); `[]`: none, whatever the dialect says.
    #[serde(default)]
    pub cors_origins: Option<Vec<String>>,
    /// Answer unknown users exactly as wrong passwords.
    #[serde(default)]
    pub uniform_login_errors: bool,
    #[serde(default)]
    pub tokens: TokensConfig,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Secret API keys are derived from (at least 32 bytes); without it one
    /// is generated and kept in the store.
    #[serde(default)]
    pub api_key_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub api_key_secret_env: Option<String>,
    #[serde(default)]
    pub lockout: LockoutConfig,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub companies: Vec<CompanyConfig>,
    /// Who may reach which original request, first match wins (`[[access]]`).
    #[serde(default)]
    pub access: Vec<RuleSpec>,
    /// OAuth clients that may call introspection and revocation.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// The vendor the tenant's users are moving off (lazy migration).
    #[serde(default)]
    pub migration: Option<super::migration::MigrationConfig>,
}

impl TenantConfig {
    /// Its file's users and companies, indexed. Costs one argon2 hash.
    pub fn accounts(&self) -> anyhow::Result<Accounts> {
        let users = self.users.iter().map(UserConfig::spec).collect();
        let companies = self.companies.iter().map(CompanyConfig::spec).collect();
        Accounts::new(&self.id, users, companies)
    }

    /// Its file's users and companies, indexed for lookups only (no dummy
    /// hash: never for a login).
    pub fn file_accounts(&self) -> Accounts {
        let users = self.users.iter().map(UserConfig::spec).collect();
        let companies = self.companies.iter().map(CompanyConfig::spec).collect();
        Accounts::index(&self.id, users, companies)
    }

    /// The engine's tenant, given its loaded keys, the lifetimes and session
    /// cap in effect, the dialect's claims and the API-key secret. Costs one
    /// argon2 hash.
    pub fn tenant(
        &self,
        keys: KeySet,
        (lifetimes, max_sessions): (Lifetimes, u32),
        extra_claims: Vec<(String, ClaimValue)>,
        api_key_secret: Option<SecretString>,
        meters: crate::meters::TenantMeters,
    ) -> anyhow::Result<Tenant> {
        let clients = self
            .clients
            .iter()
            .map(|client| Ok((client.id.clone(), SecretHash::parse(&client.secret_hash)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(anyhow::Error::msg)?;
        Ok(Tenant {
            id: self.id.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            keys: arc_swap::ArcSwap::from_pointee(keys),
            lifetimes,
            max_sessions,
            lockout: LockoutPolicy {
                max_failures: self.lockout.max_failures,
                window: self.lockout.window.0,
                lock_for: self.lockout.lock_for.0,
                hold: crate::engine::ATTEMPT_HOLD,
            },
            uniform_login_errors: self.uniform_login_errors,
            extra_claims,
            api_key_secret,
            accounts: self.accounts()?,
            clients: Clients::new(clients),
            meters,
        })
    }
}

/// Token lifetimes; each falls back to the dialect's default.
pub use crate::dialect::model::TokensConfig;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    pub alg: KeyAlgorithm,
    /// PEM private key (EdDSA, ES256, RS256).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// Shared secret (HS256).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// From this instant on the key neither signs nor verifies, and leaves
    /// the JWKS; decided at each request. A date already past is fine.
    #[serde(default)]
    pub retire_after: Option<super::timestamp::Timestamp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    #[serde(default = "default_lock_window")]
    pub window: HumanDuration,
    #[serde(default = "default_lock_window")]
    pub lock_for: HumanDuration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            window: default_lock_window(),
            lock_for: default_lock_window(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Stable subject; defaults to a UUID derived from tenant and email.
    #[serde(default)]
    pub id: Option<String>,
    pub email: String,
    pub password_hash: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "yes")]
    pub email_verified: bool,
    /// Demo accounts must have a verified email to log in.
    #[serde(default)]
    pub demo: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub company_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// An OAuth client of the tenant (RFC 6749 §2): its id and the hash of
/// its secret, as `polyauth hash-secret` prints it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: String,
    /// `sha256:<64 lowercase hex>` of the secret.
    pub secret_hash: String,
}

impl UserConfig {
    fn spec(&self) -> UserSpec {
        UserSpec {
            id: self.id.clone(),
            email: self.email.clone(),
            password_hash: self.password_hash.clone(),
            active: self.active,
            email_verified: self.email_verified,
            demo: self.demo,
            roles: self.roles.clone(),
            company_id: self.company_id.clone(),
        }
    }
}

impl CompanyConfig {
    fn spec(&self) -> Company {
        Company {
            id: self.id.clone(),
            roles: self.roles.clone(),
        }
    }
}

fn default_max_failures() -> u32 {
    5
}

fn default_lock_window() -> HumanDuration {
    HumanDuration::secs(15 * 60)
}

fn yes() -> bool {
    true
}
