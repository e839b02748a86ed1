//! Generated signing keys and tenant secrets: the first one stored wins.
//!
//! A tenant's generated keys are a list, newest first, changed only by
//! scripts. How other replicas hear of a rotation: each rotation also
//! increments one deployment-wide counter, `<prefix>:signing-keys-generation`,
//! and every replica reads it every [`KEY_POLL`]; a new value makes it
//! reload the keys. A poll, not the events channel: pub/sub forgets what
//! is sent while a subscriber reconnects, and a replica that missed a
//! rotation would refuse the new key's tokens until its next restart. One
//! `GET` every 250 ms per replica, whatever the number of tenants, is
//! cheap. The counter has no tenant in its name since it stands for them
//! all; it lives apart from the lists (no shared hash tag), so the
//! increment is a second command after the list's script: a rotation that
//! dies between the two is stored but told to nobody, and the command
//! reports it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use super::{RedisStore, decode, encode};
use crate::store::{Secrets, StoreError, StoreResult, StoredSigningKey};

/// How often a replica reads the key generation: a rotation elsewhere is
/// followed within this, plus one reload of the keys.
pub const KEY_POLL: Duration = Duration::from_millis(250);

impl RedisStore {
    /// The list of the tenant's generated keys, and where earlier versions
    /// kept their single key.
    fn signing_keys(&self, tenant: &str) -> (String, String) {
        (
            self.keys.tenant(tenant, "signing-keys"),
            self.keys.tenant(tenant, "signing-key"),
        )
    }
}

fn decode_keys(entries: Vec<Vec<u8>>) -> StoreResult<Vec<StoredSigningKey>> {
    entries.iter().map(|entry| decode(entry)).collect()
}

#[async_trait]
impl Secrets for RedisStore {
    async fn signing_keys_get_or_init(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<Vec<StoredSigningKey>> {
        let (list, earlier) = self.signing_keys(tenant);
        let entries: Vec<Vec<u8>> = self
            .invoke(
                "signing_keys_get_or_init",
                self.scripts
                    .signing_keys_init
                    .key(list)
                    .key(earlier)
                    .arg(encode(&candidate)?),
            )
            .await?;
        decode_keys(entries)
    }

    async fn signing_key_add(
        &self,
        tenant: &str,
        key: StoredSigningKey,
        forget_before: u64,
    ) -> StoreResult<Vec<StoredSigningKey>> {
        let (list, earlier) = self.signing_keys(tenant);
        let entries: Vec<Vec<u8>> = self
            .invoke(
                "signing_key_add",
                self.scripts
                    .signing_key_add
                    .key(list)
                    .key(earlier)
                    .arg(encode(&key)?)
                    .arg(forget_before),
            )
            .await?;
        let keys = decode_keys(entries)?;
        let generation: u64 = self
            .call(
                "signing_keys_generation",
                redis::cmd("INCR")
                    .arg(self.keys.signing_keys_generation())
                    .query_async(&mut self.conn()),
            )
            .await
            .map_err(|e| {
                StoreError(format!(
                    "the new key {} is stored, but other replicas could not be told; \
                     they use it once restarted or told of a later rotation ({e})",
                    keys[0].kid
                ))
            })?;
        seen(&self.key_changes, generation);
        Ok(keys)
    }

    fn signing_keys_changes(&self) -> watch::Receiver<u64> {
        self.key_changes.subscribe()
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

/// Records `generation` as read from Redis; a new value is a change.
fn seen(changes: &watch::Sender<u64>, generation: u64) {
    changes.send_if_modified(|current| {
        let changed = *current != generation;
        *current = generation;
        changed
    });
}

/// Reads the key generation every [`KEY_POLL`], for as long as the store
/// lives. A failed read changes nothing: the next one tries again.
pub(super) async fn follow_key_generation(
    mut conn: ConnectionManager,
    key: String,
    changes: Arc<watch::Sender<u64>>,
    timeout: Duration,
) {
    let mut tick = tokio::time::interval(KEY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let read = conn.get::<_, Option<u64>>(&key);
        if let Ok(Ok(generation)) = tokio::time::timeout(timeout, read).await {
            // No counter (a Redis that lost its data) reads as 0: a change too.
            seen(&changes, generation.unwrap_or(0));
        }
    }
}
