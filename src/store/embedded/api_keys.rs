//! API keys by hash, and each subject's current one.

use async_trait::async_trait;

use super::End::Commit;
use super::{API_KEY_OF_SUBJECT, API_KEYS, EmbeddedStore, SEP, get_json, key};
use crate::store::{ApiKeyRecord, ApiKeys, StoreError, StoreResult};

#[async_trait]
impl ApiKeys for EmbeddedStore {
    async fn api_key_rotate(
        &self,
        tenant: &str,
        key_hash: &str,
        record: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let key_k = key(tenant, key_hash);
        let subject_k = key(tenant, &record.subject);
        let bytes = serde_json::to_vec(record).map_err(StoreError::new)?;
        self.write("api_key_rotate", move |txn| {
            let mut of_subject = txn.open_table(API_KEY_OF_SUBJECT)?;
            let mut keys = txn.open_table(API_KEYS)?;
            let previous = of_subject
                .insert(subject_k.as_str(), key_k.as_str())?
                .map(|old| old.value().to_owned());
            if let Some(previous) = previous {
                keys.remove(previous.as_str())?;
            }
            keys.insert(key_k.as_str(), bytes.as_slice())?;
            Ok(Commit(()))
        })
        .await
    }

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let k = key(tenant, key_hash);
        self.read("api_key_get", move |txn| {
            get_json(&txn.open_table(API_KEYS)?, &k)
        })
        .await
    }

    async fn api_key_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> StoreResult<Option<(String, ApiKeyRecord)>> {
        let subject_k = key(tenant, subject);
        self.read("api_key_of", move |txn| {
            let key_k = txn
                .open_table(API_KEY_OF_SUBJECT)?
                .get(subject_k.as_str())?
                .map(|v| v.value().to_owned());
            let Some(key_k) = key_k else {
                return Ok(None);
            };
            let record: Option<ApiKeyRecord> = get_json(&txn.open_table(API_KEYS)?, &key_k)?;
            let hash = key_k.split_once(SEP).map_or("", |(_, h)| h).to_owned();
            Ok(record.map(|r| (hash, r)))
        })
        .await
    }
}
