//! The one token and credential engine every dialect calls. It knows nothing
//! of HTTP or JSON shapes: it takes typed inputs and answers typed results or
//! an [`EngineError`].

pub mod call;
pub mod clients;
pub mod error;
pub mod hashes;
pub mod keys;
pub mod password;
pub mod tenant;
pub mod tokens;

mod api_keys;
mod directory;
pub mod import;
mod introspect;
mod login;
mod sessions;
mod verified;
mod verify;

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::SecretString;

pub use call::{Call, Outcome};
pub use directory::{DirectoryError, NewUser, UserChange};
pub use error::{Detail, EngineError, EngineResult, ErrorCode, MessageKey, TokenProblem};
pub use introspect::{IntrospectedKind, Introspection, TokenInfo, TokenTypeHint};
pub use login::ATTEMPT_HOLD;
pub use tenant::{ClaimValue, Lifetimes, Tenant};
pub use tokens::TokenType;

use crate::store::Store;
use password::Hasher;

/// A login by email and password.
pub struct LoginRequest {
    pub email: String,
    pub password: SecretString,
    /// Ask for the long-lived refresh token ("remember me", "permanent login").
    pub remember: bool,
    pub client_ip: Option<IpAddr>,
    /// Also hand out the user's API key (the same one until it is rotated).
    pub with_api_key: bool,
    /// The vendor to ask when no directory knows the email (lazy migration).
    pub legacy: Option<Box<dyn Legacy>>,
}

/// The vendor a tenant's users are moving off, asked about a login for an
/// email no directory knows (`[migration]`).
#[async_trait::async_trait]
pub trait Legacy: Send + Sync {
    /// Whether the vendor takes this very login. Any failure to ask is a no.
    async fn accepts(&self) -> bool;
}

/// Tokens handed out by a login or a refresh. Not `Debug`: it holds secrets.
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub refresh_expires_in: Option<u64>,
    pub api_key: Option<String>,
    pub subject: String,
    pub email: Option<String>,
    pub company_id: Option<String>,
}

/// Who a verified credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub subject: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub company: Option<String>,
}

/// What a presented credential is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    AccessToken,
    RefreshToken,
    /// An access or a refresh token (revocation endpoints).
    AnyToken,
    ApiKey,
    /// An access token if it looks like a JWT, else an API key.
    AccessTokenOrApiKey,
}

/// How far a revocation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeScope {
    /// The presented token only (a refresh token always takes its family).
    #[default]
    Token,
    /// The token and its whole session (refresh family).
    Session,
}

/// A freshly generated API key. Not `Debug`: it holds the key.
pub struct ApiKey {
    pub key: String,
    pub subject: String,
    pub email: Option<String>,
}

pub struct Engine {
    store: Arc<dyn Store>,
    hasher: Hasher,
}

impl Engine {
    /// Starts the `max_concurrent_hashes` argon2 threads.
    pub fn new(store: Arc<dyn Store>, max_concurrent_hashes: usize) -> std::io::Result<Self> {
        Ok(Self {
            store,
            hasher: Hasher::new(max_concurrent_hashes)?,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Who a token or key stands for, as the tenant's configuration says now.
struct Identity {
    subject: String,
    email: Option<String>,
    roles: Vec<String>,
    company: Option<String>,
    /// A user of the directory in the store, not of the tenant's file.
    directory: bool,
}

impl Identity {
    fn of_user(user: &tenant::User) -> Self {
        Self {
            subject: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            company: user.company_id.clone(),
            directory: false,
        }
    }

    fn of_directory_user(user: &crate::store::DirectoryUser) -> Self {
        Self {
            subject: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            company: user.company_id.clone(),
            directory: true,
        }
    }

    /// A directory user as its token describes it: the directory is not
    /// read on verify (ending its sessions is what changes there reach).
    fn of_claims(claims: &tokens::Claims) -> Self {
        Self {
            subject: claims.sub.clone(),
            email: claims.email.clone(),
            roles: claims.roles.clone(),
            company: claims.cid.clone(),
            directory: true,
        }
    }

    fn of_company(company: &tenant::Company) -> Self {
        Self {
            subject: company.id.clone(),
            email: None,
            roles: company.roles.clone(),
            company: Some(company.id.clone()),
            directory: false,
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
