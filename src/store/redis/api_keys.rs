//! API keys: per tenant, one hash from key hash to record and one from
//! subject to key hash.

use async_trait::async_trait;

use super::cache::Event;
use super::{RedisStore, decode, encode};
use crate::store::{ApiKeyRecord, ApiKeys, StoreResult};

#[async_trait]
impl ApiKeys for RedisStore {
    async fn api_key_rotate(
        &self,
        tenant: &str,
        key_hash: &str,
        record: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let previous: Option<String> = self
            .invoke(
                "api_key_rotate",
                self.scripts
                    .api_key_rotate
                    .key(self.keys.api_keys(tenant))
                    .arg(&record.subject)
                    .arg(key_hash)
                    .arg(encode(record)?)
                    .arg(self.announce(Event::prefix('k', tenant))),
            )
            .await?;
        if let Some(hash) = previous {
            self.cache.apply(Event::ApiKey {
                tenant: tenant.to_owned(),
                hash,
            });
        }
        Ok(())
    }

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let ticket = match self.cache.api_key(tenant, key_hash) {
            Ok(record) => return Ok(Some(record)),
            Err(ticket) => ticket,
        };
        let bytes: Option<Vec<u8>> = self
            .call(
                "api_key_get",
                redis::cmd("HGET")
                    .arg(self.keys.tenant(tenant, "apikeys"))
                    .arg(key_hash)
                    .query_async(&mut self.conn()),
            )
            .await?;
        let record: Option<ApiKeyRecord> = bytes.as_deref().map(decode).transpose()?;
        if let Some(record) = &record {
            self.cache
                .remember_api_key(ticket, tenant, key_hash, record);
        }
        Ok(record)
    }

    async fn api_key_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> StoreResult<Option<(String, ApiKeyRecord)>> {
        let found: Option<(String, Vec<u8>)> = self
            .invoke(
                "api_key_of",
                self.scripts
                    .api_key_of
                    .key(self.keys.api_keys(tenant))
                    .arg(subject),
            )
            .await?;
        found
            .map(|(hash, bytes)| Ok((hash, decode(&bytes)?)))
            .transpose()
    }
}
