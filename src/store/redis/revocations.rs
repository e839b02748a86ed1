//! Revoked token ids: a key each, ending when the token would have.

use async_trait::async_trait;

use super::RedisStore;
use super::cache::{Event, Known};
use crate::store::{Revocations, StoreResult, TokenState, unix_now};

impl RedisStore {
    /// Writes a token revocation and announces it; `once`: only if it is
    /// not revoked yet. `true` when this call revoked it.
    async fn revoke(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
        once: bool,
    ) -> StoreResult<bool> {
        if expires_at < unix_now() {
            // The token has expired: nothing is left to refuse.
            return Ok(true);
        }
        let revoked: i64 = self
            .invoke(
                "revoke",
                self.scripts
                    .revoke
                    .key(self.keys.of(tenant, "revoked", jti))
                    .arg(expires_at)
                    .arg(if once { "once" } else { "always" })
                    .arg(self.announce(Event::message('t', tenant, jti))),
            )
            .await?;
        // Other replicas hear of it through the subscription; this one must
        // not wait for its own announcement to come back.
        self.cache.apply(Event::Token {
            tenant: tenant.to_owned(),
            jti: jti.to_owned(),
        });
        Ok(revoked == 1)
    }
}

#[async_trait]
impl Revocations for RedisStore {
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()> {
        self.revoke(tenant, jti, expires_at, false).await.map(drop)
    }

    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool> {
        self.revoke(tenant, jti, expires_at, true).await
    }

    async fn token_state(
        &self,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) -> StoreResult<TokenState> {
        let ticket = match self.cache.token(tenant, jti, family) {
            Known::Live => return Ok(TokenState::Active),
            Known::Revoked => return Ok(TokenState::Revoked),
            Known::Unknown(ticket) => ticket,
        };
        let family_key = self.keys.of(tenant, "family", family.unwrap_or_default());
        let (token_revoked, family_revoked): (bool, Option<String>) = self
            .call(
                "token_state",
                redis::pipe()
                    .exists(self.keys.of(tenant, "revoked", jti))
                    .hget(family_key, "revoked")
                    .query_async(&mut self.conn()),
            )
            .await?;
        let family_revoked = family.is_some() && family_revoked.as_deref() == Some("1");
        if token_revoked || family_revoked {
            return Ok(TokenState::Revoked);
        }
        self.cache.remember_live_token(ticket, tenant, jti, family);
        Ok(TokenState::Active)
    }
}
