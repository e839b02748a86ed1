//! Lockout counters: a hash each (failures, window end, lock end, one field
//! per attempt in flight), ending with the last of them.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::store::{Attempt, Lockout, LockoutPolicy, Reservation, Settle, StoreResult};

#[async_trait]
impl Lockout for RedisStore {
    async fn lockout_reserve(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut script = self.scripts.lockout_reserve.prepare_invoke();
        for counter in counters {
            script.key(self.keys.of(tenant, "lockout", counter));
        }
        script
            .arg(policy.max_failures)
            .arg(policy.lock_for.as_millis() as u64)
            .arg(&id)
            .arg(policy.hold.as_millis() as u64);
        let answer: Vec<u64> = self.invoke("lockout_reserve", &script).await?;
        Ok(match answer.as_slice() {
            // The script settles in one round trip either way.
            [0] => Attempt::Allowed(Reservation { id, clean: false }),
            [1, ms] => Attempt::Locked {
                retry_after: Duration::from_millis(*ms),
            },
            _ => Attempt::Busy,
        })
    }

    async fn lockout_settle(
        &self,
        tenant: &str,
        counters: &[&str],
        reservation: &Reservation,
        outcome: Settle<'_>,
        policy: &LockoutPolicy,
    ) -> StoreResult<()> {
        let mut script = self.scripts.lockout_settle.prepare_invoke();
        for counter in counters {
            script.key(self.keys.of(tenant, "lockout", counter));
        }
        script
            .arg(&reservation.id)
            .arg(match outcome {
                Settle::Failed => "failed",
                Settle::Passed { .. } => "passed",
            })
            .arg(policy.max_failures)
            .arg(policy.window.as_millis() as u64)
            .arg(policy.lock_for.as_millis() as u64);
        for counter in counters {
            let clear = matches!(outcome, Settle::Passed { clear } if clear.contains(counter));
            script.arg(if clear { "1" } else { "0" });
        }
        self.invoke("lockout_settle", &script).await
    }

    async fn lockout_clear(&self, tenant: &str, counter: &str) -> StoreResult<()> {
        self.call(
            "lockout_clear",
            redis::cmd("HDEL")
                .arg(self.keys.of(tenant, "lockout", counter))
                .arg(&["failures", "window_ends", "locked_until"])
                .query_async::<()>(&mut self.conn()),
        )
        .await
    }
}
