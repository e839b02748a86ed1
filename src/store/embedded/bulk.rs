//! Many revocations in one commit. A benchmark needs a store holding a
//! million live revocations; one fsync per write would take hours.

use super::End::Commit;
use super::revocations::revoke;
use super::revoked::Revoked;
use super::{EmbeddedStore, key};
use crate::store::{StoreResult, unix_now};

impl EmbeddedStore {
    /// Revokes every `(jti, expires_at)` of `items` for `tenant`, all in one
    /// write transaction (one commit, one fsync).
    #[doc(hidden)]
    pub async fn revoke_tokens_in_one_commit(
        &self,
        tenant: &str,
        items: Vec<(String, u64)>,
    ) -> StoreResult<()> {
        let keys: Vec<(String, u64)> = items
            .into_iter()
            .map(|(jti, expires_at)| (key(tenant, &jti), expires_at))
            .collect();
        let keys = self
            .write("revoke_bulk", move |txn| {
                for (k, expires_at) in &keys {
                    revoke(txn, k, *expires_at)?;
                }
                Ok(Commit(keys))
            })
            .await?;
        let now = unix_now();
        for (k, expires_at) in &keys {
            self.revoked.add(Revoked::Token, k, *expires_at, now);
        }
        Ok(())
    }
}
