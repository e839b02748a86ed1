//! Many revocations in one commit. A benchmark needs a store holding a
//! million live revocations; one fsync per write would take hours.

use super::End::Commit;
use super::revocations::revoke;
use super::{EmbeddedStore, key};
use std::sync::Arc;

use crate::store::StoreResult;

impl EmbeddedStore {
    /// Revokes every `(jti, expires_at)` of `items` for `tenant`, all in one
    /// write transaction (one commit, one fsync).
    #[doc(hidden)]
    pub async fn revoke_tokens_in_one_commit(
        &self,
        tenant: &str,
        items: Vec<(String, u64)>,
    ) -> StoreResult<()> {
        let tenant = tenant.to_owned();
        let view = Arc::clone(&self.revoked);
        self.write("revoke_bulk", move |txn| {
            for (jti, expires_at) in &items {
                revoke(txn, &view, &key(&tenant, jti), *expires_at)?;
            }
            Ok(Commit(()))
        })
        .await
    }
}
