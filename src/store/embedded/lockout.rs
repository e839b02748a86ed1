//! Lockout counters of login attempts: failures within a window, a lock,
//! and the attempts in flight holding their places.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::End::{Abort, Commit};
use super::{EmbeddedStore, LOCKOUT, get_json, index_expiry, key, put_json};
use crate::store::{
    Attempt, Lockout, LockoutPolicy, Reservation, Settle, StoreResult, unix_now_ms,
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct LockoutRecord {
    /// Failures in the window.
    attempts: u32,
    window_ends_ms: u64,
    locked_until_ms: u64,
    /// Attempts in flight: reservation id and the end of its hold.
    #[serde(default)]
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
        // One write transaction at a time: every counter is checked and
        // held in one atomic step.
        self.write("lockout_reserve", move |txn| {
            let now = unix_now_ms();
            let mut records = Vec::with_capacity(keys.len());
            for k in &keys {
                let record: Option<LockoutRecord> = get_json(&txn.open_table(LOCKOUT)?, k)?;
                records.push(record.unwrap_or_default().at(now));
            }
            let wait_ms = records
                .iter()
                .map(|r| r.locked_until_ms.saturating_sub(now))
                .max()
                .unwrap_or(0);
            if wait_ms > 0 {
                return Ok(Abort(Attempt::Locked {
                    retry_after: Duration::from_millis(wait_ms),
                }));
            }
            let outcome = if records.iter().any(|r| r.attempts >= policy.max_failures) {
                // Only a limit lowered since the failures were counted gets here.
                for record in records
                    .iter_mut()
                    .filter(|r| r.attempts >= policy.max_failures)
                {
                    record.lock(now, &policy);
                }
                Attempt::Locked {
                    retry_after: policy.lock_for,
                }
            } else if records
                .iter()
                .any(|r| r.attempts as usize + r.in_flight.len() >= policy.max_failures as usize)
            {
                return Ok(Abort(Attempt::Busy));
            } else {
                let until = now + policy.hold.as_millis() as u64;
                for record in &mut records {
                    record.in_flight.push((id.clone(), until));
                }
                Attempt::Allowed(Reservation(id))
            };
            for (k, record) in keys.iter().zip(&records) {
                put_json(txn, LOCKOUT, k, record)?;
                index_expiry(txn, "lockout", k, record.ends_at())?;
            }
            Ok(Commit(outcome))
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
        let id = reservation.0.clone();
        self.write("lockout_settle", move |txn| {
            let now = unix_now_ms();
            for (k, clear) in keys.iter().zip(clear) {
                let record: Option<LockoutRecord> = get_json(&txn.open_table(LOCKOUT)?, k)?;
                let mut record = match record {
                    Some(record) => record.at(now),
                    // Nothing to give back and nothing to clear.
                    None if !failed => continue,
                    None => LockoutRecord::default(),
                };
                record.in_flight.retain(|(held, _)| *held != id);
                if failed {
                    if record.window_ends_ms <= now {
                        record.window_ends_ms = now + policy.window.as_millis() as u64;
                    }
                    record.attempts += 1;
                    if record.attempts >= policy.max_failures {
                        record.lock(now, &policy);
                    }
                } else if clear {
                    record.attempts = 0;
                }
                put_json(txn, LOCKOUT, k, &record)?;
                index_expiry(txn, "lockout", k, record.ends_at())?;
            }
            Ok(Commit(()))
        })
        .await
    }
}
