//! The background sweep that forgets entries whose end has passed.

use std::sync::Weak;
use std::time::Duration;

use redb::{Database, ReadableTable};

use super::End::{Abort, Commit};
use super::lockout::InFlight;
use super::lockout::LockoutRecord;
use super::revoked::View;
use super::sessions::{FamilyRecord, SessionsOf};
use super::{DbError, EXPIRY, FAMILIES, LOCKOUT, REVOKED, SEP, SESSIONS_OF, decode, write};
use crate::store::unix_now;

const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Index entries handled per write transaction.
const BATCH: usize = 1_000;
/// The writer lock is left free this long between two batches.
const BETWEEN_BATCHES: Duration = Duration::from_millis(1);

/// An unreadable record is kept (reading it keeps failing closed) but no
/// longer stops the sweep of the others.
fn readable<T>(record: Result<T, DbError>, entry: &str) -> Option<T> {
    record
        .map_err(|e| tracing::warn!(error = %e.0, entry = %entry.replace(SEP, "/"), "unreadable store record kept"))
        .ok()
}

pub(super) fn spawn_sweeper(db: Weak<Database>, revoked: Weak<View>, in_flight: Weak<InFlight>) {
    let spawned = std::thread::Builder::new()
        .name("polyauth-store-sweeper".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                let (Some(db), Some(revoked)) = (db.upgrade(), revoked.upgrade()) else {
                    return;
                };
                let now = unix_now();
                if let Err(error) = sweep(&db, now) {
                    tracing::warn!(error = %error.0, "embedded store sweep failed");
                }
                revoked.forget_ended(now);
                if let Some(in_flight) = in_flight.upgrade() {
                    in_flight.forget_ended(crate::store::unix_now_ms());
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "embedded store sweeper not started; expired entries stay until restart");
    }
}

/// Forgets every entry whose end has passed, [`BATCH`] index entries per
/// write transaction, so the store's other writers (a revocation, a login's
/// lockout counter) wait for one batch at most, never for the whole sweep.
fn sweep(db: &Database, now: u64) -> Result<usize, DbError> {
    let mut removed = 0;
    loop {
        let (forgotten, more) = sweep_batch(db, now)?;
        removed += forgotten;
        if !more {
            return Ok(removed);
        }
        // redb's writer lock is not fair: straight away, the next batch would
        // usually take it again before a waiting writer has woken up.
        std::thread::sleep(BETWEEN_BATCHES);
    }
}

/// Forgets up to [`BATCH`] due entries; `true` when there may be more. An
/// index entry whose record was since extended (a lockout counter touched
/// again) leaves the record alone.
fn sweep_batch(db: &Database, now: u64) -> Result<(usize, bool), DbError> {
    write(db, |txn| {
        let mut removed = 0;
        let mut expiry = txn.open_table(EXPIRY)?;
        let due: Vec<(u64, String)> = expiry
            .range((0, "")..(now, ""))?
            .take(BATCH)
            .map(|item| item.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()?;
        if due.is_empty() {
            return Ok(Abort((0, false)));
        }
        let more = due.len() == BATCH;
        let mut revoked = txn.open_table(REVOKED)?;
        let mut families = txn.open_table(FAMILIES)?;
        let mut lockout = txn.open_table(LOCKOUT)?;
        let mut sessions_of = txn.open_table(SESSIONS_OF)?;
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
                "sessions_of" => match sessions_of.get(k)? {
                    Some(v) => readable(decode::<SessionsOf>(v.value()), &entry)
                        .is_some_and(|r| r.ends_at() < now),
                    None => false,
                },
                _ => false,
            };
            if ended {
                match table {
                    "revoked" => revoked.remove(k)?.is_some(),
                    "families" => families.remove(k)?.is_some(),
                    "sessions_of" => sessions_of.remove(k)?.is_some(),
                    _ => lockout.remove(k)?.is_some(),
                };
                removed += 1;
            }
        }
        Ok(Commit((removed, more)))
    })
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;
    use crate::store::embedded::revocations;
    use crate::store::{EmbeddedStore, Revocations};

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

    /// Entries in `table`, read beside whatever writer is running.
    fn count(store: &EmbeddedStore, table: redb::TableDefinition<&str, u64>) -> u64 {
        let txn = store.db.begin_read().unwrap();
        txn.open_table(table).unwrap().len().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_sweep_lets_other_writers_through() {
        const DUE: u64 = 100_000;
        const WRITES: u64 = 10;
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let now = unix_now();
        write(&store.db, |txn| {
            for n in 0..DUE {
                revocations::revoke(txn, &store.revoked, &format!("t{SEP}old-{n}"), now - 10)?;
            }
            Ok(Commit(()))
        })
        .unwrap();
        let db = std::sync::Arc::clone(&store.db);
        let sweeper = std::thread::spawn(move || sweep(&db, now));
        while count(&store, REVOKED) == DUE {
            std::thread::yield_now();
        }
        for n in 0..WRITES {
            store
                .revoke_token("t", &format!("new-{n}"), now + 3600)
                .await
                .unwrap();
        }
        // Every write went through while due entries were still left: the
        // sweep had not finished, so it did not hold the writer throughout.
        assert!(count(&store, REVOKED) > WRITES, "the sweep ended first");
        assert_eq!(sweeper.join().unwrap().unwrap(), DUE as usize);
        assert_eq!(count(&store, REVOKED), WRITES);
        let txn = store.db.begin_read().unwrap();
        assert_eq!(txn.open_table(EXPIRY).unwrap().len().unwrap(), WRITES);
    }
}
