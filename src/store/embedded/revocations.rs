//! Revoked token ids, each kept until the token would have expired.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::End::{Abort, Commit};
use super::sessions::FamilyRecord;
use super::{DbError, EmbeddedStore, FAMILIES, REVOKED, get_json, index_expiry, key};
use crate::store::{Revocations, StoreResult, TokenState, unix_now};

/// Is token `k` revoked at `now`?
fn revoked(
    table: &impl ReadableTable<&'static str, u64>,
    k: &str,
    now: u64,
) -> Result<bool, DbError> {
    Ok(table.get(k)?.is_some_and(|exp| exp.value() >= now))
}

pub(super) fn revoke(txn: &WriteTransaction, k: &str, expires_at: u64) -> Result<(), DbError> {
    txn.open_table(REVOKED)?.insert(k, expires_at)?;
    index_expiry(txn, "revoked", k, expires_at)
}

#[async_trait]
impl Revocations for EmbeddedStore {
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()> {
        let k = key(tenant, jti);
        self.write("revoke", move |txn| revoke(txn, &k, expires_at).map(Commit))
            .await
    }

    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool> {
        let k = key(tenant, jti);
        self.write("revoke", move |txn| {
            if revoked(&txn.open_table(REVOKED)?, &k, unix_now())? {
                return Ok(Abort(false));
            }
            revoke(txn, &k, expires_at)?;
            Ok(Commit(true))
        })
        .await
    }

    async fn token_state(
        &self,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) -> StoreResult<TokenState> {
        let token_key = key(tenant, jti);
        let family_key = family.map(|f| key(tenant, f));
        self.read("token_state", move |txn| {
            let now = unix_now();
            if revoked(&txn.open_table(REVOKED)?, &token_key, now)? {
                return Ok(TokenState::Revoked);
            }
            if let Some(family_key) = family_key {
                let record: Option<FamilyRecord> =
                    get_json(&txn.open_table(FAMILIES)?, &family_key)?;
                if record.is_some_and(|r| r.revoked) {
                    return Ok(TokenState::Revoked);
                }
            }
            Ok(TokenState::Active)
        })
        .await
    }
}
