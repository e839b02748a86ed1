//! Refresh families: a hash each (current token, revoked, end), ending
//! with the family.

use async_trait::async_trait;

use super::RedisStore;
use super::cache::Event;
use crate::store::{FamilyUse, Sessions, StoreError, StoreResult, unix_now};

impl RedisStore {
    /// This replica revoked a family: its own memory learns it at once.
    fn family_dead(&self, tenant: &str, family: &str, until: u64) {
        self.cache.apply(Event::Family {
            tenant: tenant.to_owned(),
            family: family.to_owned(),
            until,
        });
    }
}

#[async_trait]
impl Sessions for RedisStore {
    async fn family_start(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<()> {
        let key = self.keys.of(tenant, "family", family);
        let end = expires_at.to_string();
        self.call(
            "family_start",
            redis::pipe()
                .atomic()
                .hset_multiple(&key, &[("current", jti), ("revoked", "0"), ("end", &end)])
                .ignore()
                // Its tokens are valid through second `end`: keep it past that.
                .expire_at(&key, expires_at as i64 + 1)
                .ignore()
                .query_async::<()>(&mut self.conn()),
        )
        .await
    }

    async fn family_use(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        next: Option<&str>,
    ) -> StoreResult<FamilyUse> {
        let outcome: Vec<u64> = self
            .invoke(
                "family_use",
                self.scripts
                    .family_use
                    .key(self.keys.of(tenant, "family", family))
                    .arg(jti)
                    .arg(next.unwrap_or_default())
                    .arg(self.announce(Event::message('f', tenant, family))),
            )
            .await?;
        Ok(match outcome.as_slice() {
            [1] => FamilyUse::Current,
            [2, until] => {
                self.family_dead(tenant, family, *until);
                FamilyUse::Reused
            }
            _ => FamilyUse::Dead,
        })
    }

    async fn family_end(&self, tenant: &str, family: &str) -> StoreResult<Option<u64>> {
        let (current, revoked, end): (Option<String>, Option<String>, Option<u64>) = self
            .call(
                "family_end",
                redis::cmd("HMGET")
                    .arg(self.keys.of(tenant, "family", family))
                    .arg(&["current", "revoked", "end"])
                    .query_async(&mut self.conn()),
            )
            .await?;
        let live = current.is_some() && revoked.as_deref() != Some("1");
        Ok(end.filter(|_| live))
    }

    async fn family_current(&self, tenant: &str, family: &str) -> StoreResult<Option<String>> {
        let (current, revoked): (Option<String>, Option<String>) = self
            .call(
                "family_current",
                redis::cmd("HMGET")
                    .arg(self.keys.of(tenant, "family", family))
                    .arg(&["current", "revoked"])
                    .query_async(&mut self.conn()),
            )
            .await?;
        // The key ends with the family (its TTL), so a present one has not ended.
        Ok(current.filter(|_| revoked.as_deref() != Some("1")))
    }

    async fn family_revoke(&self, tenant: &str, family: &str, expires_at: u64) -> StoreResult<()> {
        let until: u64 = self
            .invoke(
                "family_revoke",
                self.scripts
                    .family_revoke
                    .key(self.keys.of(tenant, "family", family))
                    .arg(expires_at)
                    .arg(self.announce(Event::message('f', tenant, family))),
            )
            .await?;
        self.family_dead(tenant, family, until);
        Ok(())
    }

    async fn sessions_add(
        &self,
        tenant: &str,
        subject: &str,
        family: &str,
        expires_at: u64,
        max: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        let evicted: Vec<String> = self
            .invoke(
                "sessions_add",
                self.scripts
                    .sessions_add
                    .key(self.keys.of(tenant, "sessions", subject))
                    .arg(family)
                    .arg(expires_at)
                    .arg(max),
            )
            .await?;
        evicted
            .chunks(2)
            .map(|pair| match pair {
                [family, end] => end
                    .parse::<f64>()
                    .map(|end| (family.clone(), end as u64))
                    .map_err(|_| StoreError(format!("unreadable session end `{end}`"))),
                _ => Err(StoreError("unreadable session list".into())),
            })
            .collect()
    }

    async fn sessions_of(&self, tenant: &str, subject: &str) -> StoreResult<Vec<(String, u64)>> {
        let all: Vec<(String, f64)> = self
            .call(
                "sessions_of",
                redis::cmd("ZRANGE")
                    .arg(self.keys.of(tenant, "sessions", subject))
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut self.conn()),
            )
            .await?;
        let now = unix_now();
        // Members are the start (16 digits), `:`, the family: in start order.
        Ok(all
            .into_iter()
            .filter(|(_, end)| *end as u64 >= now)
            .filter_map(|(member, end)| Some((member.get(17..)?.to_owned(), end as u64)))
            .collect())
    }
}
