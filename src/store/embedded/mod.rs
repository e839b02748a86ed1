//! The default store: one redb file, durable across restarts, one process.
//!
//! Every write commits with immediate durability before the call returns, so
//! a revocation reported done survives a crash; a login's new session alone
//! is synced within a second (see [`sync`]). Entries with a natural end are
//! listed in an expiry index that a background thread sweeps.

mod api_keys;
mod bulk;
mod lockout;
mod revocations;
mod revoked;
mod secrets;
mod sessions;
mod sweep;
mod sync;
mod users;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError, StoreResult};

const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");
const FAMILIES: TableDefinition<&str, &[u8]> = TableDefinition::new("families");
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const API_KEY_OF_SUBJECT: TableDefinition<&str, &str> = TableDefinition::new("api_key_of_subject");
const LOCKOUT: TableDefinition<&str, &[u8]> = TableDefinition::new("lockout");
/// A subject's sessions: (started, family, end) by tenant and subject.
const SESSIONS_OF: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions_of");
const SIGNING_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing_keys");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// The user directory: (tenant, id) -> user, (tenant, email) -> id.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USER_EMAILS: TableDefinition<&str, &str> = TableDefinition::new("user_emails");
/// Emails of deleted users, (tenant, email): never migrated back.
const RETIRED_EMAILS: TableDefinition<&str, ()> = TableDefinition::new("retired_emails");
/// (unix seconds, "table\x1fkey") for every entry that ends.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

const SEP: char = '\u{1f}';

/// redb's own page cache (its default is 1 GiB, which the resident set
/// would grow into as the file grows). Verify reads nothing from the file
/// (revocations and API keys are answered from memory); what does read it
/// (logins, refreshes) finds the rest in the kernel's page cache.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Any redb failure, as text (redb's own error type is large).
#[derive(Debug)]
struct DbError(String);

impl<E: Into<redb::Error>> From<E> for DbError {
    fn from(error: E) -> Self {
        Self(error.into().to_string())
    }
}

/// How a write transaction ends, with the answer to give.
enum End<T> {
    /// Commit what was written.
    Commit(T),
    /// Nothing was written: drop the transaction, which aborts it.
    Abort(T),
}

/// The store file is held by another process (a running server): the
/// embedded store serves one process at a time.
#[derive(Debug, thiserror::Error)]
#[error("{} is in use by another process (the embedded store serves one process at a time)", .0.display())]
pub struct StoreInUse(pub std::path::PathBuf);

/// A redb-backed [`Store`].
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Live revocations, answered without a read (see [`revoked`]).
    revoked: Arc<revoked::View>,
    /// Which store of the process this is, and how many API-key writes it
    /// has made: what a remembered API key is checked against (see
    /// [`api_keys`]).
    instance: u64,
    api_key_writes: Arc<std::sync::atomic::AtomicU64>,
    /// Login attempts in flight (see [`lockout`]).
    in_flight: Arc<lockout::InFlight>,
    /// Bumped by each rotation. One process has the file, so no other
    /// process can rotate: this one's own rotations are all there is to hear.
    key_changes: tokio::sync::watch::Sender<u64>,
    /// What commits without an fsync owe (see [`sync`]); `None`: nothing
    /// may skip it.
    unsynced: Option<Arc<sync::Unsynced>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, creating its parent directory.
    /// It holds signing keys and secrets, so what polyauth creates is
    /// owner-only (directory 0700, file 0600); what the operator made is
    /// left as it is, with a warning when others can get at the file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        create_owner_only(path)?;
        let db = open_with_retry(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreInUse(path.to_owned()).into(),
            other => anyhow::Error::from(other),
        })?;
        let txn = db.begin_write()?;
        for name in [
            FAMILIES,
            API_KEYS,
            LOCKOUT,
            SIGNING_KEYS,
            SECRETS,
            SESSIONS_OF,
            USERS,
        ] {
            txn.open_table(name)?;
        }
        txn.open_table(REVOKED)?;
        txn.open_table(API_KEY_OF_SUBJECT)?;
        txn.open_table(USER_EMAILS)?;
        txn.open_table(RETIRED_EMAILS)?;
        txn.open_table(EXPIRY)?;
        txn.commit()?;
        let revoked = revoked::View::load(&db.begin_read()?, super::unix_now())
            .map_err(|e| anyhow::anyhow!("cannot read the revocations: {}", e.0))?;
        tracing::debug!(entries = revoked.len(), "live revocations loaded");
        let (db, revoked) = (Arc::new(db), Arc::new(revoked));
        let in_flight = Arc::new(lockout::InFlight::default());
        sweep::spawn_sweeper(
            Arc::downgrade(&db),
            Arc::downgrade(&revoked),
            Arc::downgrade(&in_flight),
        );
        let unsynced = sync::spawn_syncer(Arc::downgrade(&db));
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Self {
            db,
            revoked,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            api_key_writes: Arc::default(),
            in_flight,
            key_changes: tokio::sync::watch::Sender::new(0),
            unsynced,
        })
    }

    /// Runs `f` on the blocking pool: redb does disk I/O and fsyncs.
    async fn run<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, DbError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::new)
            .and_then(|done| done.map_err(|e| StoreError(e.0)));
        crate::meters::store_call("embedded", what, started.elapsed(), done.is_err());
        done
    }

    /// Runs `f` in a read transaction, on the blocking pool.
    async fn read<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, DbError> + Send + 'static,
    {
        self.run(what, move |db| read(db, f)).await
    }

    /// Runs `f` in a write transaction on the blocking pool, committed
    /// without an fsync when the sync thread runs (see [`sync`]).
    async fn write_unsynced<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<End<T>, DbError> + Send + 'static,
    {
        match &self.unsynced {
            Some(unsynced) => {
                let unsynced = Arc::clone(unsynced);
                self.run(what, move |db| sync::write_unsynced(db, &unsynced, f))
                    .await
            }
            None => self.write(what, f).await,
        }
    }

    /// Runs `f` in a write transaction, on the blocking pool; see [`write`].
    async fn write<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<End<T>, DbError> + Send + 'static,
    {
        self.run(what, move |db| write(db, f)).await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read("ping", |txn| {
            txn.open_table(REVOKED)?;
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        let Some(unsynced) = self.unsynced.clone() else {
            return Ok(());
        };
        self.run("flush", move |db| unsynced.sync(db).map(drop))
            .await
    }
}

impl Drop for EmbeddedStore {
    /// The last handle going away syncs what is owed (a stop that did not
    /// [`Store::flush`]).
    fn drop(&mut self) {
        if let Some(unsynced) = &self.unsynced
            && let Err(error) = unsynced.sync(&self.db)
        {
            tracing::warn!(error = %error.0, "embedded store not synced at close");
        }
    }
}

/// Creates the store file with mode 0600 before redb opens it (redb would
/// create it 0644 under the usual umask); an existing file is only checked.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = %format!("{mode:o}"),
                    "the store file is open to other users, who could read its signing keys and forge tokens: chmod 600 it"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A process that just closed the file (a restart in tests) may still hold
/// redb's lock for a moment.
fn open_with_retry(path: &Path) -> Result<Database, redb::DatabaseError> {
    let mut tries = 0;
    loop {
        match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Runs `f` in a read transaction.
fn read<T>(
    db: &Database,
    f: impl FnOnce(&ReadTransaction) -> Result<T, DbError>,
) -> Result<T, DbError> {
    f(&db.begin_read()?)
}

/// Runs `f` in a write transaction (one at a time), and commits it when `f`
/// says so. A failure drops the transaction, so nothing of it is kept.
fn write<T>(
    db: &Database,
    f: impl FnOnce(&WriteTransaction) -> Result<End<T>, DbError>,
) -> Result<T, DbError> {
    let txn = db.begin_write()?;
    match f(&txn)? {
        End::Commit(value) => {
            txn.commit()?;
            Ok(value)
        }
        End::Abort(value) => Ok(value),
    }
}

fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}{SEP}{id}")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, DbError> {
    serde_json::to_vec(value).map_err(|e| DbError(format!("unreadable record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DbError> {
    serde_json::from_slice(bytes).map_err(|e| DbError(format!("unreadable record: {e}")))
}

/// Reads the JSON record at `k`, if there is one.
fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
) -> Result<Option<T>, DbError> {
    table.get(k)?.map(|v| decode(v.value())).transpose()
}

/// Writes `value` as the JSON record at `k`.
fn put_json<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    k: &str,
    value: &T,
) -> Result<(), DbError> {
    txn.open_table(table)?
        .insert(k, encode(value)?.as_slice())?;
    Ok(())
}

fn index_expiry(txn: &WriteTransaction, table: &str, key: &str, at: u64) -> Result<(), DbError> {
    let entry = format!("{table}{SEP}{key}");
    txn.open_table(EXPIRY)?.insert((at, entry.as_str()), ())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_it_creates_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/nested/s.redb");
        drop(EmbeddedStore::open(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("data/nested")), 0o700);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
    }

    #[test]
    fn what_the_operator_made_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = data.join("s.redb");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        drop(EmbeddedStore::open(&path).unwrap());
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(&data), 0o755);
    }
}
