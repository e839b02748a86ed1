//! The one token and credential engine every dialect calls. It knows nothing
//! of HTTP or JSON shapes: it takes typed inputs and answers typed results or
//! an [`EngineError`].

pub mod call;
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

pub use call::{Call, Outcome};
pub use error::{Detail, EngineError, EngineResult, ErrorCode, MessageKey, TokenProblem};
pub use tenant::{ClaimValue, Lifetimes, Tenant};
pub use tokens::TokenType;

use crate::store::{ApiKeyRecord, Attempt, FamilyUse, Store, TokenState, unix_now};
use password::Hasher;
use tokens::{Claims, Expectation};

/// Prefix of every API key polyauth issues; never a valid JWT.
const API_KEY_PREFIX: &str = "pa_";
/// Longest email address that can exist (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

/// A login by email and password.
pub struct LoginRequest {
    pub email: String,
    pub password: SecretString,
    /// Ask for the long-lived refresh token ("remember me", "permanent login").
    pub remember: bool,
    pub client_ip: Option<IpAddr>,
    /// Also hand out the user's API key (the same one until it is rotated).
    pub with_api_key: bool,
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
        let email = tenant::normalize_email(&request.email);
        // No account has a longer address (RFC 5321): do not let one become a store key.
        let account = (email.len() <= MAX_EMAIL_LEN).then(|| format!("acct:{email}"));
        let ip = request.client_ip.map(address_key);
        self.reserve_attempts(tenant, account.as_deref(), ip.as_deref())
            .await?;

        let user = account.and_then(|_| tenant.user_by_email(&email)).cloned();
        let hash = user.as_ref().map_or_else(
            || Arc::clone(&tenant.dummy_hash),
            |u| Arc::clone(&u.password_hash),
        );
        let matches = self
            .hasher
            .verify(hash, request.password)
            .await
            .map_err(|e| match e {
                password::HashError::Busy(_) => EngineError::Unavailable(e.to_string()),
                password::HashError::Failed(_) => EngineError::Internal(e.into()),
            })?;
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
            .lockout_release(&tenant.id, &format!("acct:{email}"), true)
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
        let mut grant = self
            .start_session(tenant, Identity::of_user(&user), refresh_ttl)
            .await?;
        if request.with_api_key {
            grant.api_key = Some(self.current_api_key(tenant, &user.id).await?);
        }
        Ok(grant)
    }

    /// A company logs in by its registered id (no password).
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn client_login(
        &self,
        tenant: &Tenant,
        company_id: &str,
        client_ip: Option<IpAddr>,
    ) -> EngineResult<Grant> {
        let ip = client_ip.map(address_key);
        self.reserve_attempts(tenant, None, ip.as_deref()).await?;
        let Some(company) = tenant.company(company_id) else {
            return Err(EngineError::UnknownUser);
        };
        if let Some(ip) = &ip {
            self.store.lockout_release(&tenant.id, ip, false).await?;
        }
        self.start_session(
            tenant,
            Identity::of_company(company),
            tenant.lifetimes.refresh,
        )
        .await
    }

    /// A refresh token in, a new access token out; with `rotate`, a new
    /// refresh token too, and the presented one can never be used again.
    /// The new tokens carry the holder's current roles.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn refresh(
        &self,
        tenant: &Tenant,
        refresh_token: &str,
        rotate: bool,
    ) -> EngineResult<Grant> {
        let claims = self.check_token(tenant, refresh_token, TokenType::Refresh)?;
        let identity = holder(tenant, &claims)?;
        let family = claims
            .sid
            .as_deref()
            .ok_or(EngineError::InvalidToken(TokenProblem::Invalid))?;
        let next_jti = rotate.then(new_id);
        match self
            .store
            .family_use(&tenant.id, family, &claims.jti, next_jti.as_deref())
            .await?
        {
            FamilyUse::Current => {}
            FamilyUse::Reused => {
                tracing::warn!(tenant = %tenant.id, "rotated refresh token presented again; session revoked");
                self.revoke_family(tenant, family, claims.exp).await?;
                return Err(EngineError::InvalidToken(TokenProblem::Revoked));
            }
            FamilyUse::Dead => return Err(EngineError::InvalidToken(TokenProblem::Revoked)),
        }
        let session = Session {
            family,
            refresh_exp: claims.exp,
        };
        self.grant(tenant, identity, &session, next_jti, unix_now())
    }

    /// A sliding session: a live access token is exchanged, once, for a
    /// fresh one in the same session, until the session's own end. Sliding
    /// the same token again is replay: the session is revoked.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn slide(&self, tenant: &Tenant, access_token: &str) -> EngineResult<Grant> {
        let revoked = EngineError::InvalidToken(TokenProblem::Revoked);
        // Not `authenticate`: an already revoked token must reach the replay
        // check below, which is what ends the session.
        let claims = self.check_token(tenant, access_token, TokenType::Access)?;
        let identity = holder(tenant, &claims)?;
        let family = claims
            .sid
            .as_deref()
            .ok_or(EngineError::InvalidToken(TokenProblem::Invalid))?;
        let Some(session_end) = self.store.family_end(&tenant.id, family).await? else {
            return Err(revoked);
        };
        if !self
            .store
            .revoke_token_once(&tenant.id, &claims.jti, claims.exp)
            .await?
        {
            tracing::warn!(tenant = %tenant.id, "slid access token presented again; session revoked");
            self.revoke_family(tenant, family, session_end).await?;
            return Err(revoked);
        }
        let session = Session {
            family,
            refresh_exp: session_end,
        };
        self.grant(tenant, identity, &session, None, unix_now())
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
        let (claims, _) = self.authenticate(tenant, token, kind).await?;
        if claims.typ == TokenType::Access {
            self.store
                .revoke_token(&tenant.id, &claims.jti, claims.exp)
                .await?;
        }
        let whole_family = claims.typ == TokenType::Refresh || scope == RevokeScope::Session;
        if let (Some(family), true) = (&claims.sid, whole_family) {
            self.revoke_family(tenant, family, claims.exp).await?;
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
        let (_, identity) = self
            .authenticate(tenant, access_token, CredentialKind::AccessToken)
            .await?;
        let generation = self
            .store
            .api_key_of(&tenant.id, &identity.subject)
            .await?
            .map_or(0, |(_, record)| record.generation + 1);
        let key = self
            .issue_api_key(tenant, &identity.subject, generation)
            .await?;
        Ok(ApiKey {
            key,
            subject: identity.subject,
            email: identity.email,
        })
    }

    /// The subject's current API key, made (generation 0) if it has none.
    /// Keys are derived, so the same key can be shown on every login while
    /// only its hash is stored.
    async fn current_api_key(&self, tenant: &Tenant, subject: &str) -> EngineResult<String> {
        match self.store.api_key_of(&tenant.id, subject).await? {
            Some((hash, record)) => {
                let key = self
                    .derive_api_key(tenant, subject, record.generation)
                    .await?;
                if api_key_hash(&key) == hash {
                    return Ok(key);
                }
                // Not derivable (made before derivation, or a lost secret): rotate.
                self.issue_api_key(tenant, subject, record.generation + 1)
                    .await
            }
            None => self.issue_api_key(tenant, subject, 0).await,
        }
    }

    /// Makes the key of `generation` the subject's only one.
    async fn issue_api_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        generation: u64,
    ) -> EngineResult<String> {
        let key = self.derive_api_key(tenant, subject, generation).await?;
        let record = ApiKeyRecord {
            subject: subject.to_owned(),
            created_at: unix_now(),
            generation,
        };
        self.store
            .api_key_rotate(&tenant.id, &api_key_hash(&key), &record)
            .await?;
        Ok(key)
    }

    /// HMAC-SHA256 of tenant, subject and generation under the tenant's
    /// configured secret, or a random one kept in the store (shared by replicas).
    async fn derive_api_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        generation: u64,
    ) -> EngineResult<String> {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        let secret = match &tenant.api_key_secret {
            Some(configured) => configured.expose_secret().as_bytes().to_vec(),
            None => {
                let mut candidate = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut candidate);
                self.store
                    .secret_get_or_insert(&tenant.id, "api-key-derivation", candidate)
                    .await?
            }
        };
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret)
            .map_err(|e| EngineError::Internal(anyhow::anyhow!("api key secret: {e}")))?;
        for part in [tenant.id.as_bytes(), b"\x1f", subject.as_bytes(), b"\x1f"] {
            mac.update(part);
        }
        mac.update(&generation.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(digest)
        ))
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
        let as_api_key = match kind {
            CredentialKind::ApiKey => true,
            CredentialKind::AccessTokenOrApiKey => !looks_like_jwt(credential),
            _ => false,
        };
        let identity = if credential.is_empty() {
            return Err(EngineError::MissingToken);
        } else if as_api_key {
            self.verify_api_key(tenant, credential).await?
        } else {
            self.authenticate(tenant, credential, CredentialKind::AccessToken)
                .await?
                .1
        };
        if company.is_some_and(|expected| identity.company.as_deref() != Some(expected)) {
            return Err(EngineError::Forbidden);
        }
        Ok(Principal {
            tenant: tenant.id.clone(),
            subject: identity.subject,
            email: identity.email,
            roles: identity.roles,
            company: identity.company,
        })
    }

    async fn verify_api_key(&self, tenant: &Tenant, key: &str) -> EngineResult<Identity> {
        let invalid = || EngineError::InvalidToken(TokenProblem::Invalid);
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(invalid());
        }
        let record = self
            .store
            .api_key_get(&tenant.id, &api_key_hash(key))
            .await?
            .ok_or_else(invalid)?;
        let user = tenant
            .user_by_id(&record.subject)
            .filter(|u| u.active)
            .ok_or_else(invalid)?;
        Ok(Identity::of_user(user))
    }

    /// A token of the kind asked for, signed by the tenant, whose holder
    /// still exists and which is not revoked. Fails closed: a store that
    /// cannot answer makes the token unusable.
    async fn authenticate(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
    ) -> EngineResult<(Claims, Identity)> {
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
        let identity = holder(tenant, &claims)?;
        match self
            .store
            .token_state(&tenant.id, &claims.jti, claims.sid.as_deref())
            .await?
        {
            TokenState::Active => Ok((claims, identity)),
            TokenState::Revoked => Err(EngineError::InvalidToken(TokenProblem::Revoked)),
        }
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

    /// Revokes a session. The record must outlive both the family's refresh
    /// tokens and the last access token minted from it.
    async fn revoke_family(
        &self,
        tenant: &Tenant,
        family: &str,
        refresh_exp: u64,
    ) -> EngineResult<()> {
        let until = refresh_exp.max(unix_now().saturating_add(tenant.lifetimes.access.as_secs()));
        Ok(self.store.family_revoke(&tenant.id, family, until).await?)
    }

    /// Reserves one attempt on the account and the client address
    /// together: refused by either, it counts on neither, so under any
    /// concurrency each locks at exactly its own limit.
    async fn reserve_attempts(
        &self,
        tenant: &Tenant,
        account: Option<&str>,
        ip: Option<&str>,
    ) -> EngineResult<()> {
        let counters: Vec<&str> = account.into_iter().chain(ip).collect();
        if counters.is_empty() {
            return Ok(());
        }
        match self
            .store
            .lockout_attempt(&tenant.id, &counters, &tenant.lockout)
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
        let session = Session {
            family: &family,
            refresh_exp: now.saturating_add(refresh_ttl.as_secs()),
        };
        self.store
            .family_start(&tenant.id, &family, &refresh_jti, session.refresh_exp)
            .await?;
        self.grant(tenant, identity, &session, Some(refresh_jti), now)
    }

    /// Signs a fresh access token, and a refresh token when `refresh_jti`
    /// is given, for `identity` in `session`.
    fn grant(
        &self,
        tenant: &Tenant,
        identity: Identity,
        session: &Session<'_>,
        refresh_jti: Option<String>,
        now: u64,
    ) -> EngineResult<Grant> {
        let refresh_token = refresh_jti
            .map(|jti| self.issue(tenant, &identity, session, TokenType::Refresh, jti, now))
            .transpose()?;
        let access_token =
            self.issue(tenant, &identity, session, TokenType::Access, new_id(), now)?;
        Ok(Grant {
            access_token,
            refresh_token,
            expires_in: tenant.lifetimes.access.as_secs(),
            refresh_expires_in: Some(session.refresh_exp.saturating_sub(now)),
            api_key: None,
            subject: identity.subject,
            email: identity.email,
            company_id: identity.company,
        })
    }

    /// Signs a token of `typ` for `identity` in `session`. A refresh token
    /// ends with its family; an access token lives `access` from now.
    fn issue(
        &self,
        tenant: &Tenant,
        identity: &Identity,
        session: &Session<'_>,
        typ: TokenType,
        jti: String,
        now: u64,
    ) -> EngineResult<String> {
        let exp = match typ {
            TokenType::Access => now.saturating_add(tenant.lifetimes.access.as_secs()),
            TokenType::Refresh => session.refresh_exp,
        };
        let claims = Claims {
            iss: tenant.issuer.clone(),
            aud: tenant.audience.clone(),
            sub: identity.subject.clone(),
            iat: now,
            nbf: now,
            exp,
            jti,
            typ,
            tid: tenant.id.clone(),
            sid: Some(session.family.to_owned()),
            email: identity.email.clone(),
            roles: identity.roles.clone(),
            cid: identity.company.clone(),
        };
        let extra = tenant
            .extra_claims
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    ClaimValue::Subject => identity.subject.clone().into(),
                    ClaimValue::Email => identity.email.clone().into(),
                    ClaimValue::CompanyId => identity.company.clone().into(),
                    ClaimValue::Role => identity.roles.first().cloned().into(),
                    ClaimValue::Fixed(value) => value.clone(),
                };
                (name.clone(), value)
            })
            .collect();
        Ok(tokens::sign(&tenant.keys, &claims, &extra)?)
    }
}

/// Who a token or key stands for, as the tenant's configuration says now.
struct Identity {
    subject: String,
    email: Option<String>,
    roles: Vec<String>,
    company: Option<String>,
}

impl Identity {
    fn of_user(user: &tenant::User) -> Self {
        Self {
            subject: user.id.clone(),
            email: Some(user.email.clone()),
            roles: user.roles.clone(),
            company: user.company_id.clone(),
        }
    }

    fn of_company(company: &tenant::Company) -> Self {
        Self {
            subject: company.id.clone(),
            email: None,
            roles: company.roles.clone(),
            company: Some(company.id.clone()),
        }
    }
}

/// A refresh family and the end of its refresh tokens.
struct Session<'a> {
    family: &'a str,
    refresh_exp: u64,
}

/// The holder of a token must still exist and be active: removing or
/// deactivating an account ends its sessions at once.
fn holder(tenant: &Tenant, claims: &Claims) -> EngineResult<Identity> {
    let company_login = claims.cid.as_deref() == Some(claims.sub.as_str());
    let identity = if company_login {
        tenant.company(&claims.sub).map(Identity::of_company)
    } else {
        tenant
            .user_by_id(&claims.sub)
            .filter(|u| u.active)
            .map(|u| Identity::of_user(u))
    };
    identity.ok_or(EngineError::InvalidToken(TokenProblem::Invalid))
}

/// The lockout counter of a client address; IPv6 clients are counted per
/// /64, the block one host usually holds.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => format!("ip:{v4}"),
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
