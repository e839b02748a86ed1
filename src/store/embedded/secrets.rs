//! Generated signing keys and tenant secrets: the first one stored wins.

use async_trait::async_trait;
use redb::ReadableTable;

use super::End::{Abort, Commit};
use super::{DbError, EmbeddedStore, SECRETS, SIGNING_KEYS, get_json, key, put_json, read, write};
use crate::store::{Secrets, StoreResult, StoredSigningKey};

/// The secret stored at `k`, if there is one.
fn stored(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(table.get(k)?.map(|v| v.value().to_vec()))
}

#[async_trait]
impl Secrets for EmbeddedStore {
    async fn signing_key_get_or_insert(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<StoredSigningKey> {
        let k = tenant.to_owned();
        self.write(move |txn| {
            let existing: Option<StoredSigningKey> = get_json(&txn.open_table(SIGNING_KEYS)?, &k)?;
            if let Some(existing) = existing {
                return Ok(Abort(existing));
            }
            put_json(txn, SIGNING_KEYS, &k, &candidate)?;
            Ok(Commit(candidate))
        })
        .await
    }

    async fn secret_get_or_insert(
        &self,
        tenant: &str,
        name: &str,
        candidate: Vec<u8>,
    ) -> StoreResult<Vec<u8>> {
        let k = key(tenant, name);
        self.run(move |db| {
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
