//! The background sweep that forgets entries whose end has passed.

use std::sync::Weak;
use std::time::Duration;

use redb::{Database, ReadableTable};

use super::End::Commit;
use super::lockout::LockoutRecord;
use super::sessions::{FamilyRecord, SessionsOf};
use super::{DbError, EXPIRY, FAMILIES, LOCKOUT, REVOKED, SEP, SESSIONS_OF, decode, write};
use crate::store::unix_now;

const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// An unreadable record is kept (reading it keeps failing closed) but no
/// longer stops the sweep of the others.
fn readable<T>(record: Result<T, DbError>, entry: &str) -> Option<T> {
    record
        .map_err(|e| tracing::warn!(error = %e.0, entry = %entry.replace(SEP, "/"), "unreadable store record kept"))
        .ok()
}

pub(super) fn spawn_sweeper(db: Weak<Database>) {
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
    write(db, |txn| {
        let mut removed = 0;
        let mut expiry = txn.open_table(EXPIRY)?;
        let due: Vec<(u64, String)> = expiry
            .range((0, "")..(now, ""))?
            .map(|item| item.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()?;
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
        Ok(Commit(removed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
