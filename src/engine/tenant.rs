//! A tenant as the engine sees it: keys, lifetimes, policies, accounts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::SecretString;

use super::clients::Clients;
use super::keys::KeySet;
use super::password::{self, hash_password};
use crate::store::LockoutPolicy;

/// Token lifetimes in effect for a tenant.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub remember_refresh: Duration,
}

pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: Arc<str>,
    pub active: bool,
    pub email_verified: bool,
    pub demo: bool,
    pub roles: Vec<String>,
    pub company_id: Option<String>,
}

pub struct Company {
    pub id: String,
    pub roles: Vec<String>,
}

/// An account as a tenant is given it.
pub struct UserSpec {
    /// Stable subject; without it, a UUID derived from tenant and email.
    pub id: Option<String>,
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub active: bool,
    pub email_verified: bool,
    /// Demo accounts must have a verified email to log in.
    pub demo: bool,
    pub roles: Vec<String>,
    pub company_id: Option<String>,
}

/// A claim a dialect adds to every token of its tenants.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimValue {
    Subject,
    Email,
    CompanyId,
    /// The holder's first role.
    Role,
    Fixed(serde_json::Value),
}

pub struct Tenant {
    pub id: String,
    pub issuer: String,
    pub audience: String,
    /// Swapped whole when a rotation elsewhere adds a generated key; read
    /// on every issuance and verification without a lock.
    pub keys: ArcSwap<KeySet>,
    pub lifetimes: Lifetimes,
    /// Live sessions a subject may hold; a new one ends the oldest.
    pub max_sessions: u32,
    pub lockout: LockoutPolicy,
    pub uniform_login_errors: bool,
    /// Claims the dialect adds to every token, by name.
    pub extra_claims: Vec<(String, ClaimValue)>,
    /// The configured API-key derivation secret (else one kept in the store).
    pub api_key_secret: Option<SecretString>,
    pub accounts: Accounts,
    /// OAuth clients that may introspect and revoke (`[[clients]]`).
    pub clients: Clients,
    /// Its metrics handles.
    pub meters: crate::meters::TenantMeters,
}

impl Tenant {
    pub fn user_by_email(&self, email: &str) -> Option<&Arc<User>> {
        self.accounts.user_by_email(email)
    }

    pub fn user_by_id(&self, id: &str) -> Option<&Arc<User>> {
        self.accounts.users_by_id.get(id)
    }

    /// The users of the tenant's file.
    pub fn file_users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.accounts.users_by_id.values()
    }

    pub fn company(&self, id: &str) -> Option<&Company> {
        self.accounts.companies.get(id)
    }
}

impl Accounts {
    pub fn user_by_email(&self, email: &str) -> Option<&Arc<User>> {
        self.users_by_email.get(&normalize_email(email))
    }

    /// Whether `id` names a user or a company of the file.
    pub fn has_id(&self, id: &str) -> bool {
        self.users_by_id.contains_key(id) || self.companies.contains_key(id)
    }
}

/// A tenant's users and companies, indexed.
pub struct Accounts {
    users_by_email: HashMap<String, Arc<User>>,
    users_by_id: HashMap<String, Arc<User>>,
    companies: HashMap<String, Company>,
    /// Verified against when the account does not exist, so that an unknown
    /// account costs the same argon2 time as a wrong password.
    pub(crate) dummy_hash: Arc<str>,
    /// The tenant's argon2id parameters: the dummy's, what new passwords
    /// are hashed with and what a directory user's login rehashes to.
    pub(crate) params: argon2::Params,
}

impl Accounts {
    /// Indexes the accounts of tenant `tenant`; costs one argon2 hash (the
    /// dummy) for the first tenant with its parameters.
    pub fn new(
        tenant: &str,
        users: Vec<UserSpec>,
        companies: Vec<Company>,
    ) -> anyhow::Result<Self> {
        let mut accounts = Self::index(tenant, users, companies);
        accounts.dummy_hash = dummy_hash(accounts.params.clone())?;
        Ok(accounts)
    }

    /// The accounts indexed, without the dummy hash: for checking names
    /// against the file's users (an import), never for a login.
    pub fn index(tenant: &str, users: Vec<UserSpec>, companies: Vec<Company>) -> Self {
        let mut users_by_email = HashMap::new();
        let mut users_by_id = HashMap::new();
        for user in &users {
            let email = normalize_email(&user.email);
            let id = user.id.clone().unwrap_or_else(|| {
                let name = format!("{tenant}\u{1f}{email}");
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
            });
            let user = Arc::new(User {
                id: id.clone(),
                email: email.clone(),
                password_hash: user.password_hash.as_str().into(),
                active: user.active,
                email_verified: user.email_verified,
                demo: user.demo,
                roles: user.roles.clone(),
                company_id: user.company_id.clone(),
            });
            users_by_email.insert(email, Arc::clone(&user));
            users_by_id.insert(id, user);
        }
        let params = dummy_params(tenant, &users);
        let companies = companies
            .into_iter()
            .map(|company| (company.id.clone(), company))
            .collect();
        Self {
            users_by_email,
            users_by_id,
            companies,
            dummy_hash: Arc::from(""),
            params,
        }
    }
}

/// A hash of a random password with `params`, one per parameter set for
/// the process: what it is verified against costs the same whichever
/// tenant holds it, and a thousand tenants start without a thousand argon2
/// runs.
fn dummy_hash(params: argon2::Params) -> anyhow::Result<Arc<str>> {
    type Made = HashMap<(u32, u32, u32), Arc<str>>;
    static MADE: std::sync::LazyLock<std::sync::Mutex<Made>> =
        std::sync::LazyLock::new(Default::default);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let id = (params.m_cost(), params.t_cost(), params.p_cost());
    if let Some(hash) = made.get(&id) {
        return Ok(Arc::clone(hash));
    }
    let filler = SecretString::from(uuid::Uuid::new_v4().to_string());
    let hash: Arc<str> = hash_password(&filler, params)?.into();
    made.insert(id, Arc::clone(&hash));
    Ok(hash)
}

pub use crate::store::normalize_email;

/// The argon2 parameters most of the tenant's accounts use, so that an
/// unknown account costs what a known one does. Accounts hashed with other
/// parameters take measurably different time: say so at startup.
fn dummy_params(tenant: &str, users: &[UserSpec]) -> argon2::Params {
    let mut counts: Vec<(argon2::Params, usize)> = Vec::new();
    for user in users {
        let Ok(params) = password::validate_phc(&user.password_hash) else {
            continue;
        };
        let same = |p: &argon2::Params| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (params.m_cost(), params.t_cost(), params.p_cost())
        };
        match counts.iter_mut().find(|(p, _)| same(p)) {
            Some((_, n)) => *n += 1,
            None => counts.push((params, 1)),
        }
    }
    if counts.len() > 1 {
        tracing::warn!(
            tenant = %tenant,
            parameter_sets = counts.len(),
            "accounts use different argon2 parameters: login time can tell them apart; rehash them alike"
        );
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or_else(password::default_params, |(p, _)| p)
}
