//! The store suite's part on generated signing keys and tenant secrets.

use std::sync::Arc;
use std::time::Duration;

use polyauth::store::{Store, StoredSigningKey, unix_now};

/// A stored key named `kid`, made at `created_at` (its bytes are not a key:
/// stores keep them without reading them).
pub fn stored_key(kid: &str, created_at: u64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        pkcs8_der: kid.as_bytes().to_vec(),
        created_at,
    }
}

pub fn kids(keys: &[StoredSigningKey]) -> Vec<&str> {
    keys.iter().map(|key| key.kid.as_str()).collect()
}

pub async fn the_first_signing_key_and_secret_win(store: Arc<dyn Store>) {
    // Replicas starting together each offer a key: one is kept, for all.
    let offers = (0..8).map(|i| {
        let store = Arc::clone(&store);
        async move {
            store
                .signing_keys_get_or_init("t", stored_key(&format!("k{i}"), 10))
                .await
                .unwrap()
        }
    });
    let answers = futures_util::future::join_all(offers).await;
    assert_eq!(answers[0].len(), 1);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let again = store
        .signing_keys_get_or_init("t", stored_key("late", 20))
        .await
        .unwrap();
    assert_eq!(again, answers[0]);
    let first = store
        .secret_get_or_insert("t", "s", vec![1; 32])
        .await
        .unwrap();
    let second = store
        .secret_get_or_insert("t", "s", vec![2; 32])
        .await
        .unwrap();
    assert_eq!((first.clone(), second), (vec![1; 32], vec![1; 32]));
}

pub async fn generated_keys_rotate_newest_first_and_forget_what_verifies_nothing(
    store: Arc<dyn Store>,
) {
    let now = unix_now();
    let mut changes = store.signing_keys_changes();
    store
        .signing_keys_get_or_init("t", stored_key("k0", now - 1000))
        .await
        .unwrap();
    assert!(
        !changes.has_changed().unwrap(),
        "a first key is no rotation"
    );

    let keys = store
        .signing_key_add("t", stored_key("k1", now - 100), 0)
        .await
        .unwrap();
    assert_eq!(kids(&keys), ["k1", "k0"]);
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("a rotation is told within a second")
        .unwrap();
    let keys = store
        .signing_key_add("t", stored_key("k2", now - 50), 0)
        .await
        .unwrap();
    assert_eq!(kids(&keys), ["k2", "k1", "k0"]);
    // k0 verifies nothing once its successor k1 was made before the bound;
    // k1's successor (k2) was made after it, so k1 stays.
    let keys = store
        .signing_key_add("t", stored_key("k3", now), now - 60)
        .await
        .unwrap();
    assert_eq!(kids(&keys), ["k3", "k2", "k1"]);
    assert_eq!(keys[1], stored_key("k2", now - 50));
    // What was answered is what is kept.
    let kept = store
        .signing_keys_get_or_init("t", stored_key("unused", now))
        .await
        .unwrap();
    assert_eq!(kept, keys);
    // A tenant with no key yet starts with the one added.
    let keys = store
        .signing_key_add("fresh", stored_key("f1", now), now)
        .await
        .unwrap();
    assert_eq!(kids(&keys), ["f1"]);
    let keys = store
        .signing_key_add("fresh", stored_key("f2", now), now)
        .await
        .unwrap();
    assert_eq!(
        kids(&keys),
        ["f2", "f1"],
        "f1's successor was made at the bound, not before"
    );
}
