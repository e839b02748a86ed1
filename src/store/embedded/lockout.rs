//! Lockout counters of login attempts: failures within a window and a lock
//! in the file; the attempts in flight holding their places, in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::End::{Abort, Commit};
use super::{EmbeddedStore, LOCKOUT, get_json, index_expiry, key, put_json, read, write};
use crate::store::{
    Attempt, Lockout, LockoutPolicy, Reservation, Settle, StoreResult, unix_now_ms,
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct LockoutRecord {
    /// Failures in the window.
    attempts: u32,
    window_ends_ms: u64,
    locked_until_ms: u64,
    /// Attempts in flight, as earlier versions wrote them (holds are kept
    /// in memory now): still honoured until their holds end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    in_flight: Vec<(String, u64)>,
}

impl LockoutRecord {
    pub(super) fn ends_at(&self) -> u64 {
        let held = self.in_flight.iter().map(|(_, until)| *until).max();
        self.window_ends_ms
            .max(self.locked_until_ms)
            .max(held.unwrap_or(0))
            .div_ceil(1000)
    }

    /// The record as it stands at `now`: ended holds and windows forgotten.
    fn at(mut self, now: u64) -> Self {
        self.in_flight.retain(|(_, until)| *until > now);
        if self.window_ends_ms <= now {
            self.attempts = 0;
        }
        self
    }

    fn lock(&mut self, now: u64, policy: &LockoutPolicy) {
        self.attempts = 0;
        self.locked_until_ms = now + policy.lock_for.as_millis() as u64;
    }
}

/// The attempts in flight, by counter key: reservation id and the end of
/// its hold. One process has the file, so a hold lives only as long as the
/// process that took it: it is kept here, not written (a login's reserve
/// and its settle cost no commit unless a failure is counted or cleared).
/// The lock also makes each check-and-hold atomic with every settle.
#[derive(Default)]
pub(super) struct InFlight(std::sync::Mutex<Holds>);

/// Counter key → (reservation id, end of its hold) of each attempt in flight.
type Holds = HashMap<String, Vec<(String, u64)>>;

impl InFlight {
    /// Forgets holds that ended (the sweeper's round): a hold whose login
    /// went away before settling ends with its `hold`, not later.
    pub(super) fn forget_ended(&self, now_ms: u64) {
        self.lock().retain(|_, held| {
            held.retain(|(_, until)| *until > now_ms);
            !held.is_empty()
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holds> {
        // Holds are individually true; a panic leaves nothing half-made.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The holds, when nobody else has them right now.
    fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, Holds>> {
        match self.0.try_lock() {
            Ok(holds) => Some(holds),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// Keeps the holds on `k` that `keep` says to keep, forgetting `k` when
/// none is left; answers how many are left.
fn keep_holds(in_flight: &mut Holds, k: &str, keep: impl Fn(&(String, u64)) -> bool) -> usize {
    let Some(held) = in_flight.get_mut(k) else {
        return 0;
    };
    held.retain(keep);
    let left = held.len();
    if left == 0 {
        in_flight.remove(k);
    }
    left
}

/// The holds on `k` still running at `now`.
fn holds(in_flight: &mut Holds, k: &str, now: u64) -> usize {
    keep_holds(in_flight, k, |(_, until)| *until > now)
}

#[async_trait]
impl Lockout for EmbeddedStore {
    async fn lockout_reserve(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        let keys: Vec<String> = counters.iter().map(|c| key(tenant, c)).collect();
        let policy = *policy;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let in_flight = Arc::clone(&self.in_flight);
        self.run("lockout_reserve", move |db| {
            // Every counter is checked and held in one atomic step.
            let mut in_flight = in_flight.lock();
            let now = unix_now_ms();
            let records: Vec<LockoutRecord> = read(db, |txn| {
                let table = txn.open_table(LOCKOUT)?;
                keys.iter()
                    .map(|k| {
                        let record: Option<LockoutRecord> = get_json(&table, k)?;
                        Ok(record.unwrap_or_default().at(now))
                    })
                    .collect()
            })?;
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
            if records.iter().any(|r| r.attempts >= policy.max_failures) {
                // Only a limit lowered since the failures were counted gets here.
                return write(db, |txn| {
                    for (k, mut record) in keys.iter().zip(records) {
                        if record.attempts >= policy.max_failures {
                            record.lock(now, &policy);
                            put_json(txn, LOCKOUT, k, &record)?;
                            index_expiry(txn, "lockout", k, record.ends_at())?;
                        }
                    }
                    Ok(Commit(Attempt::Locked {
                        retry_after: policy.lock_for,
                    }))
                });
            }
            let full = keys.iter().zip(&records).any(|(k, r)| {
                let held = r.in_flight.len() + holds(&mut in_flight, k, now);
                r.attempts as usize + held >= policy.max_failures as usize
            });
            if full {
                return Ok(Attempt::Busy);
            }
            let until = now + policy.hold.as_millis() as u64;
            for k in keys {
                in_flight.entry(k).or_default().push((id.clone(), until));
            }
            let clean = records.iter().all(|r| r.attempts == 0);
            Ok(Attempt::Allowed(Reservation { id, clean }))
        })
        .await
    }

    async fn lockout_settle(
        &self,
        tenant: &str,
        counters: &[&str],
        reservation: &Reservation,
        outcome: Settle<'_>,
        policy: &LockoutPolicy,
    ) -> StoreResult<()> {
        let clear: Vec<bool> = counters
            .iter()
            .map(|c| matches!(outcome, Settle::Passed { clear } if clear.contains(c)))
            .collect();
        let failed = outcome == Settle::Failed;
        let keys: Vec<String> = counters.iter().map(|c| key(tenant, c)).collect();
        let policy = *policy;
        let id = reservation.id.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let end_holds = move |in_flight: &mut Holds| {
            for k in &keys {
                keep_holds(in_flight, k, |(holder, _)| *holder != id);
            }
            keys
        };
        let nothing_to_write = !failed && (reservation.clean || !clear.contains(&true));
        if nothing_to_write && let Some(mut holds) = in_flight.try_lock() {
            // The common login (a right password, no failures) ends its
            // holds here, with no trip to the blocking pool. A reserve
            // holding the lock may be reading the file: never wait for it
            // on a worker.
            end_holds(&mut holds);
            return Ok(());
        }
        self.run("lockout_settle", move |db| {
            let mut in_flight = in_flight.lock();
            let now = unix_now_ms();
            // The hold ends whatever happens next: a failed write below
            // fails the login closed, it does not keep the place taken.
            let keys = end_holds(&mut in_flight);
            if nothing_to_write {
                return Ok(());
            }
            write(db, |txn| {
                let mut changed = false;
                for (k, clear) in keys.iter().zip(clear) {
                    let record: Option<LockoutRecord> = get_json(&txn.open_table(LOCKOUT)?, k)?;
                    let mut record = match record {
                        Some(record) => record.at(now),
                        // Nothing to clear.
                        None if !failed => continue,
                        None => LockoutRecord::default(),
                    };
                    if failed {
                        if record.window_ends_ms <= now {
                            record.window_ends_ms = now + policy.window.as_millis() as u64;
                        }
                        record.attempts += 1;
                        if record.attempts >= policy.max_failures {
                            record.lock(now, &policy);
                        }
                    } else if clear && record.attempts > 0 {
                        record.attempts = 0;
                    } else {
                        continue;
                    }
                    put_json(txn, LOCKOUT, k, &record)?;
                    index_expiry(txn, "lockout", k, record.ends_at())?;
                    changed = true;
                }
                Ok(if changed { Commit(()) } else { Abort(()) })
            })
        })
        .await
    }

    async fn lockout_clear(&self, tenant: &str, counter: &str) -> StoreResult<()> {
        let k = key(tenant, counter);
        self.write("lockout_clear", move |txn| {
            // Its expiry entry stays; the sweep finds nothing there to forget.
            let removed = txn.open_table(LOCKOUT)?.remove(k.as_str())?.is_some();
            Ok(if removed { Commit(()) } else { Abort(()) })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
            lock_for: Duration::from_secs(60),
            hold: Duration::from_secs(10),
        }
    }

    fn rows(store: &EmbeddedStore) -> u64 {
        let txn = store.db.begin_read().unwrap();
        txn.open_table(LOCKOUT).unwrap().len().unwrap()
    }

    async fn reserve(store: &EmbeddedStore) -> Attempt {
        store
            .lockout_reserve("t", &["acct"], &policy())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_login_that_passes_writes_nothing_and_failures_outlive_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            let Attempt::Allowed(held) = reserve(&store).await else {
                panic!("nothing stands in the way");
            };
            let passed = Settle::Passed { clear: &["acct"] };
            store
                .lockout_settle("t", &["acct"], &held, passed, &policy())
                .await
                .unwrap();
            assert_eq!(rows(&store), 0, "a hold is not written");
            for _ in 0..2 {
                let Attempt::Allowed(held) = reserve(&store).await else {
                    panic!("not locked yet");
                };
                store
                    .lockout_settle("t", &["acct"], &held, Settle::Failed, &policy())
                    .await
                    .unwrap();
            }
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert!(matches!(reserve(&store).await, Attempt::Locked { .. }));
    }

    #[tokio::test]
    async fn holds_in_flight_count_against_the_limit_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let Attempt::Allowed(first) = reserve(&store).await else {
            panic!("free");
        };
        let Attempt::Allowed(_second) = reserve(&store).await else {
            panic!("one place left");
        };
        assert_eq!(reserve(&store).await, Attempt::Busy);
        let passed = Settle::Passed { clear: &[] };
        store
            .lockout_settle("t", &["acct"], &first, passed, &policy())
            .await
            .unwrap();
        assert!(matches!(reserve(&store).await, Attempt::Allowed(_)));
    }

    #[tokio::test]
    async fn only_a_reservation_made_after_a_failure_has_one_to_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let passed = Settle::Passed { clear: &["acct"] };
        let Attempt::Allowed(clean) = reserve(&store).await else {
            panic!("free");
        };
        assert!(clean.clean);
        let Attempt::Allowed(failing) = reserve(&store).await else {
            panic!("one place left");
        };
        // The clean reservation's pass ends its hold in memory: its place is free.
        store
            .lockout_settle("t", &["acct"], &clean, passed, &policy())
            .await
            .unwrap();
        store
            .lockout_settle("t", &["acct"], &failing, Settle::Failed, &policy())
            .await
            .unwrap();
        let attempts = |store: &EmbeddedStore| {
            let txn = store.db.begin_read().unwrap();
            let record: Option<LockoutRecord> =
                get_json(&txn.open_table(LOCKOUT).unwrap(), &key("t", "acct")).unwrap();
            record.map_or(0, |r| r.attempts)
        };
        assert_eq!(attempts(&store), 1);
        let Attempt::Allowed(after_failure) = reserve(&store).await else {
            panic!("one failure of two");
        };
        assert!(!after_failure.clean, "a failure is there to clear");
        store
            .lockout_settle("t", &["acct"], &after_failure, passed, &policy())
            .await
            .unwrap();
        assert_eq!(attempts(&store), 0, "the pass cleared the failure");
        assert!(matches!(reserve(&store).await, Attempt::Allowed(_)));
    }
}
