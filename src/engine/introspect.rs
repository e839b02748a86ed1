//! Introspection (RFC 7662): what a token of the tenant stands for, asked
//! by a service that holds it. Uses the very checks `verify` and `refresh`
//! use, and answers "not active" for anything they would refuse.

use super::tokens::Claims;
use super::verify::looks_like_jwt;
use super::{CredentialKind, Engine, EngineError, EngineResult, Identity, Tenant, TokenType};

/// What the caller believes the token is (`token_type_hint`). polyauth's
/// access tokens, refresh tokens and API keys are told apart by their own
/// form and `typ` claim, so a hint only decides which check runs first and
/// never changes the answer (RFC 7662 §2.1: a wrong hint extends the search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
    ApiKey,
}

impl TokenTypeHint {
    /// The hint named `name`; an unknown one is no hint.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// What kind of credential an active token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectedKind {
    AccessToken,
    RefreshToken,
    ApiKey,
}

impl IntrospectedKind {
    /// Its `token_type` in an introspection answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::ApiKey => "api_key",
        }
    }
}

/// An active token: who holds it (as the tenant's accounts say now, like
/// `verify`) and what the token itself says. An API key has no expiry, no
/// audience and no id; its `issued_at` is when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub kind: IntrospectedKind,
    pub tenant: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub company: Option<String>,
    pub audience: Option<String>,
    pub issued_at: Option<u64>,
    pub not_before: Option<u64>,
    pub expires_at: Option<u64>,
    pub token_id: Option<String>,
}

/// The answer to an introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    Active(Box<TokenInfo>),
    /// Expired, revoked, rotated out, forged, malformed, another tenant's,
    /// or its holder is gone: RFC 7662 tells the caller no more than that.
    Inactive,
}

impl Engine {
    /// Whether `token` is an active access token, refresh token or API key
    /// of `tenant`, and what it stands for. Fails only when the answer
    /// cannot be known (`unavailable`, `internal`), never with a false
    /// "inactive" or "active".
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn introspect(
        &self,
        tenant: &Tenant,
        token: &str,
        hint: Option<TokenTypeHint>,
    ) -> EngineResult<Introspection> {
        let found = if token.is_empty() {
            Err(EngineError::MissingToken)
        } else if looks_like_jwt(token) {
            self.introspect_jwt(tenant, token, hint).await
        } else {
            self.introspect_api_key(tenant, token).await
        };
        match found {
            Ok(Some(info)) => Ok(Introspection::Active(Box::new(info))),
            Ok(None)
            | Err(EngineError::InvalidToken(_) | EngineError::MissingToken)
            | Err(EngineError::Forbidden) => Ok(Introspection::Inactive),
            Err(error) => Err(error),
        }
    }

    async fn introspect_jwt(
        &self,
        tenant: &Tenant,
        token: &str,
        hint: Option<TokenTypeHint>,
    ) -> EngineResult<Option<TokenInfo>> {
        use super::TokenProblem::WrongType;
        let first = match hint {
            Some(TokenTypeHint::RefreshToken) => CredentialKind::RefreshToken,
            _ => CredentialKind::AnyToken,
        };
        let (claims, identity) = match self.authenticate(tenant, token, first).await {
            Err(EngineError::InvalidToken(WrongType)) => {
                self.authenticate(tenant, token, CredentialKind::AnyToken)
                    .await?
            }
            other => other?,
        };
        let kind = match claims.typ {
            TokenType::Access => IntrospectedKind::AccessToken,
            TokenType::Refresh => {
                // A rotated-out refresh token can no longer be used (its use
                // would end the session): it is not active. Asking does not
                // end the session; only presenting it to `refresh` does.
                let family = claims.sid.as_deref().unwrap_or_default();
                let current = self.store.family_current(&tenant.id, family).await?;
                if current.as_deref() != Some(claims.jti.as_str()) {
                    return Ok(None);
                }
                IntrospectedKind::RefreshToken
            }
        };
        Ok(Some(token_info(tenant, kind, identity, Some(&claims))))
    }

    async fn introspect_api_key(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> EngineResult<Option<TokenInfo>> {
        let (record, identity) = self.api_key_holder(tenant, key).await?;
        let mut info = token_info(tenant, IntrospectedKind::ApiKey, identity, None);
        info.issued_at = Some(record.created_at);
        Ok(Some(info))
    }
}

fn token_info(
    tenant: &Tenant,
    kind: IntrospectedKind,
    identity: Identity,
    claims: Option<&Claims>,
) -> TokenInfo {
    TokenInfo {
        kind,
        tenant: tenant.id.clone(),
        issuer: claims.map_or_else(|| tenant.issuer.clone(), |c| c.iss.clone()),
        subject: identity.subject,
        email: identity.email,
        roles: identity.roles,
        company: identity.company,
        audience: claims.map(|c| c.aud.clone()),
        issued_at: claims.map(|c| c.iat),
        not_before: claims.map(|c| c.nbf),
        expires_at: claims.map(|c| c.exp),
        token_id: claims.map(|c| c.jti.clone()),
    }
}
