//! Generated signing keys and tenant secrets: the first one stored wins.
//! A tenant's generated keys are one JSON list, newest first (earlier
//! versions kept a single key there: it is read as a list of one).

use async_trait::async_trait;
use redb::ReadableTable;
use serde::Deserialize;

use super::End::{Abort, Commit};
use super::{DbError, EmbeddedStore, SECRETS, SIGNING_KEYS, get_json, key, put_json, read, write};
use crate::store::{Secrets, StoreResult, StoredSigningKey, forget_superseded};

/// The tenant's generated keys, newest first (none: empty).
fn signing_keys(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: &str,
) -> Result<Vec<StoredSigningKey>, DbError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Kept {
        Keys(Vec<StoredSigningKey>),
        Single(StoredSigningKey),
    }
    Ok(match get_json(table, tenant)? {
        None => Vec::new(),
        Some(Kept::Keys(keys)) => keys,
        Some(Kept::Single(key)) => vec![key],
    })
}

/// The secret stored at `k`, if there is one.
fn stored(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(table.get(k)?.map(|v| v.value().to_vec()))
}

#[async_trait]
impl Secrets for EmbeddedStore {
    async fn signing_keys_get_or_init(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<Vec<StoredSigningKey>> {
        let k = tenant.to_owned();
        self.run("signing_keys_get_or_init", move |db| {
            let existing = read(db, |txn| signing_keys(&txn.open_table(SIGNING_KEYS)?, &k))?;
            if !existing.is_empty() {
                return Ok(existing);
            }
            write(db, |txn| {
                let existing = signing_keys(&txn.open_table(SIGNING_KEYS)?, &k)?;
                if !existing.is_empty() {
                    return Ok(Abort(existing));
                }
                let keys = vec![candidate];
                put_json(txn, SIGNING_KEYS, &k, &keys)?;
                Ok(Commit(keys))
            })
        })
        .await
    }

    async fn signing_key_add(
        &self,
        tenant: &str,
        key: StoredSigningKey,
        forget_before: u64,
    ) -> StoreResult<Vec<StoredSigningKey>> {
        let k = tenant.to_owned();
        let keys = self
            .write("signing_key_add", move |txn| {
                let mut keys = signing_keys(&txn.open_table(SIGNING_KEYS)?, &k)?;
                keys.insert(0, key);
                forget_superseded(&mut keys, forget_before);
                put_json(txn, SIGNING_KEYS, &k, &keys)?;
                Ok(Commit(keys))
            })
            .await?;
        self.key_changes.send_modify(|generation| *generation += 1);
        Ok(keys)
    }

    fn signing_keys_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.key_changes.subscribe()
    }

    async fn secret_get_or_insert(
        &self,
        tenant: &str,
        name: &str,
        candidate: Vec<u8>,
    ) -> StoreResult<Vec<u8>> {
        let k = key(tenant, name);
        self.run("secret_get_or_insert", move |db| {
            // Made once, read on every use: only the first use takes the writer lock.
            if let Some(stored) = read(db, |txn| stored(&txn.open_table(SECRETS)?, &k))? {
                return Ok(stored);
            }
            write(db, |txn| {
                if let Some(existing) = stored(&txn.open_table(SECRETS)?, &k)? {
                    return Ok(Abort(existing));
                }
                txn.open_table(SECRETS)?
                    .insert(k.as_str(), candidate.as_slice())?;
                Ok(Commit(candidate))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_key_of_an_earlier_version_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let legacy = br#"{"kid":"legacy","alg":"EdDSA","pkcs8_der":[1,2]}"#;
        let txn = store.db.begin_write().unwrap();
        txn.open_table(SIGNING_KEYS)
            .unwrap()
            .insert("t", legacy.as_slice())
            .unwrap();
        txn.commit().unwrap();
        let candidate = StoredSigningKey {
            kid: "new".into(),
            alg: "EdDSA".into(),
            pkcs8_der: vec![3],
            created_at: 5,
        };
        let keys = store
            .signing_keys_get_or_init("t", candidate.clone())
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].kid.as_str(), keys[0].created_at), ("legacy", 0));
        let keys = store.signing_key_add("t", candidate, 0).await.unwrap();
        let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
        assert_eq!(kids, ["new", "legacy"]);
    }
}
