//! Revoked token ids, each kept until the token would have expired.

use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::End::{Abort, Commit};
use super::revoked::{Revoked, View};
use super::sessions::FamilyRecord;
use super::{DbError, EmbeddedStore, FAMILIES, REVOKED, get_json, index_expiry, key};
use crate::store::{Revocations, StoreResult, TokenState, unix_now};

/// Is token `k` revoked at `now`?
fn revoked(
    table: &impl ReadableTable<&'static str, u64>,
    k: &str,
    now: u64,
) -> Result<bool, DbError> {
    Ok(table.get(k)?.is_some_and(|exp| exp.value() >= now))
}

/// Revokes token key `k` until `expires_at`. The view learns of it first,
/// in the same blocking task as the commit: a caller that goes away while
/// the commit runs cannot leave the file revoked and the view not. Should
/// the commit fail, the view holds a "maybe" the file answers.
pub(super) fn revoke(
    txn: &WriteTransaction,
    view: &View,
    k: &str,
    expires_at: u64,
) -> Result<(), DbError> {
    view.add(Revoked::Token, k, expires_at, unix_now());
    txn.open_table(REVOKED)?.insert(k, expires_at)?;
    index_expiry(txn, "revoked", k, expires_at)
}

#[async_trait]
impl Revocations for EmbeddedStore {
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()> {
        let k = key(tenant, jti);
        let view = Arc::clone(&self.revoked);
        self.write("revoke", move |txn| {
            revoke(txn, &view, &k, expires_at).map(Commit)
        })
        .await
    }

    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool> {
        let k = key(tenant, jti);
        let view = Arc::clone(&self.revoked);
        self.write("revoke", move |txn| {
            if revoked(&txn.open_table(REVOKED)?, &k, unix_now())? {
                return Ok(Abort(false));
            }
            revoke(txn, &view, &k, expires_at)?;
            Ok(Commit(true))
        })
        .await
    }

    async fn token_state(
        &self,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) -> StoreResult<TokenState> {
        // The happy path: nothing of it was ever revoked, no read needed.
        let now = unix_now();
        let maybe_family =
            family.is_some_and(|f| self.revoked.maybe(Revoked::Family, tenant, f, now));
        if !maybe_family && !self.revoked.maybe(Revoked::Token, tenant, jti, now) {
            return Ok(TokenState::Active);
        }
        let token_key = key(tenant, jti);
        let family_key = family.map(|f| key(tenant, f));
        self.read("token_state", move |txn| {
            let now = unix_now();
            if revoked(&txn.open_table(REVOKED)?, &token_key, now)? {
                return Ok(TokenState::Revoked);
            }
            if let Some(family_key) = family_key {
                let record: Option<FamilyRecord> =
                    get_json(&txn.open_table(FAMILIES)?, &family_key)?;
                if record.is_some_and(|r| r.revoked) {
                    return Ok(TokenState::Revoked);
                }
            }
            Ok(TokenState::Active)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sessions;

    #[tokio::test]
    async fn the_view_of_revocations_is_refilled_from_the_file_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let later = unix_now() + 600;
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.revoke_token("t", "gone", later).await.unwrap();
            store.family_start("t", "f", "j1", later).await.unwrap();
            store.family_revoke("t", "f", later).await.unwrap();
            store
                .revoke_token("t", "ended", unix_now() - 5)
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.revoked.len(), 2, "the ended revocation is not loaded");
        let state = |jti: &'static str, family: Option<&'static str>| {
            let store = &store;
            async move { store.token_state("t", jti, family).await.unwrap() }
        };
        assert_eq!(state("gone", None).await, TokenState::Revoked);
        assert_eq!(state("j2", Some("f")).await, TokenState::Revoked);
        assert_eq!(state("live", None).await, TokenState::Active);
        assert_eq!(state("ended", None).await, TokenState::Active);
        assert_eq!(state("gone", None).await, TokenState::Revoked);
    }

    #[tokio::test]
    async fn a_reused_refresh_token_revokes_its_family_in_the_view_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let later = unix_now() + 600;
        store.family_start("t", "f", "j1", later).await.unwrap();
        store.family_use("t", "f", "j1", Some("j2")).await.unwrap();
        assert_eq!(
            store.token_state("t", "a1", Some("f")).await.unwrap(),
            TokenState::Active
        );
        store.family_use("t", "f", "j1", None).await.unwrap();
        assert_eq!(
            store.token_state("t", "a1", Some("f")).await.unwrap(),
            TokenState::Revoked
        );
    }

    #[tokio::test]
    async fn a_revocation_whose_caller_left_mid_commit_is_still_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let later = unix_now() + 600;
        let jtis: Vec<String> = (0..20).map(|n| format!("left-{n}")).collect();
        for jti in &jtis {
            // Dropped while its commit (with fsyncs) runs, as a handler is
            // when its client closes the connection.
            let revoke = store.revoke_token("t", jti, later);
            let _ = tokio::time::timeout(std::time::Duration::from_micros(50), revoke).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        for jti in &jtis {
            assert_eq!(
                store.token_state("t", jti, None).await.unwrap(),
                TokenState::Revoked,
                "{jti}"
            );
        }
    }
}
