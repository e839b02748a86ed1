//! The behaviour every store backend must have, written once against the
//! `Store` trait. Each backend instantiates it with `store_suite!`.

use std::sync::Arc;
use std::time::Duration;

use polyauth::store::{
    ApiKeyRecord, Attempt, FamilyUse, LockoutPolicy, Reservation, Settle, Store, TokenState,
    unix_now,
};

mod signing_keys;
use signing_keys::{
    generated_keys_rotate_newest_first_and_forget_what_verifies_nothing, kids, stored_key,
    the_first_signing_key_and_secret_win,
};
mod users;
use users::{
    a_batch_creates_each_user_unless_its_email_or_id_is_taken,
    a_deleted_users_email_is_remembered_per_tenant, a_directory_pages_through_every_user_once,
    a_swap_replaces_only_the_user_it_expects,
    a_user_is_created_found_by_email_in_any_case_changed_and_deleted,
    of_concurrent_creates_with_one_email_exactly_one_wins, tenants_have_directories_of_their_own,
};

/// Instantiates every behaviour test for a backend made by `$make`
/// (an async expression giving `(Arc<dyn Store>, guard)`; the guard keeps
/// whatever the store needs alive for the test's duration).
macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn revocations_hold_until_expiry() {
                let (store, _guard) = $make;
                super::revocations_hold_until_expiry(store).await;
            }

            #[tokio::test]
            async fn revocations_and_families_end_on_time() {
                let (store, _guard) = $make;
                super::revocations_and_families_end_on_time(store).await;
            }

            #[tokio::test]
            async fn revoking_once_has_exactly_one_winner() {
                let (store, _guard) = $make;
                super::revoking_once_has_exactly_one_winner(store).await;
            }

            #[tokio::test]
            async fn families_rotate_detect_reuse_and_die() {
                let (store, _guard) = $make;
                super::families_rotate_detect_reuse_and_die(store).await;
            }

            #[tokio::test]
            async fn a_family_rotates_once_under_concurrency() {
                let (store, _guard) = $make;
                super::a_family_rotates_once_under_concurrency(store).await;
            }

            #[tokio::test]
            async fn a_subjects_live_sessions_are_listed_oldest_first() {
                let (store, _guard) = $make;
                super::a_subjects_live_sessions_are_listed_oldest_first(store).await;
            }

            #[tokio::test]
            async fn clearing_a_counter_lifts_its_lock_and_keeps_the_others() {
                let (store, _guard) = $make;
                super::clearing_a_counter_lifts_its_lock_and_keeps_the_others(store).await;
            }

            #[tokio::test]
            async fn a_deleted_users_email_is_remembered_per_tenant() {
                let (store, _guard) = $make;
                super::a_deleted_users_email_is_remembered_per_tenant(store).await;
            }

            #[tokio::test]
            async fn a_swap_replaces_only_the_user_it_expects() {
                let (store, _guard) = $make;
                super::a_swap_replaces_only_the_user_it_expects(store).await;
            }

            #[tokio::test]
            async fn a_batch_creates_each_user_unless_its_email_or_id_is_taken() {
                let (store, _guard) = $make;
                super::a_batch_creates_each_user_unless_its_email_or_id_is_taken(store).await;
            }

            #[tokio::test]
            async fn a_session_start_is_a_family_and_a_counted_session() {
                let (store, _guard) = $make;
                super::a_session_start_is_a_family_and_a_counted_session(store).await;
            }

            #[tokio::test]
            async fn api_keys_rotate_per_subject() {
                let (store, _guard) = $make;
                super::api_keys_rotate_per_subject(store).await;
            }

            #[tokio::test]
            async fn lockout_locks_at_the_limit_and_lifts() {
                let (store, _guard) = $make;
                super::lockout_locks_at_the_limit_and_lifts(store).await;
            }

            #[tokio::test]
            async fn attempts_in_flight_hold_places_and_only_failures_count() {
                let (store, _guard) = $make;
                super::attempts_in_flight_hold_places_and_only_failures_count(store).await;
            }

            #[tokio::test]
            async fn sessions_beyond_the_cap_are_handed_back_oldest_first() {
                let (store, _guard) = $make;
                super::sessions_beyond_the_cap_are_handed_back_oldest_first(store).await;
            }

            #[tokio::test]
            async fn a_place_not_given_back_is_freed_after_its_hold() {
                let (store, _guard) = $make;
                super::a_place_not_given_back_is_freed_after_its_hold(store).await;
            }

            #[tokio::test]
            async fn an_attempt_counts_on_all_its_counters_or_none() {
                let (store, _guard) = $make;
                super::an_attempt_counts_on_all_its_counters_or_none(store).await;
            }

            #[tokio::test]
            async fn the_first_signing_key_and_secret_win() {
                let (store, _guard) = $make;
                super::the_first_signing_key_and_secret_win(store).await;
            }

            #[tokio::test]
            async fn generated_keys_rotate_newest_first_and_forget_what_verifies_nothing() {
                let (store, _guard) = $make;
                super::generated_keys_rotate_newest_first_and_forget_what_verifies_nothing(store)
                    .await;
            }

            #[tokio::test]
            async fn a_user_is_created_found_by_email_in_any_case_changed_and_deleted() {
                let (store, _guard) = $make;
                super::a_user_is_created_found_by_email_in_any_case_changed_and_deleted(store)
                    .await;
            }

            #[tokio::test]
            async fn a_directory_pages_through_every_user_once() {
                let (store, _guard) = $make;
                super::a_directory_pages_through_every_user_once(store).await;
            }

            #[tokio::test]
            async fn of_concurrent_creates_with_one_email_exactly_one_wins() {
                let (store, _guard) = $make;
                super::of_concurrent_creates_with_one_email_exactly_one_wins(store).await;
            }

            #[tokio::test]
            async fn tenants_have_directories_of_their_own() {
                let (store, _guard) = $make;
                super::tenants_have_directories_of_their_own(store).await;
            }

            #[tokio::test]
            async fn tenants_never_see_each_other() {
                let (store, _guard) = $make;
                super::tenants_never_see_each_other(store).await;
            }
        }
    };
}

store_suite!(embedded, {
    let dir = tempfile::tempdir().unwrap();
    let store = polyauth::store::EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    (Arc::new(store) as Arc<dyn Store>, dir)
});

store_suite!(redis, {
    let server = crate::redis_server::RedisServer::start();
    let store = crate::redis::connect(&server, "suite").await;
    (Arc::new(store) as Arc<dyn Store>, server)
});

async fn revocations_hold_until_expiry(store: Arc<dyn Store>) {
    let now = unix_now();
    assert_eq!(
        store.token_state("t", "a", None).await.unwrap(),
        TokenState::Active
    );
    store.revoke_token("t", "a", now + 60).await.unwrap();
    store.revoke_token("t", "old", now - 1).await.unwrap();
    // A token is valid through the second of its `exp`: so is its revocation.
    store.revoke_token("t", "last-second", now).await.unwrap();
    let last_second = store.token_state("t", "last-second", None).await.unwrap();
    if unix_now() == now {
        assert_eq!(last_second, TokenState::Revoked);
    }
    assert_eq!(
        store.token_state("t", "a", None).await.unwrap(),
        TokenState::Revoked
    );
    // Past its end a revocation is forgotten: the token itself has expired.
    assert_eq!(
        store.token_state("t", "old", None).await.unwrap(),
        TokenState::Active
    );
    store.ping().await.unwrap();
}

async fn revocations_and_families_end_on_time(store: Arc<dyn Store>) {
    let end = unix_now() + 1;
    store.revoke_token("t", "short", end).await.unwrap();
    store.family_start("t", "f", "r", end).await.unwrap();
    store.family_start("t", "g", "s", end).await.unwrap();
    store.family_revoke("t", "g", end).await.unwrap();
    assert_eq!(
        store.token_state("t", "short", None).await.unwrap(),
        TokenState::Revoked
    );
    assert_eq!(
        store.token_state("t", "x", Some("g")).await.unwrap(),
        TokenState::Revoked
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        store.token_state("t", "short", None).await.unwrap(),
        TokenState::Active
    );
    assert_eq!(
        store.family_use("t", "f", "r", None).await.unwrap(),
        FamilyUse::Dead
    );
    assert_eq!(store.family_end("t", "f").await.unwrap(), None);
}

async fn revoking_once_has_exactly_one_winner(store: Arc<dyn Store>) {
    let exp = unix_now() + 60;
    let calls = (0..20).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.revoke_token_once("t", "j", exp).await.unwrap() })
    });
    let wins = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|won| *won.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert_eq!(
        store.token_state("t", "j", None).await.unwrap(),
        TokenState::Revoked
    );
}

async fn families_rotate_detect_reuse_and_die(store: Arc<dyn Store>) {
    let end = unix_now() + 3600;
    store.family_start("t", "f", "r1", end).await.unwrap();
    assert_eq!(store.family_end("t", "f").await.unwrap(), Some(end));
    let held = &store;
    let current = move || async move { held.family_current("t", "f").await.unwrap() };
    assert_eq!(current().await.as_deref(), Some("r1"));
    // Presenting the current token without rotating changes nothing.
    assert_eq!(
        store.family_use("t", "f", "r1", None).await.unwrap(),
        FamilyUse::Current
    );
    assert_eq!(
        store.family_use("t", "f", "r1", Some("r2")).await.unwrap(),
        FamilyUse::Current
    );
    assert_eq!(
        store.family_use("t", "f", "r2", None).await.unwrap(),
        FamilyUse::Current
    );
    assert_eq!(current().await.as_deref(), Some("r2"));
    // r1 was rotated out: presenting it is reuse, and the family dies.
    assert_eq!(
        store.family_use("t", "f", "r1", None).await.unwrap(),
        FamilyUse::Reused
    );
    assert_eq!(
        store.family_use("t", "f", "r2", None).await.unwrap(),
        FamilyUse::Dead
    );
    assert_eq!(
        store.token_state("t", "any", Some("f")).await.unwrap(),
        TokenState::Revoked
    );
    assert_eq!(store.family_end("t", "f").await.unwrap(), None);
    assert_eq!(current().await, None);
    assert_eq!(store.family_current("t", "unknown").await.unwrap(), None);

    store.family_start("t", "g", "s1", end).await.unwrap();
    store.family_revoke("t", "g", end).await.unwrap();
    assert_eq!(
        store.family_use("t", "g", "s1", None).await.unwrap(),
        FamilyUse::Dead
    );
    assert_eq!(
        store.family_use("t", "unknown", "x", None).await.unwrap(),
        FamilyUse::Dead
    );
}

async fn a_family_rotates_once_under_concurrency(store: Arc<dyn Store>) {
    store
        .family_start("t", "f", "r1", unix_now() + 3600)
        .await
        .unwrap();
    let calls = (0..20).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .family_use("t", "f", "r1", Some(&format!("next-{i}")))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<FamilyUse> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let current = outcomes
        .iter()
        .filter(|o| **o == FamilyUse::Current)
        .count();
    assert_eq!(current, 1, "{outcomes:?}");
}

async fn api_keys_rotate_per_subject(store: Arc<dyn Store>) {
    let record = |generation| ApiKeyRecord {
        subject: "alice".into(),
        created_at: unix_now(),
        generation,
    };
    assert_eq!(store.api_key_of("t", "alice").await.unwrap(), None);
    store.api_key_rotate("t", "h1", &record(0)).await.unwrap();
    assert_eq!(
        store.api_key_get("t", "h1").await.unwrap().unwrap().subject,
        "alice"
    );
    store.api_key_rotate("t", "h2", &record(1)).await.unwrap();
    // The previous key stops working; the subject's current one is the new.
    assert_eq!(store.api_key_get("t", "h1").await.unwrap(), None);
    let (hash, current) = store.api_key_of("t", "alice").await.unwrap().unwrap();
    assert_eq!((hash.as_str(), current.generation), ("h2", 1));
}

fn policy(max_failures: u32, lock_for: Duration, hold: Duration) -> LockoutPolicy {
    LockoutPolicy {
        max_failures,
        window: Duration::from_secs(60),
        lock_for,
        hold,
    }
}

/// Reserves an attempt on `counters`, which must be allowed.
async fn reserve(store: &Arc<dyn Store>, counters: &[&str], policy: &LockoutPolicy) -> Reservation {
    match store.lockout_reserve("t", counters, policy).await.unwrap() {
        Attempt::Allowed(reservation) => reservation,
        other => panic!("expected an allowed attempt on {counters:?}, got {other:?}"),
    }
}

/// One attempt on `counters` that fails.
async fn fail(store: &Arc<dyn Store>, counters: &[&str], policy: &LockoutPolicy) {
    let reservation = reserve(store, counters, policy).await;
    store
        .lockout_settle("t", counters, &reservation, Settle::Failed, policy)
        .await
        .unwrap();
}

async fn clearing_a_counter_lifts_its_lock_and_keeps_the_others(store: Arc<dyn Store>) {
    let policy = policy(2, Duration::from_secs(600), Duration::from_secs(60));
    for _ in 0..2 {
        fail(&store, &["acct", "ip"], &policy).await;
    }
    for counter in ["acct", "ip"] {
        assert!(matches!(
            store
                .lockout_reserve("t", &[counter], &policy)
                .await
                .unwrap(),
            Attempt::Locked { .. }
        ));
    }
    store.lockout_clear("t", "acct").await.unwrap();
    // Clearing a counter with nothing on it is no error.
    store.lockout_clear("t", "never-used").await.unwrap();
    let reservation = reserve(&store, &["acct"], &policy).await;
    store
        .lockout_settle("t", &["acct"], &reservation, Settle::Failed, &policy)
        .await
        .unwrap();
    // Its failures start again from none: one more does not lock it yet.
    reserve(&store, &["acct"], &policy).await;
    assert!(matches!(
        store.lockout_reserve("t", &["ip"], &policy).await.unwrap(),
        Attempt::Locked { .. }
    ));
}

async fn a_subjects_live_sessions_are_listed_oldest_first(store: Arc<dyn Store>) {
    let now = unix_now();
    assert!(store.sessions_of("t", "alice").await.unwrap().is_empty());
    for (n, family) in ["f1", "f2", "f3"].iter().enumerate() {
        store
            .session_start("t", "alice", family, "j", now + 100 + n as u64, 10, 60)
            .await
            .unwrap();
        // Starts a millisecond apart at least, so their order is known.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store
        .session_start("t", "bob", "fb", "j", now + 100, 10, 60)
        .await
        .unwrap();
    store
        .session_start("other", "alice", "fo", "j", now + 100, 10, 60)
        .await
        .unwrap();
    // Each listed until its end plus the life of an access token minted
    // from it at the last moment.
    let listed = store.sessions_of("t", "alice").await.unwrap();
    assert_eq!(
        listed,
        [
            ("f1".to_owned(), now + 160),
            ("f2".to_owned(), now + 161),
            ("f3".to_owned(), now + 162)
        ]
    );
}

async fn lockout_locks_at_the_limit_and_lifts(store: Arc<dyn Store>) {
    let policy = policy(3, Duration::from_secs(1), Duration::from_secs(60));
    for _ in 0..3 {
        fail(&store, &["acct"], &policy).await;
    }
    let Attempt::Locked { retry_after } = store
        .lockout_reserve("t", &["acct"], &policy)
        .await
        .unwrap()
    else {
        panic!("the third failure must lock");
    };
    assert!(retry_after <= policy.lock_for);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Lifted: a fresh count. A pass that clears forgets the failures; one
    // that does not only gives its place back.
    fail(&store, &["acct"], &policy).await;
    fail(&store, &["acct"], &policy).await;
    let passed = reserve(&store, &["acct"], &policy).await;
    let clear = Settle::Passed { clear: &["acct"] };
    store
        .lockout_settle("t", &["acct"], &passed, clear, &policy)
        .await
        .unwrap();
    fail(&store, &["acct"], &policy).await;
    fail(&store, &["acct"], &policy).await;
    let passed = reserve(&store, &["acct"], &policy).await;
    let keep = Settle::Passed { clear: &[] };
    store
        .lockout_settle("t", &["acct"], &passed, keep, &policy)
        .await
        .unwrap();
    fail(&store, &["acct"], &policy).await;
    assert!(matches!(
        store
            .lockout_reserve("t", &["acct"], &policy)
            .await
            .unwrap(),
        Attempt::Locked { .. }
    ));
}

async fn attempts_in_flight_hold_places_and_only_failures_count(store: Arc<dyn Store>) {
    let policy = policy(5, Duration::from_secs(60), Duration::from_secs(60));
    let reserve_many = |n: usize| {
        let calls = (0..n).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .lockout_reserve("t", &["acct"], &policy)
                    .await
                    .unwrap()
            })
        });
        futures_util::future::join_all(calls)
    };
    let allowed = |answers: Vec<Result<Attempt, tokio::task::JoinError>>| -> Vec<Reservation> {
        let answers: Vec<Attempt> = answers.into_iter().map(Result::unwrap).collect();
        assert!(
            answers.iter().all(|a| !matches!(a, Attempt::Locked { .. })),
            "nothing has failed yet: {answers:?}"
        );
        answers
            .into_iter()
            .filter_map(|a| match a {
                Attempt::Allowed(reservation) => Some(reservation),
                _ => None,
            })
            .collect()
    };
    // Exactly the limit hold places at once; the others are told to wait.
    let held = allowed(reserve_many(50).await);
    assert_eq!(held.len(), 5);
    assert_eq!(
        store
            .lockout_reserve("t", &["acct"], &policy)
            .await
            .unwrap(),
        Attempt::Busy
    );
    // They pass: nothing was counted, five more may go.
    for reservation in &held {
        let pass = Settle::Passed { clear: &[] };
        store
            .lockout_settle("t", &["acct"], reservation, pass, &policy)
            .await
            .unwrap();
    }
    let held = allowed(reserve_many(50).await);
    assert_eq!(held.len(), 5);
    // They fail: the limit is reached and the counter locks.
    for reservation in &held {
        store
            .lockout_settle("t", &["acct"], reservation, Settle::Failed, &policy)
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .lockout_reserve("t", &["acct"], &policy)
            .await
            .unwrap(),
        Attempt::Locked { .. }
    ));
}

async fn an_attempt_counts_on_all_its_counters_or_none(store: Arc<dyn Store>) {
    let policy = policy(5, Duration::from_secs(60), Duration::from_secs(60));
    // 50 concurrent attempts on an account from one address: exactly the
    // limit get through, although each touches two counters.
    let calls = (0..50).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .lockout_reserve("t", &["acct:a", "ip:1"], &policy)
                .await
                .unwrap()
        })
    });
    let held: Vec<Reservation> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|a| match a.unwrap() {
            Attempt::Allowed(reservation) => Some(reservation),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 5);
    for reservation in &held {
        store
            .lockout_settle(
                "t",
                &["acct:a", "ip:1"],
                reservation,
                Settle::Failed,
                &policy,
            )
            .await
            .unwrap();
    }
    // Refused because of one counter, an attempt does not count on the other.
    for _ in 0..5 {
        assert!(matches!(
            store
                .lockout_reserve("t", &["acct:a", "ip:2"], &policy)
                .await
                .unwrap(),
            Attempt::Locked { .. }
        ));
    }
    for _ in 0..4 {
        fail(&store, &["acct:b", "ip:2"], &policy).await;
    }
    reserve(&store, &["acct:b", "ip:2"], &policy).await;
}

async fn a_session_start_is_a_family_and_a_counted_session(store: Arc<dyn Store>) {
    let now = unix_now();
    for (family, jti) in [("f1", "j1"), ("f2", "j2")] {
        let evicted = store
            .session_start("t", "carol", family, jti, now + 600, 2, 60)
            .await
            .unwrap();
        assert!(evicted.is_empty(), "{family}: {evicted:?}");
    }
    assert_eq!(
        store.family_current("t", "f1").await.unwrap().as_deref(),
        Some("j1")
    );
    assert_eq!(
        store.family_use("t", "f2", "j2", Some("j3")).await.unwrap(),
        FamilyUse::Current
    );
    let evicted = store
        .session_start("t", "carol", "f3", "k1", now + 900, 2, 60)
        .await
        .unwrap();
    assert_eq!(
        evicted,
        [("f1".to_owned(), now + 660)],
        "counted like sessions_add, listed until its end and an access token's life"
    );
    assert_eq!(store.family_end("t", "f3").await.unwrap(), Some(now + 900));
    // The session taken out of the count is revoked in the same step.
    assert_eq!(store.family_end("t", "f1").await.unwrap(), None);
    assert_eq!(
        store.token_state("t", "any", Some("f1")).await.unwrap(),
        TokenState::Revoked
    );
    assert_eq!(
        store.family_use("t", "f1", "j1", None).await.unwrap(),
        FamilyUse::Dead
    );
    assert_eq!(
        store.token_state("t", "any", Some("f2")).await.unwrap(),
        TokenState::Active
    );
}

async fn sessions_beyond_the_cap_are_handed_back_oldest_first(store: Arc<dyn Store>) {
    let now = unix_now();
    for family in ["s1", "s2", "s3"] {
        let evicted = store
            .sessions_add("t", "alice", family, now + 600, 3)
            .await
            .unwrap();
        assert!(evicted.is_empty(), "{family}: {evicted:?}");
    }
    let evicted = store
        .sessions_add("t", "alice", "s4", now + 900, 3)
        .await
        .unwrap();
    assert_eq!(evicted, [("s1".to_owned(), now + 600)]);
    // Concurrent logins never leave more than the cap counted.
    let calls = (0..10).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .sessions_add("t", "alice", &format!("c{i}"), now + 900, 3)
                .await
                .unwrap()
        })
    });
    let evicted: usize = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|e| e.unwrap().len())
        .sum();
    assert_eq!(
        evicted, 10,
        "every new session beyond three ends an old one"
    );
    // Ended sessions no longer count; other subjects and tenants are apart.
    let evicted = store
        .sessions_add("t", "bob", "b1", now - 1, 1)
        .await
        .unwrap();
    assert!(evicted.is_empty());
    let evicted = store
        .sessions_add("t", "bob", "b2", now + 60, 1)
        .await
        .unwrap();
    assert!(evicted.is_empty(), "b1 had ended: {evicted:?}");
    let evicted = store
        .sessions_add("u", "alice", "x", now + 60, 1)
        .await
        .unwrap();
    assert!(evicted.is_empty());
}

async fn a_place_not_given_back_is_freed_after_its_hold(store: Arc<dyn Store>) {
    let policy = policy(2, Duration::from_secs(60), Duration::from_secs(1));
    reserve(&store, &["acct"], &policy).await;
    reserve(&store, &["acct"], &policy).await;
    assert_eq!(
        store
            .lockout_reserve("t", &["acct"], &policy)
            .await
            .unwrap(),
        Attempt::Busy
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    reserve(&store, &["acct"], &policy).await;
}

async fn tenants_never_see_each_other(store: Arc<dyn Store>) {
    let end = unix_now() + 60;
    store.revoke_token("a", "j", end).await.unwrap();
    store.family_start("a", "f", "r", end).await.unwrap();
    assert_eq!(
        store.token_state("b", "j", None).await.unwrap(),
        TokenState::Active
    );
    assert_eq!(
        store.family_use("b", "f", "r", None).await.unwrap(),
        FamilyUse::Dead
    );
    store
        .signing_keys_get_or_init("a", stored_key("a-key", end))
        .await
        .unwrap();
    store
        .signing_key_add("a", stored_key("a-key-2", end), 0)
        .await
        .unwrap();
    let keys = store
        .signing_keys_get_or_init("b", stored_key("b-key", end))
        .await
        .unwrap();
    assert_eq!(kids(&keys), ["b-key"]);
}
