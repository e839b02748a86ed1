//! Commits that skip their fsync, made durable together within a second.
//!
//! What a login writes (its refresh family, the subject's session list and
//! the revocation of the sessions that takes out of the count, one commit)
//! commits with redb's `Durability::None`: readers see it at once,
//! but the file is synced by the next durable commit, which is any other
//! write (a revocation, a refresh, a lockout failure), this module's
//! thread at most [`SYNC_EVERY`] later, or the store's close. The per-login
//! fsync cost logins about 3 % of the argon2 rate (BENCHMARKS.md); a crash
//! of the machine or a SIGKILL in that second undoes the logins of it,
//! whole: their refresh tokens are then refused (fail closed: their users
//! log in again), and the sessions they ended are as before them.
//! Everything else that ends or restricts access (revocations, logouts,
//! refresh rotations, API keys, lockout) stays durable before the call
//! returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::{Database, Durability, WriteTransaction};

use super::{DbError, End};

/// How long a commit may wait for its fsync.
pub(super) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Whether a commit since the last durable one skipped its fsync.
#[derive(Default)]
pub(super) struct Unsynced(AtomicBool);

impl Unsynced {
    /// Makes every commit so far durable, when one skipped its fsync;
    /// answers whether it had to. A commit racing this one either precedes
    /// it (and is synced by it) or marks itself again after it.
    pub(super) fn sync(&self, db: &Database) -> Result<bool, DbError> {
        if !self.0.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let synced = db
            .begin_write()
            .map_err(DbError::from)
            .and_then(|txn| txn.commit().map_err(DbError::from));
        if synced.is_err() {
            self.0.store(true, Ordering::Release);
        }
        synced.map(|()| true)
    }
}

/// Runs `f` in a write transaction like [`super::write`], committing it
/// without an fsync; `unsynced` then owes one.
pub(super) fn write_unsynced<T>(
    db: &Database,
    unsynced: &Unsynced,
    f: impl FnOnce(&WriteTransaction) -> Result<End<T>, DbError>,
) -> Result<T, DbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None);
    match f(&txn)? {
        End::Commit(value) => {
            txn.commit()?;
            unsynced.0.store(true, Ordering::Release);
            Ok(value)
        }
        End::Abort(value) => Ok(value),
    }
}

/// Syncs what `unsynced` owes every [`SYNC_EVERY`] until the store closes.
/// Answers `None` when no thread could be started: every commit must then
/// sync itself.
pub(super) fn spawn_syncer(db: Weak<Database>) -> Option<Arc<Unsynced>> {
    let unsynced = Arc::new(Unsynced::default());
    let owed = Arc::clone(&unsynced);
    let spawned = std::thread::Builder::new()
        .name("polyauth-store-sync".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SYNC_EVERY);
                let Some(db) = db.upgrade() else {
                    return;
                };
                let started = std::time::Instant::now();
                match owed.sync(&db) {
                    Ok(false) => {}
                    Ok(true) => crate::meters::store_call("embedded", "sync", started.elapsed(), false),
                    Err(error) => {
                        crate::meters::store_call("embedded", "sync", started.elapsed(), true);
                        tracing::warn!(error = %error.0, "embedded store sync failed; tried again in a second");
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(unsynced),
        Err(error) => {
            tracing::warn!(%error, "embedded store sync thread not started; every commit syncs itself");
            None
        }
    }
}
