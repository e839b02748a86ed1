//! The one token and credential engine every dialect calls. It knows nothing
//! of HTTP or JSON shapes: it takes typed inputs and answers typed results or
//! an [`EngineError`].

pub mod error;
pub mod keys;
pub mod password;
pub mod tenant;
pub mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

pub use error::{EngineError, EngineResult, TokenProblem};
pub use tenant::{Lifetimes, Tenant};
pub use tokens::TokenType;

use crate::store::{ApiKeyRecord, Attempt, FamilyUse, Store, TokenState, unix_now};
use password::Hasher;
use tokens::{Claims, Expectation};

/// Prefix of every API key polyauth issues; never a valid JWT.
const API_KEY_PREFIX: &str = "pa_";

/// A login by email and password.
pub struct LoginRequest {
    pub email: String,
    pub password: SecretString,
    /// Ask for the long-lived refresh token ("remember me", "permanent login").
    pub remember: bool,
    pub client_ip: Option<IpAddr>,
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
    pub fn new(store: Arc<dyn Store>, max_concurrent_hashes: usize) -> Self {
        Self {
            store,
            hasher: Hasher::new(max_concurrent_hashes),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Email and password in, tokens out. Lockout is checked before any
    /// hashing; an unknown account is hashed against a dummy.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn login(&self, tenant: &Tenant, request: LoginRequest) -> EngineResult<Grant> {
        let account = format!("acct:{}", tenant::normalize_email(&request.email));
        let ip = request.client_ip.map(|ip| format!("ip:{ip}"));
        self.reserve_attempts(tenant, &account, ip.as_deref())
            .await?;

        let user = tenant.user_by_email(&request.email).cloned();
        let hash = user.as_ref().map_or_else(
            || Arc::clone(&tenant.dummy_hash),
            |u| Arc::clone(&u.password_hash),
        );
        let matches = self.hasher.verify(hash, request.password).await?;
        let user = match (user, matches) {
            (Some(user), true) => user,
            (user, _) => {
                return Err(match (user, tenant.uniform_login_errors) {
                    (_, true) => EngineError::InvalidCredentials,
                    (None, false) => EngineError::UnknownUser,
                    (Some(_), false) => EngineError::WrongPassword,
                });
            }
        };
        self.store
            .lockout_release(&tenant.id, &account, true)
            .await?;
        if let Some(ip) = &ip {
            self.store.lockout_release(&tenant.id, ip, false).await?;
        }
        if !user.active {
            return Err(EngineError::AccountInactive);
        }
        if user.demo && !user.email_verified {
            return Err(EngineError::EmailUnverified);
        }
        let refresh_ttl = if request.remember {
            tenant.lifetimes.remember_refresh
        } else {
            tenant.lifetimes.refresh
        };
        let identity = Identity {
            subject: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            company: user.company_id.clone(),
        };
        self.start_session(tenant, identity, refresh_ttl).await
    }

    /// A company logs in by its registered id (no password).
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn client_login(
        &self,
        tenant: &Tenant,
        company_id: &str,
        client_ip: Option<IpAddr>,
    ) -> EngineResult<Grant> {
        let ip = client_ip.map(|ip| format!("ip:{ip}"));
        if let Some(ip) = &ip {
            self.reserve(tenant, ip).await?;
        }
        let Some(company) = tenant.company(company_id) else {
            return Err(EngineError::UnknownUser);
        };
        if let Some(ip) = &ip {
            self.store.lockout_release(&tenant.id, ip, false).await?;
        }
        let identity = Identity {
            subject: company.id.clone(),
            email: None,
            roles: company.roles.clone(),
            company: Some(company.id.clone()),
        };
        self.start_session(tenant, identity, tenant.lifetimes.refresh)
            .await
    }

    /// A refresh token in, a new access token out; with `rotate`, a new
    /// refresh token too, and the presented one can never be used again.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn refresh(
        &self,
        tenant: &Tenant,
        refresh_token: &str,
        rotate: bool,
    ) -> EngineResult<Grant> {
        let claims = self.check_token(tenant, refresh_token, TokenType::Refresh)?;
        let family = claims
            .sid
            .clone()
            .ok_or(EngineError::InvalidToken(TokenProblem::Invalid))?;
        let next_jti = rotate.then(new_id);
        match self
            .store
            .family_use(&tenant.id, &family, &claims.jti, next_jti.as_deref())
            .await?
        {
            FamilyUse::Current => {}
            FamilyUse::Reused => {
                tracing::warn!(tenant = %tenant.id, "rotated refresh token presented again; session revoked");
                return Err(EngineError::InvalidToken(TokenProblem::Revoked));
            }
            FamilyUse::Dead => return Err(EngineError::InvalidToken(TokenProblem::Revoked)),
        }
        let now = unix_now();
        let access_token = self.issue(tenant, &claims, TokenType::Access, new_id(), now)?;
        let refresh_token = match next_jti {
            Some(jti) => Some(self.issue(tenant, &claims, TokenType::Refresh, jti, now)?),
            None => None,
        };
        Ok(Grant {
            access_token,
            refresh_token,
            expires_in: tenant.lifetimes.access.as_secs(),
            refresh_expires_in: Some(claims.exp.saturating_sub(now)),
            api_key: None,
            subject: claims.sub,
            email: claims.email,
            company_id: claims.cid,
        })
    }

    /// Makes a token dead until its expiry. A refresh token takes its whole
    /// family; with [`RevokeScope::Session`] an access token does too.
    /// Returns only once the revocation is written.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn revoke(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
        scope: RevokeScope,
    ) -> EngineResult<()> {
        let claims = match kind {
            CredentialKind::RefreshToken => self.check_token(tenant, token, TokenType::Refresh)?,
            CredentialKind::AnyToken => match self.check_token(tenant, token, TokenType::Access) {
                Err(EngineError::InvalidToken(TokenProblem::WrongType)) => {
                    self.check_token(tenant, token, TokenType::Refresh)?
                }
                other => other?,
            },
            _ => self.check_token(tenant, token, TokenType::Access)?,
        };
        self.ensure_active(tenant, &claims).await?;
        let whole_family = claims.typ == TokenType::Refresh || scope == RevokeScope::Session;
        match (&claims.sid, whole_family) {
            (Some(family), true) => {
                // The family lives as long as its refresh tokens can.
                let until = claims
                    .exp
                    .max(unix_now() + tenant.lifetimes.remember_refresh.as_secs());
                self.store.family_revoke(&tenant.id, family, until).await?;
                if claims.typ == TokenType::Access {
                    self.store
                        .revoke_token(&tenant.id, &claims.jti, claims.exp)
                        .await?;
                }
            }
            _ => {
                self.store
                    .revoke_token(&tenant.id, &claims.jti, claims.exp)
                    .await?
            }
        }
        Ok(())
    }

    /// A new API key for the holder of `access_token`; the previous one stops
    /// working. Only its hash is stored.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn generate_api_key(
        &self,
        tenant: &Tenant,
        access_token: &str,
    ) -> EngineResult<ApiKey> {
        let claims = self.check_token(tenant, access_token, TokenType::Access)?;
        self.ensure_active(tenant, &claims).await?;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let record = ApiKeyRecord {
            subject: claims.sub.clone(),
            created_at: unix_now(),
        };
        self.store
            .api_key_rotate(&tenant.id, &api_key_hash(&key), &record)
            .await?;
        Ok(ApiKey {
            key,
            subject: claims.sub,
            email: claims.email,
        })
    }

    /// Who holds this credential; with `company`, it must belong to that company.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn verify(
        &self,
        tenant: &Tenant,
        credential: &str,
        kind: CredentialKind,
        company: Option<&str>,
    ) -> EngineResult<Principal> {
        if credential.is_empty() {
            return Err(EngineError::MissingToken);
        }
        let as_api_key = match kind {
            CredentialKind::ApiKey => true,
            CredentialKind::AccessTokenOrApiKey => !looks_like_jwt(credential),
            _ => false,
        };
        let principal = if as_api_key {
            self.verify_api_key(tenant, credential).await?
        } else {
            let claims = self.check_token(tenant, credential, TokenType::Access)?;
            self.ensure_active(tenant, &claims).await?;
            Principal {
                tenant: tenant.id.clone(),
                subject: claims.sub,
                email: claims.email,
                roles: claims.roles,
                company: claims.cid,
            }
        };
        match company {
            Some(expected) if principal.company.as_deref() != Some(expected) => {
                Err(EngineError::Forbidden)
            }
            _ => Ok(principal),
        }
    }

    async fn verify_api_key(&self, tenant: &Tenant, key: &str) -> EngineResult<Principal> {
        let invalid = EngineError::InvalidToken(TokenProblem::Invalid);
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(invalid);
        }
        let record = self
            .store
            .api_key_get(&tenant.id, &api_key_hash(key))
            .await?
            .ok_or(invalid)?;
        let user = tenant
            .user_by_id(&record.subject)
            .filter(|u| u.active)
            .ok_or(EngineError::InvalidToken(TokenProblem::Invalid))?;
        Ok(Principal {
            tenant: tenant.id.clone(),
            subject: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            company: user.company_id.clone(),
        })
    }

    fn check_token(&self, tenant: &Tenant, token: &str, typ: TokenType) -> EngineResult<Claims> {
        if token.is_empty() {
            return Err(EngineError::MissingToken);
        }
        let expect = Expectation {
            issuer: &tenant.issuer,
            audience: &tenant.audience,
            tenant: &tenant.id,
            typ,
        };
        tokens::verify(&tenant.keys, token, &expect).map_err(EngineError::InvalidToken)
    }

    /// Fails closed: a store that cannot answer makes the token unusable.
    async fn ensure_active(&self, tenant: &Tenant, claims: &Claims) -> EngineResult<()> {
        match self
            .store
            .token_state(&tenant.id, &claims.jti, claims.sid.as_deref())
            .await?
        {
            TokenState::Active => Ok(()),
            TokenState::Revoked => Err(EngineError::InvalidToken(TokenProblem::Revoked)),
        }
    }

    /// Reserves an attempt on the account and on the client address. Both
    /// counters always count, so each locks at exactly its own limit; an
    /// attempt refused by one is given back to the other.
    async fn reserve_attempts(
        &self,
        tenant: &Tenant,
        account: &str,
        ip: Option<&str>,
    ) -> EngineResult<()> {
        let on_account = self.reserve(tenant, account).await;
        let on_ip = match ip {
            Some(ip) => self.reserve(tenant, ip).await,
            None => Ok(()),
        };
        match (on_account, on_ip) {
            (Ok(()), Ok(())) => Ok(()),
            (Ok(()), Err(refused)) => {
                self.store
                    .lockout_release(&tenant.id, account, false)
                    .await?;
                Err(refused)
            }
            (Err(refused), Ok(())) => {
                if let Some(ip) = ip {
                    self.store.lockout_release(&tenant.id, ip, false).await?;
                }
                Err(refused)
            }
            (Err(a), Err(b)) => Err(longer_lock(a, b)),
        }
    }

    async fn reserve(&self, tenant: &Tenant, counter: &str) -> EngineResult<()> {
        match self
            .store
            .lockout_attempt(&tenant.id, counter, &tenant.lockout)
            .await?
        {
            Attempt::Allowed => Ok(()),
            Attempt::Locked { retry_after } => Err(EngineError::LockedOut {
                retry_after: retry_after.max(Duration::from_secs(1)),
            }),
        }
    }

    async fn start_session(
        &self,
        tenant: &Tenant,
        identity: Identity,
        refresh_ttl: Duration,
    ) -> EngineResult<Grant> {
        let now = unix_now();
        let family = new_id();
        let refresh_jti = new_id();
        let refresh_exp = now + refresh_ttl.as_secs();
        let template = Claims {
            iss: tenant.issuer.clone(),
            aud: tenant.audience.clone(),
            sub: identity.subject,
            iat: now,
            nbf: now,
            exp: refresh_exp,
            jti: String::new(),
            typ: TokenType::Refresh,
            tid: tenant.id.clone(),
            sid: Some(family.clone()),
            email: identity.email,
            roles: identity.roles,
            cid: identity.company,
        };
        self.store
            .family_start(&tenant.id, &family, &refresh_jti, refresh_exp)
            .await?;
        let refresh_token = self.issue(tenant, &template, TokenType::Refresh, refresh_jti, now)?;
        let access_token = self.issue(tenant, &template, TokenType::Access, new_id(), now)?;
        Ok(Grant {
            access_token,
            refresh_token: Some(refresh_token),
            expires_in: tenant.lifetimes.access.as_secs(),
            refresh_expires_in: Some(refresh_ttl.as_secs()),
            api_key: None,
            subject: template.sub,
            email: template.email,
            company_id: template.cid,
        })
    }

    /// Signs a token of `typ` for the identity in `base`. A refresh token
    /// keeps its family's end; an access token lives `access` from now.
    fn issue(
        &self,
        tenant: &Tenant,
        base: &Claims,
        typ: TokenType,
        jti: String,
        now: u64,
    ) -> EngineResult<String> {
        let exp = match typ {
            TokenType::Access => now + tenant.lifetimes.access.as_secs(),
            TokenType::Refresh => base.exp,
        };
        let claims = Claims {
            iat: now,
            nbf: now,
            exp,
            jti,
            typ,
            ..base.clone()
        };
        Ok(tokens::sign(
            &tenant.keys,
            &claims,
            &serde_json::Map::new(),
        )?)
    }
}

struct Identity {
    subject: String,
    email: Option<String>,
    roles: Vec<String>,
    company: Option<String>,
}

/// Of two refusals, the one that lasts longer (a store failure wins).
fn longer_lock(a: EngineError, b: EngineError) -> EngineError {
    match (&a, &b) {
        (EngineError::LockedOut { retry_after: x }, EngineError::LockedOut { retry_after: y })
            if y > x =>
        {
            b
        }
        (EngineError::LockedOut { .. }, _) => b,
        _ => a,
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}

/// API keys carry 256 random bits, so a fast hash is enough to store them.
fn api_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
