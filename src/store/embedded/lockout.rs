//! Lockout counters of login attempts.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::End::{Abort, Commit};
use super::{EmbeddedStore, LOCKOUT, get_json, index_expiry, key, put_json, write};
use crate::store::{Attempt, Lockout, LockoutPolicy, StoreResult, unix_now_ms};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct LockoutRecord {
    attempts: u32,
    window_ends_ms: u64,
    locked_until_ms: u64,
}

impl LockoutRecord {
    pub(super) fn ends_at(&self) -> u64 {
        self.window_ends_ms.max(self.locked_until_ms).div_ceil(1000)
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
            write(db, |txn| {
                let mut records = Vec::with_capacity(keys.len());
                for k in &keys {
                    let record: Option<LockoutRecord> = get_json(&txn.open_table(LOCKOUT)?, k)?;
                    records.push(record.unwrap_or_default());
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
                    put_json(txn, LOCKOUT, k, record)?;
                    index_expiry(txn, "lockout", k, record.ends_at())?;
                }
                Ok(Commit(outcome))
            })
        })
        .await
    }

    async fn lockout_release(&self, tenant: &str, counter: &str, reset: bool) -> StoreResult<()> {
        let k = key(tenant, counter);
        self.write(move |txn| {
            let record: Option<LockoutRecord> = get_json(&txn.open_table(LOCKOUT)?, &k)?;
            if let Some(mut record) = record {
                record.attempts = if reset {
                    0
                } else {
                    record.attempts.saturating_sub(1)
                };
                put_json(txn, LOCKOUT, &k, &record)?;
            }
            Ok(Commit(()))
        })
        .await
    }
}
