//! Generated signing keys and tenant secrets: `SET NX`, so the first one
//! stored wins.

use async_trait::async_trait;

use super::{RedisStore, decode, encode};
use crate::store::{Secrets, StoreResult, StoredSigningKey};

#[async_trait]
impl Secrets for RedisStore {
    async fn signing_key_get_or_insert(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<StoredSigningKey> {
        let existing: Option<Vec<u8>> = self
            .call(
                "signing_key_get_or_insert",
                redis::cmd("SET")
                    .arg(self.keys.tenant(tenant, "signing-key"))
                    .arg(encode(&candidate)?)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut self.conn()),
            )
            .await?;
        existing
            .as_deref()
            .map(decode)
            .transpose()
            .map(|stored| stored.unwrap_or(candidate))
    }

    async fn secret_get_or_insert(
        &self,
        tenant: &str,
        name: &str,
        candidate: Vec<u8>,
    ) -> StoreResult<Vec<u8>> {
        let existing: Option<Vec<u8>> = self
            .call(
                "secret_get_or_insert",
                redis::cmd("SET")
                    .arg(self.keys.of(tenant, "secret", name))
                    .arg(&candidate)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut self.conn()),
            )
            .await?;
        Ok(existing.unwrap_or(candidate))
    }
}
