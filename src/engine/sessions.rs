//! Sessions: a refresh family started by a login, refreshed, slid and
//! revoked; every grant is signed here.

use std::time::Duration;

use super::tokens::{self, Claims};
use super::verify::looks_like_jwt;
use super::{
    ClaimValue, CredentialKind, Engine, EngineError, EngineResult, Grant, Identity, RevokeScope,
    Tenant, TokenProblem, TokenType, new_id,
};
use crate::store::{FamilyUse, unix_now};

impl Engine {
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
        let identity = self.current_holder(tenant, &claims).await?;
        let family = family_of(&claims)?;
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
        let identity = self.current_holder(tenant, &claims).await?;
        let family = family_of(&claims)?;
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
    /// family; with [`RevokeScope::Session`] an access token does too. An
    /// API key (where `kind` admits one) stops working. Only the token itself
    /// is checked, not its holder: a token revoked while its holder is
    /// inactive or removed stays dead when the holder comes back. Returns
    /// only once the revocation is written.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn revoke(
        &self,
        tenant: &Tenant,
        token: &str,
        kind: CredentialKind,
        scope: RevokeScope,
    ) -> EngineResult<()> {
        let api_key = match kind {
            CredentialKind::ApiKey => true,
            CredentialKind::AccessTokenOrApiKey => !looks_like_jwt(token),
            _ => false,
        };
        if api_key {
            return self.revoke_api_key(tenant, token).await;
        }
        let claims = self.possessed(tenant, token, kind).await?;
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

    /// Revokes whatever `token` is of the tenant's: an access token, a
    /// refresh token (with its family) or an API key (RFC 7009).
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn revoke_any(&self, tenant: &Tenant, token: &str) -> EngineResult<()> {
        let kind = match looks_like_jwt(token) {
            true => CredentialKind::AnyToken,
            false => CredentialKind::ApiKey,
        };
        self.revoke(tenant, token, kind, RevokeScope::Token).await
    }

    /// Revokes a session. The record must outlive both the family's refresh
    /// tokens and the last access token minted from it.
    pub(super) async fn revoke_family(
        &self,
        tenant: &Tenant,
        family: &str,
        refresh_exp: u64,
    ) -> EngineResult<()> {
        let until = refresh_exp.max(unix_now().saturating_add(tenant.lifetimes.access.as_secs()));
        Ok(self.store.family_revoke(&tenant.id, family, until).await?)
    }

    pub(super) async fn start_session(
        &self,
        tenant: &Tenant,
        identity: Identity,
        refresh_ttl: Duration,
    ) -> EngineResult<(Grant, String)> {
        let now = unix_now();
        let family = new_id();
        let refresh_jti = new_id();
        let session = Session {
            family: &family,
            refresh_exp: now.saturating_add(refresh_ttl.as_secs()),
        };
        // A subject holds at most `max_sessions`: the oldest beyond end now,
        // with the last access token minted from them (see `revoke_family`);
        // each is listed for as long as a token of it can live.
        self.store
            .session_start(
                &tenant.id,
                &identity.subject,
                &family,
                &refresh_jti,
                session.refresh_exp,
                tenant.max_sessions,
                tenant.lifetimes.access.as_secs(),
            )
            .await?;
        let grant = self.grant(tenant, identity, &session, Some(refresh_jti), now)?;
        Ok((grant, family))
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
            dir: identity.directory,
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
        Ok(tokens::sign(&tenant.keys.load(), &claims, &extra)?)
    }
}

/// A refresh family and the end of its refresh tokens.
struct Session<'a> {
    family: &'a str,
    refresh_exp: u64,
}

/// The session a token belongs to; every token polyauth signs names one.
fn family_of(claims: &Claims) -> EngineResult<&str> {
    claims
        .sid
        .as_deref()
        .ok_or(EngineError::InvalidToken(TokenProblem::Invalid))
}
