//! Refresh families: one current token each, revoked as a whole.

use std::sync::Arc;

use async_trait::async_trait;
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

use super::End::{Abort, Commit};
use super::revoked::{Revoked, View};
use super::{
    DbError, EXPIRY, EmbeddedStore, FAMILIES, SEP, SESSIONS_OF, get_json, index_expiry, key,
    put_json, read, write,
};
use crate::store::{FamilyUse, Sessions, StoreResult, unix_now, unix_now_ms};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FamilyRecord {
    current: String,
    pub(super) revoked: bool,
    pub(super) expires_at: u64,
}

impl FamilyRecord {
    /// `stored` (or a family never seen) revoked until `until` at least.
    fn revoked(stored: Option<Self>, until: u64) -> Self {
        let mut record = stored.unwrap_or(Self {
            current: String::new(),
            revoked: true,
            expires_at: until,
        });
        record.revoked = true;
        record.expires_at = record.expires_at.max(until);
        record
    }

    /// A family just started, whose current token is `jti`.
    fn started(jti: &str, expires_at: u64) -> Self {
        Self {
            current: jti.to_owned(),
            revoked: false,
            expires_at,
        }
    }

    /// Neither revoked nor expired.
    fn live(&self) -> bool {
        !self.revoked && self.expires_at >= unix_now()
    }
}

/// A subject's sessions, oldest first: (started ms, family, end).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SessionsOf(Vec<(u64, String, u64)>);

impl SessionsOf {
    pub(super) fn ends_at(&self) -> u64 {
        self.0.iter().map(|(_, _, end)| *end).max().unwrap_or(0)
    }
}

/// Writes the family record at `k`; a revoked one enters the view first,
/// in the commit's own blocking task (see `revocations::revoke`).
fn write_family(
    txn: &WriteTransaction,
    view: &View,
    k: &str,
    record: &FamilyRecord,
) -> Result<(), DbError> {
    if record.revoked {
        view.add(Revoked::Family, k, record.expires_at, unix_now());
    }
    put_json(txn, FAMILIES, k, record)?;
    index_expiry(txn, "families", k, record.expires_at)
}

#[async_trait]
impl Sessions for EmbeddedStore {
    async fn family_start(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<()> {
        let k = key(tenant, family);
        let record = FamilyRecord::started(jti, expires_at);
        let view = Arc::clone(&self.revoked);
        self.write("family_start", move |txn| {
            write_family(txn, &view, &k, &record).map(Commit)
        })
        .await
    }

    async fn family_use(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        next: Option<&str>,
    ) -> StoreResult<FamilyUse> {
        let k = key(tenant, family);
        let view = Arc::clone(&self.revoked);
        let jti = jti.to_owned();
        let next = next.map(str::to_owned);
        self.run("family_use", move |db| {
            if next.is_none() {
                // Presenting the current token without rotating changes nothing:
                // answer from a read, and write only to mark a reuse.
                let record: Option<FamilyRecord> =
                    read(db, |txn| get_json(&txn.open_table(FAMILIES)?, &k))?;
                match record.filter(FamilyRecord::live) {
                    None => return Ok(FamilyUse::Dead),
                    Some(r) if r.current == jti => return Ok(FamilyUse::Current),
                    Some(_) => {}
                }
            }
            // One write transaction at a time: the check and the rotation are atomic.
            write(db, |txn| {
                let record: Option<FamilyRecord> = get_json(&txn.open_table(FAMILIES)?, &k)?;
                let Some(mut record) = record.filter(FamilyRecord::live) else {
                    return Ok(Abort(FamilyUse::Dead));
                };
                let outcome = if record.current != jti {
                    record.revoked = true;
                    FamilyUse::Reused
                } else if let Some(next) = next {
                    record.current = next;
                    FamilyUse::Current
                } else {
                    return Ok(Abort(FamilyUse::Current));
                };
                write_family(txn, &view, &k, &record)?;
                Ok(Commit(outcome))
            })
        })
        .await
    }

    async fn family_end(&self, tenant: &str, family: &str) -> StoreResult<Option<u64>> {
        let k = key(tenant, family);
        self.read("family_end", move |txn| {
            let record: Option<FamilyRecord> = get_json(&txn.open_table(FAMILIES)?, &k)?;
            Ok(record.filter(FamilyRecord::live).map(|r| r.expires_at))
        })
        .await
    }

    async fn family_current(&self, tenant: &str, family: &str) -> StoreResult<Option<String>> {
        let k = key(tenant, family);
        self.read("family_current", move |txn| {
            let record: Option<FamilyRecord> = get_json(&txn.open_table(FAMILIES)?, &k)?;
            Ok(record.filter(FamilyRecord::live).map(|r| r.current))
        })
        .await
    }

    async fn family_revoke(&self, tenant: &str, family: &str, expires_at: u64) -> StoreResult<()> {
        let k = key(tenant, family);
        let view = Arc::clone(&self.revoked);
        self.write("family_revoke", move |txn| {
            let record: Option<FamilyRecord> = get_json(&txn.open_table(FAMILIES)?, &k)?;
            write_family(txn, &view, &k, &FamilyRecord::revoked(record, expires_at))?;
            Ok(Commit(()))
        })
        .await
    }

    async fn sessions_add(
        &self,
        tenant: &str,
        subject: &str,
        family: &str,
        expires_at: u64,
        max: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        let k = key(tenant, subject);
        let family = family.to_owned();
        self.write("sessions_add", move |txn| {
            add_session(txn, &k, family, expires_at, max).map(Commit)
        })
        .await
    }

    async fn sessions_of(&self, tenant: &str, subject: &str) -> StoreResult<Vec<(String, u64)>> {
        let k = key(tenant, subject);
        self.read("sessions_of", move |txn| {
            let stored: Option<SessionsOf> = get_json(&txn.open_table(SESSIONS_OF)?, &k)?;
            let now = unix_now();
            Ok(stored
                .unwrap_or_default()
                .0
                .into_iter()
                .filter(|(_, _, end)| *end >= now)
                .map(|(_, family, end)| (family, end))
                .collect())
        })
        .await
    }

    /// Both in one write transaction: one commit per login, not two.
    async fn session_start(
        &self,
        tenant: &str,
        subject: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
        max: u32,
        access_secs: u64,
    ) -> StoreResult<Vec<(String, u64)>> {
        let family_k = key(tenant, family);
        let subject_k = key(tenant, subject);
        let family = family.to_owned();
        let record = FamilyRecord::started(jti, expires_at);
        let view = Arc::clone(&self.revoked);
        let tenant = tenant.to_owned();
        // One commit, which need not be durable before the login answers
        // (see `sync`): a crash within the second undoes the whole login
        // (its session refused, the sessions it ended as they were).
        self.write_unsynced("session_start", move |txn| {
            write_family(txn, &view, &family_k, &record)?;
            let listed = expires_at.saturating_add(access_secs);
            let evicted = add_session(txn, &subject_k, family, listed, max)?;
            let last_access = unix_now().saturating_add(access_secs);
            for (old, end) in &evicted {
                let old_k = key(&tenant, old);
                let until = (*end).max(last_access);
                let stored: Option<FamilyRecord> = get_json(&txn.open_table(FAMILIES)?, &old_k)?;
                write_family(txn, &view, &old_k, &FamilyRecord::revoked(stored, until))?;
            }
            Ok(Commit(evicted))
        })
        .await
    }
}

/// Adds `family` to the sessions of subject key `k` and takes the oldest
/// beyond `max` out, answering them with their ends.
fn add_session(
    txn: &WriteTransaction,
    k: &str,
    family: String,
    expires_at: u64,
    max: u32,
) -> Result<Vec<(String, u64)>, DbError> {
    let now = unix_now();
    let stored: Option<SessionsOf> = get_json(&txn.open_table(SESSIONS_OF)?, k)?;
    let indexed = stored.as_ref().map(SessionsOf::ends_at);
    let mut sessions = stored.unwrap_or_default();
    sessions.0.retain(|(_, _, end)| *end >= now);
    sessions.0.push((unix_now_ms(), family, expires_at));
    let over = sessions.0.len().saturating_sub(max as usize);
    let evicted = sessions
        .0
        .drain(..over)
        .map(|(_, family, end)| (family, end))
        .collect();
    put_json(txn, SESSIONS_OF, k, &sessions)?;
    // One index entry per subject, not one per login.
    if let Some(at) = indexed.filter(|at| *at != sessions.ends_at()) {
        let entry = format!("sessions_of{SEP}{k}");
        txn.open_table(EXPIRY)?.remove((at, entry.as_str()))?;
    }
    index_expiry(txn, "sessions_of", k, sessions.ends_at())?;
    Ok(evicted)
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    #[tokio::test]
    async fn a_subject_keeps_one_expiry_entry_however_often_it_logs_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let now = unix_now();
        for i in 0..20 {
            let family = format!("f{i}");
            store
                .sessions_add("t", "alice", &family, now + 100 + i, 5)
                .await
                .unwrap();
        }
        let txn = store.db.begin_read().unwrap();
        let expiry = txn.open_table(EXPIRY).unwrap();
        assert_eq!(expiry.len().unwrap(), 1);
    }
}
