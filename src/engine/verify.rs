//! Verification: who holds a presented token or API key, and whether it is
//! still good.

use std::sync::Arc;

use super::tokens::{self, Claims, Expectation};
use super::verified;
use super::{
    CredentialKind, Engine, EngineError, EngineResult, Identity, Principal, Tenant, TokenProblem,
    TokenType,
};
use crate::store::{TokenState, unix_now};

impl Engine {
    /// Who holds this credential; with `company`, it must belong to that company.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn verify(
        &self,
        tenant: &Tenant,
        credential: &str,
        kind: CredentialKind,
        company: Option<&str>,
    ) -> EngineResult<Principal> {
        let started = std::time::Instant::now();
        let verified = self.verify_timed(tenant, credential, kind, company).await;
        tenant.meters.verify(started.elapsed());
        verified
    }

    async fn verify_timed(
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

    /// A token of the kind asked for, signed by the tenant, whose holder
    /// still exists and which is not revoked. Fails closed: a store that
    /// cannot answer makes the token unusable.
    pub(super) async fn authenticate(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
    ) -> EngineResult<(Arc<Claims>, Identity)> {
        let claims = self.check_token_of(tenant, token, kind)?;
        let identity = holder(tenant, &claims)?;
        self.not_revoked(tenant, &claims).await?;
        Ok((claims, identity))
    }

    /// A token of the kind asked for, signed by the tenant, and not revoked,
    /// whatever its holder's state now: what revoking it asks for.
    pub(super) async fn possessed(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
    ) -> EngineResult<Arc<Claims>> {
        let claims = self.check_token_of(tenant, token, kind)?;
        self.not_revoked(tenant, &claims).await?;
        Ok(claims)
    }

    /// [`Engine::check_token`] for a token of `kind`.
    fn check_token_of(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
    ) -> EngineResult<Arc<Claims>> {
        match kind {
            CredentialKind::RefreshToken => self.check_token(tenant, token, TokenType::Refresh),
            CredentialKind::AnyToken => match self.check_token(tenant, token, TokenType::Access) {
                Err(EngineError::InvalidToken(TokenProblem::WrongType)) => {
                    self.check_token(tenant, token, TokenType::Refresh)
                }
                other => other,
            },
            _ => self.check_token(tenant, token, TokenType::Access),
        }
    }

    /// Fails closed: a store that cannot answer is an error, not a yes.
    async fn not_revoked(&self, tenant: &Tenant, claims: &Claims) -> EngineResult<()> {
        match self
            .store
            .token_state(&tenant.id, &claims.jti, claims.sid.as_deref())
            .await?
        {
            TokenState::Active => Ok(()),
            TokenState::Revoked => Err(EngineError::InvalidToken(TokenProblem::Revoked)),
        }
    }

    pub(super) fn check_token(
        &self,
        tenant: &Tenant,
        token: &str,
        typ: TokenType,
    ) -> EngineResult<Arc<Claims>> {
        if token.is_empty() {
            return Err(EngineError::MissingToken);
        }
        let lifetimes = &tenant.lifetimes;
        let max_lifetime = match typ {
            TokenType::Access => lifetimes.access,
            // A remembered session's refresh token lives longer.
            TokenType::Refresh => lifetimes.refresh.max(lifetimes.remember_refresh),
        };
        let expect = Expectation {
            issuer: &tenant.issuer,
            audience: &tenant.audience,
            tenant: &tenant.id,
            typ,
            max_lifetime_secs: max_lifetime.as_secs(),
        };
        let keys = tenant.keys.load();
        if typ != TokenType::Access {
            let verified = tokens::verify(&keys, token, &expect);
            return verified
                .map(|v| Arc::new(v.claims))
                .map_err(EngineError::InvalidToken);
        }
        // Access tokens come back at every request a client makes: a good
        // signature is checked once per thread (see `verified`).
        let now = unix_now();
        if let Some(claims) = verified::recall(&keys, token, now) {
            tokens::check_claims(&claims, &expect, now).map_err(EngineError::InvalidToken)?;
            return Ok(claims);
        }
        let verified = tokens::verify(&keys, token, &expect).map_err(EngineError::InvalidToken)?;
        let claims = Arc::new(verified.claims);
        verified::remember(
            arc_swap::Guard::into_inner(keys),
            token,
            &claims,
            verified.key_retires_at,
        );
        Ok(claims)
    }
}

/// The holder of a token must still exist and be active: removing or
/// deactivating an account ends its sessions at once. A directory user is
/// as its token says: what ends its access there revokes its sessions.
pub(super) fn holder(tenant: &Tenant, claims: &Claims) -> EngineResult<Identity> {
    let company_login = claims.cid.as_deref() == Some(claims.sub.as_str());
    let identity = if claims.dir {
        Some(Identity::of_claims(claims))
    } else if company_login {
        tenant.company(&claims.sub).map(Identity::of_company)
    } else {
        tenant
            .user_by_id(&claims.sub)
            .filter(|u| u.active)
            .map(|u| Identity::of_user(u))
    };
    identity.ok_or(EngineError::InvalidToken(TokenProblem::Invalid))
}

impl Engine {
    /// [`holder`], with a directory user as the directory has it now (what
    /// a refresh or a slide gives new tokens for).
    pub(super) async fn current_holder(
        &self,
        tenant: &Tenant,
        claims: &Claims,
    ) -> EngineResult<Identity> {
        if !claims.dir {
            return holder(tenant, claims);
        }
        match self.store.user_get(&tenant.id, &claims.sub).await? {
            Some(user) if user.active => Ok(Identity::of_directory_user(&user)),
            _ => Err(EngineError::InvalidToken(TokenProblem::Invalid)),
        }
    }
}

pub(super) fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}
