//! Lockout counters: a hash each (attempts, locked until), ending with
//! its window or its lock.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::store::{Attempt, Lockout, LockoutPolicy, StoreResult};

#[async_trait]
impl Lockout for RedisStore {
    async fn lockout_attempt(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        let mut script = self.scripts.lockout_attempt.prepare_invoke();
        for counter in counters {
            script.key(self.keys.of(tenant, "lockout", counter));
        }
        script
            .arg(policy.max_failures)
            .arg(policy.window.as_millis() as u64)
            .arg(policy.lock_for.as_millis() as u64);
        let wait_ms: u64 = self.invoke("lockout_attempt", &script).await?;
        Ok(match wait_ms {
            0 => Attempt::Allowed,
            ms => Attempt::Locked {
                retry_after: Duration::from_millis(ms),
            },
        })
    }

    async fn lockout_release(&self, tenant: &str, counter: &str, reset: bool) -> StoreResult<()> {
        self.invoke(
            "lockout_release",
            self.scripts
                .lockout_release
                .key(self.keys.of(tenant, "lockout", counter))
                .arg(if reset { "reset" } else { "one" }),
        )
        .await
    }
}
