//! The default store: one redb file, durable across restarts, one process.
//!
//! Every write commits with immediate durability before the call returns, so
//! a revocation reported done survives a crash. Entries with a natural end are
//! listed in an expiry index that a background thread sweeps.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    ApiKeyRecord, ApiKeys, Attempt, FamilyUse, Lockout, LockoutPolicy, Revocations, Secrets,
    Sessions, Store, StoreError, StoreResult, StoredSigningKey, TokenState, unix_now, unix_now_ms,
};

const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");
const FAMILIES: TableDefinition<&str, &[u8]> = TableDefinition::new("families");
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const API_KEY_OF_SUBJECT: TableDefinition<&str, &str> = TableDefinition::new("api_key_of_subject");
const LOCKOUT: TableDefinition<&str, &[u8]> = TableDefinition::new("lockout");
const SIGNING_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing_keys");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// (unix seconds, "table\x1fkey") for every entry that ends.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

const SEP: char = '\u{1f}';
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct FamilyRecord {
    current: String,
    revoked: bool,
    expires_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LockoutRecord {
    attempts: u32,
    window_ends_ms: u64,
    locked_until_ms: u64,
}

impl LockoutRecord {
    fn ends_at(&self) -> u64 {
        self.window_ends_ms.max(self.locked_until_ms).div_ceil(1000)
    }
}

/// Any redb failure, as text (redb's own error type is large).
#[derive(Debug)]
struct DbError(String);

impl<E: Into<redb::Error>> From<E> for DbError {
    fn from(error: E) -> Self {
        Self(error.into().to_string())
    }
}

/// A redb-backed [`Store`].
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, creating its parent directory.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let db = open_with_retry(path)?;
        let txn = db.begin_write()?;
        for name in [FAMILIES, API_KEYS, LOCKOUT, SIGNING_KEYS, SECRETS] {
            txn.open_table(name)?;
        }
        txn.open_table(REVOKED)?;
        txn.open_table(API_KEY_OF_SUBJECT)?;
        txn.open_table(EXPIRY)?;
        txn.commit()?;
        let db = Arc::new(db);
        spawn_sweeper(Arc::downgrade(&db));
        Ok(Self { db })
    }

    /// Runs `f` on the blocking pool: redb does disk I/O and fsyncs.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, DbError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::new)?
            .map_err(|e| StoreError(e.0))
    }
}

/// A process that just closed the file (a restart in tests) may still hold
/// redb's lock for a moment.
fn open_with_retry(path: &Path) -> Result<Database, redb::DatabaseError> {
    let mut tries = 0;
    loop {
        match Database::create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}{SEP}{id}")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, DbError> {
    serde_json::to_vec(value).map_err(|e| DbError(format!("unreadable record: {e}")))
}

fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, DbError> {
    serde_json::from_slice(bytes).map_err(|e| DbError(format!("unreadable record: {e}")))
}

fn index_expiry(txn: &WriteTransaction, table: &str, key: &str, at: u64) -> Result<(), DbError> {
    let entry = format!("{table}{SEP}{key}");
    txn.open_table(EXPIRY)?.insert((at, entry.as_str()), ())?;
    Ok(())
}

/// Reads a JSON record inside a write transaction.
fn read_json<T: for<'a> Deserialize<'a>>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    k: &str,
) -> Result<Option<T>, DbError> {
    let table = txn.open_table(table)?;
    let value = table.get(k)?;
    value.map(|v| decode(v.value())).transpose()
}

fn write_family(txn: &WriteTransaction, k: &str, record: &FamilyRecord) -> Result<(), DbError> {
    txn.open_table(FAMILIES)?
        .insert(k, encode(record)?.as_slice())?;
    index_expiry(txn, "families", k, record.expires_at)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(|db| {
            db.begin_read()?.open_table(REVOKED)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Revocations for EmbeddedStore {
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()> {
        let k = key(tenant, jti);
        self.run(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(REVOKED)?.insert(k.as_str(), expires_at)?;
            index_expiry(&txn, "revoked", &k, expires_at)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool> {
        let k = key(tenant, jti);
        self.run(move |db| {
            let txn = db.begin_write()?;
            let already = txn
                .open_table(REVOKED)?
                .get(k.as_str())?
                .is_some_and(|exp| exp.value() >= unix_now());
            if already {
                return Ok(false);
            }
            txn.open_table(REVOKED)?.insert(k.as_str(), expires_at)?;
            index_expiry(&txn, "revoked", &k, expires_at)?;
            txn.commit()?;
            Ok(true)
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
        self.run(move |db| {
            let now = unix_now();
            let txn = db.begin_read()?;
            let revoked = txn.open_table(REVOKED)?;
            if revoked
                .get(token_key.as_str())?
                .is_some_and(|exp| exp.value() >= now)
            {
                return Ok(TokenState::Revoked);
            }
            if let Some(family_key) = family_key {
                let families = txn.open_table(FAMILIES)?;
                if let Some(bytes) = families.get(family_key.as_str())? {
                    let record: FamilyRecord = decode(bytes.value())?;
                    if record.revoked {
                        return Ok(TokenState::Revoked);
                    }
                }
            }
            Ok(TokenState::Active)
        })
        .await
    }
}

#[async_trait]
impl Sessions for EmbeddedStore {
    async fn family_start(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<()> {
        let k = key(tenant, family);
        let record = FamilyRecord {
            current: jti.to_owned(),
            revoked: false,
            expires_at,
        };
        self.run(move |db| {
            let txn = db.begin_write()?;
            write_family(&txn, &k, &record)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn family_use(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        next: Option<&str>,
    ) -> StoreResult<FamilyUse> {
        let k = key(tenant, family);
        let jti = jti.to_owned();
        let next = next.map(str::to_owned);
        self.run(move |db| {
            if next.is_none() {
                // Presenting the current token without rotating changes nothing:
                // answer from a read, and write only to mark a reuse.
                let txn = db.begin_read()?;
                let table = txn.open_table(FAMILIES)?;
                let record: Option<FamilyRecord> = table
                    .get(k.as_str())?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                match record {
                    None => return Ok(FamilyUse::Dead),
                    Some(r) if r.revoked || r.expires_at < unix_now() => {
                        return Ok(FamilyUse::Dead);
                    }
                    Some(r) if r.current == jti => return Ok(FamilyUse::Current),
                    Some(_) => {}
                }
            }
            // One write transaction at a time: the check and the rotation are atomic.
            let txn = db.begin_write()?;
            let Some(mut record) = read_json::<FamilyRecord>(&txn, FAMILIES, &k)? else {
                return Ok(FamilyUse::Dead);
            };
            if record.revoked || record.expires_at < unix_now() {
                return Ok(FamilyUse::Dead);
            }
            let outcome = if record.current != jti {
                record.revoked = true;
                FamilyUse::Reused
            } else if let Some(next) = next {
                record.current = next;
                FamilyUse::Current
            } else {
                return Ok(FamilyUse::Current);
            };
            write_family(&txn, &k, &record)?;
            txn.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn family_end(&self, tenant: &str, family: &str) -> StoreResult<Option<u64>> {
        let k = key(tenant, family);
        self.run(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(FAMILIES)?;
            let record: Option<FamilyRecord> = table
                .get(k.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            Ok(record
                .filter(|r| !r.revoked && r.expires_at >= unix_now())
                .map(|r| r.expires_at))
        })
        .await
    }

    async fn family_revoke(&self, tenant: &str, family: &str, expires_at: u64) -> StoreResult<()> {
        let k = key(tenant, family);
        self.run(move |db| {
            let txn = db.begin_write()?;
            let mut record =
                read_json::<FamilyRecord>(&txn, FAMILIES, &k)?.unwrap_or(FamilyRecord {
                    current: String::new(),
                    revoked: true,
                    expires_at,
                });
            record.revoked = true;
            record.expires_at = record.expires_at.max(expires_at);
            write_family(&txn, &k, &record)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

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
        self.run(move |db| {
            let txn = db.begin_write()?;
            {
                let mut of_subject = txn.open_table(API_KEY_OF_SUBJECT)?;
                let mut keys = txn.open_table(API_KEYS)?;
                let previous = of_subject
                    .insert(subject_k.as_str(), key_k.as_str())?
                    .map(|old| old.value().to_owned());
                if let Some(previous) = previous {
                    keys.remove(previous.as_str())?;
                }
                keys.insert(key_k.as_str(), bytes.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let k = key(tenant, key_hash);
        self.run(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(API_KEYS)?;
            let record = table
                .get(k.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            Ok(record)
        })
        .await
    }

    async fn api_key_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> StoreResult<Option<(String, ApiKeyRecord)>> {
        let subject_k = key(tenant, subject);
        self.run(move |db| {
            let txn = db.begin_read()?;
            let of_subject = txn.open_table(API_KEY_OF_SUBJECT)?;
            let Some(key_k) = of_subject
                .get(subject_k.as_str())?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            let keys = txn.open_table(API_KEYS)?;
            let record: Option<ApiKeyRecord> = keys
                .get(key_k.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            let hash = key_k.split_once(SEP).map_or("", |(_, h)| h).to_owned();
            Ok(record.map(|r| (hash, r)))
        })
        .await
    }
}

#[async_trait]
impl Lockout for EmbeddedStore {
    async fn lockout_attempt(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        let keys: Vec<String> = counters.iter().map(|c| key(tenant, c)).collect();
        let policy = *policy;
        self.run(move |db| {
            let now = unix_now_ms();
            // One write transaction at a time: every counter is checked and
            // counted in one atomic step.
            let txn = db.begin_write()?;
            let mut records = Vec::with_capacity(keys.len());
            for k in &keys {
                let record: LockoutRecord = read_json(&txn, LOCKOUT, k)?.unwrap_or_default();
                records.push(record);
            }
            let wait_ms = records
                .iter()
                .map(|r| r.locked_until_ms.saturating_sub(now))
                .max()
                .unwrap_or(0);
            if wait_ms > 0 {
                return Ok(Attempt::Locked {
                    retry_after: Duration::from_millis(wait_ms),
                });
            }
            for record in &mut records {
                if record.window_ends_ms <= now {
                    *record = LockoutRecord {
                        attempts: 0,
                        window_ends_ms: now + policy.window.as_millis() as u64,
                        locked_until_ms: 0,
                    };
                }
            }
            let over = |r: &LockoutRecord| r.attempts >= policy.max_failures;
            let outcome = if records.iter().any(over) {
                for record in records.iter_mut().filter(|r| over(r)) {
                    record.attempts = 0;
                    record.locked_until_ms = now + policy.lock_for.as_millis() as u64;
                }
                Attempt::Locked {
                    retry_after: policy.lock_for,
                }
            } else {
                for record in &mut records {
                    record.attempts += 1;
                }
                Attempt::Allowed
            };
            for (k, record) in keys.iter().zip(&records) {
                txn.open_table(LOCKOUT)?
                    .insert(k.as_str(), encode(record)?.as_slice())?;
                index_expiry(&txn, "lockout", k, record.ends_at())?;
            }
            txn.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn lockout_release(&self, tenant: &str, counter: &str, reset: bool) -> StoreResult<()> {
        let k = key(tenant, counter);
        self.run(move |db| {
            let txn = db.begin_write()?;
            if let Some(mut record) = read_json::<LockoutRecord>(&txn, LOCKOUT, &k)? {
                record.attempts = if reset {
                    0
                } else {
                    record.attempts.saturating_sub(1)
                };
                txn.open_table(LOCKOUT)?
                    .insert(k.as_str(), encode(&record)?.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Secrets for EmbeddedStore {
    async fn signing_key_get_or_insert(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<StoredSigningKey> {
        let k = tenant.to_owned();
        self.run(move |db| {
            let txn = db.begin_write()?;
            if let Some(existing) = read_json::<StoredSigningKey>(&txn, SIGNING_KEYS, &k)? {
                return Ok(existing);
            }
            txn.open_table(SIGNING_KEYS)?
                .insert(k.as_str(), encode(&candidate)?.as_slice())?;
            txn.commit()?;
            Ok(candidate)
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
            let stored = db
                .begin_read()?
                .open_table(SECRETS)?
                .get(k.as_str())?
                .map(|v| v.value().to_vec());
            if let Some(stored) = stored {
                return Ok(stored);
            }
            let txn = db.begin_write()?;
            let existing = txn
                .open_table(SECRETS)?
                .get(k.as_str())?
                .map(|v| v.value().to_vec());
            if let Some(existing) = existing {
                return Ok(existing);
            }
            txn.open_table(SECRETS)?
                .insert(k.as_str(), candidate.as_slice())?;
            txn.commit()?;
            Ok(candidate)
        })
        .await
    }
}

/// An unreadable record is kept (reading it keeps failing closed) but no
/// longer stops the sweep of the others.
fn readable<T>(record: Result<T, DbError>, entry: &str) -> Option<T> {
    record
        .map_err(|e| tracing::warn!(error = %e.0, entry = %entry.replace(SEP, "/"), "unreadable store record kept"))
        .ok()
}

fn spawn_sweeper(db: Weak<Database>) {
    let spawned = std::thread::Builder::new()
        .name("polyauth-store-sweeper".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                let Some(db) = db.upgrade() else { return };
                if let Err(error) = sweep(&db, unix_now()) {
                    tracing::warn!(error = %error.0, "embedded store sweep failed");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "embedded store sweeper not started; expired entries stay until restart");
    }
}

/// Forgets every entry whose end has passed. An index entry whose record was
/// since extended (a lockout counter touched again) leaves the record alone.
fn sweep(db: &Database, now: u64) -> Result<usize, DbError> {
    let txn = db.begin_write()?;
    let mut removed = 0;
    {
        let mut expiry = txn.open_table(EXPIRY)?;
        let due: Vec<(u64, String)> = expiry
            .range((0, "")..(now, ""))?
            .map(|item| item.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()?;
        let mut revoked = txn.open_table(REVOKED)?;
        let mut families = txn.open_table(FAMILIES)?;
        let mut lockout = txn.open_table(LOCKOUT)?;
        for (at, entry) in due {
            expiry.remove((at, entry.as_str()))?;
            let Some((table, k)) = entry.split_once(SEP) else {
                continue;
            };
            let ended = match table {
                "revoked" => revoked.get(k)?.is_some_and(|v| v.value() < now),
                "families" => match families.get(k)? {
                    Some(v) => readable(decode::<FamilyRecord>(v.value()), &entry)
                        .is_some_and(|r| r.expires_at < now),
                    None => false,
                },
                "lockout" => match lockout.get(k)? {
                    Some(v) => readable(decode::<LockoutRecord>(v.value()), &entry)
                        .is_some_and(|r| r.ends_at() < now),
                    None => false,
                },
                _ => false,
            };
            if ended {
                match table {
                    "revoked" => revoked.remove(k)?.is_some(),
                    "families" => families.remove(k)?.is_some(),
                    _ => lockout.remove(k)?.is_some(),
                };
                removed += 1;
            }
        }
    }
    txn.commit()?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweep_forgets_ended_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let now = unix_now();
        store.revoke_token("t", "old", now - 10).await.unwrap();
        store.revoke_token("t", "live", now + 3600).await.unwrap();
        assert_eq!(sweep(&store.db, now).unwrap(), 1);
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(REVOKED).unwrap();
        assert!(table.get("t\u{1f}old").unwrap().is_none());
        assert!(table.get("t\u{1f}live").unwrap().is_some());
    }
}
