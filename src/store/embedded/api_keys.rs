//! API keys by hash, and each subject's current one.
//!
//! A key that answered is remembered by the thread that asked (a service
//! sends the same key with every call), with the store's count of API-key
//! writes at the time it was read: any write since, by any thread, makes
//! every remembered answer stale. The count is read before the file, so an
//! answer read while a rotation commits is never taken for a fresh one.
//! One process has the file, so its writes are all the writes there are.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::End::Commit;
use super::{API_KEY_OF_SUBJECT, API_KEYS, EmbeddedStore, SEP, get_json, key, write};
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
        let writes = Arc::clone(&self.api_key_writes);
        self.run("api_key_rotate", move |db| {
            // Before: an answer read from here on is stamped with a count
            // that the bump after the commit makes stale. After: answers
            // read before the commit, stamped with the first bump, too.
            // Both in the commit's own blocking task, which runs to the end
            // even if the caller goes away.
            writes.fetch_add(1, Ordering::SeqCst);
            let rotated = write(db, |txn| {
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
            });
            writes.fetch_add(1, Ordering::SeqCst);
            rotated
        })
        .await
    }

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let k = key(tenant, key_hash);
        let writes = self.api_key_writes.load(Ordering::SeqCst);
        if let Some(record) = recall(self.instance, writes, &k) {
            return Ok(Some(record));
        }
        let lookup = k.clone();
        let record: Option<ApiKeyRecord> = self
            .read("api_key_get", move |txn| {
                get_json(&txn.open_table(API_KEYS)?, &lookup)
            })
            .await?;
        if let Some(record) = &record {
            remember(self.instance, writes, k, record.clone());
        }
        Ok(record)
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

/// Answers one thread remembers: at most this many.
const REMEMBERED: usize = 4096;

/// (store instance, API-key writes when read, record).
type Remembered = quick_cache::unsync::Cache<String, (u64, u64, ApiKeyRecord)>;

thread_local! {
    static REMEMBERED_KEYS: RefCell<Remembered> = RefCell::new(Remembered::new(REMEMBERED));
}

fn recall(instance: u64, writes: u64, k: &str) -> Option<ApiKeyRecord> {
    REMEMBERED_KEYS.with_borrow(|cache| {
        let (of, at, record) = cache.get(k)?;
        (*of == instance && *at == writes).then(|| record.clone())
    })
}

fn remember(instance: u64, writes: u64, k: String, record: ApiKeyRecord) {
    REMEMBERED_KEYS.with_borrow_mut(|cache| cache.insert(k, (instance, writes, record)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(subject: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            subject: subject.into(),
            created_at: 1,
            generation: 0,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_remembered_key_stops_working_when_it_is_rotated_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        store
            .api_key_rotate("t", "h1", &record("alice"))
            .await
            .unwrap();
        for _ in 0..3 {
            let got = store.api_key_get("t", "h1").await.unwrap();
            assert_eq!(got, Some(record("alice")));
        }
        store
            .api_key_rotate("t", "h2", &record("alice"))
            .await
            .unwrap();
        assert_eq!(store.api_key_get("t", "h1").await.unwrap(), None);
        assert_eq!(
            store.api_key_get("t", "h2").await.unwrap(),
            Some(record("alice"))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn another_store_in_the_process_does_not_answer_from_this_ones_memory() {
        let dir = tempfile::tempdir().unwrap();
        let one = EmbeddedStore::open(&dir.path().join("1.redb")).unwrap();
        let two = EmbeddedStore::open(&dir.path().join("2.redb")).unwrap();
        one.api_key_rotate("t", "h", &record("alice"))
            .await
            .unwrap();
        assert!(one.api_key_get("t", "h").await.unwrap().is_some());
        assert_eq!(two.api_key_get("t", "h").await.unwrap(), None);
    }
}
