//! The store suite's part on the user directory.

use std::collections::HashSet;
use std::sync::Arc;

use polyauth::store::{DirectoryUser, Persist, Store};

/// A directory user `id` with `email` (its hash is not read by stores).
pub fn user(id: &str, email: &str) -> DirectoryUser {
    DirectoryUser {
        id: id.into(),
        email: email.into(),
        password_hash: format!("$argon2id$hash-of-{id}"),
        roles: vec!["user".into()],
        active: true,
        email_verified: false,
        company_id: None,
        created_at: 1_700_000_000,
        last_login_at: None,
        sessions_epoch: 0,
    }
}

pub async fn a_user_is_created_found_by_email_in_any_case_changed_and_deleted(
    store: Arc<dyn Store>,
) {
    assert!(
        store
            .user_create("t", &user("u1", " Ada@Example.TEST "))
            .await
            .unwrap()
    );
    let stored = store.user_get("t", "u1").await.unwrap().unwrap();
    assert_eq!(stored.email, "ada@example.test", "kept normalized");
    assert_eq!(stored.password_hash, "$argon2id$hash-of-u1");
    for spelling in ["ada@example.test", "ADA@EXAMPLE.TEST", " ada@Example.test"] {
        let found = store.user_find("t", spelling).await.unwrap();
        assert_eq!(found.as_ref(), Some(&stored), "{spelling}");
    }
    assert_eq!(
        store.user_find("t", "bob@example.test").await.unwrap(),
        None
    );
    assert_eq!(store.user_get("t", "nobody").await.unwrap(), None);

    // The same email in another spelling, or the same id, is taken.
    assert!(
        !store
            .user_create("t", &user("u2", "ADA@example.test"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .user_create("t", &user("u1", "other@example.test"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.user_find("t", "other@example.test").await.unwrap(),
        None
    );

    let mut changed = stored.clone();
    changed.roles = vec!["admin".into()];
    changed.active = false;
    changed.company_id = Some("c1".into());
    changed.last_login_at = Some(1_700_000_100);
    assert!(store.user_update("t", &changed).await.unwrap());
    assert_eq!(
        store.user_get("t", "u1").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.user_find("t", "Ada@example.test").await.unwrap(),
        Some(changed.clone())
    );
    assert!(
        !store
            .user_update("t", &user("ghost", "ghost@example.test"))
            .await
            .unwrap()
    );
    let mut renamed = changed.clone();
    renamed.email = "eve@example.test".into();
    assert!(
        store.user_update("t", &renamed).await.is_err(),
        "an email never changes"
    );

    assert!(store.user_delete("t", "u1").await.unwrap());
    assert!(!store.user_delete("t", "u1").await.unwrap());
    assert_eq!(store.user_get("t", "u1").await.unwrap(), None);
    assert_eq!(
        store.user_find("t", "ada@example.test").await.unwrap(),
        None
    );
    // Its email is free again.
    assert!(
        store
            .user_create("t", &user("u3", "ada@example.test"))
            .await
            .unwrap()
    );
}

pub async fn a_directory_pages_through_every_user_once(store: Arc<dyn Store>) {
    let ids: Vec<String> = (0..25).map(|n| format!("id-{n:02}")).collect();
    // Created out of order: pages come in id order whatever the creation order.
    for id in ids.iter().rev() {
        assert!(
            store
                .user_create("t", &user(id, &format!("{id}@example.test")))
                .await
                .unwrap()
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.users_page("t", after.as_deref(), 10).await.unwrap();
        pages += 1;
        assert!(page.users.len() <= 10);
        seen.extend(page.users.iter().map(|u| u.id.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), page.users.last().map(|u| &u.id));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "every user once, in id order");
    assert_eq!(pages, 3);
    // A page that ends exactly at the last user says there is no next.
    let page = store.users_page("t", Some("id-14"), 10).await.unwrap();
    assert_eq!(page.users.len(), 10);
    assert_eq!(page.next, None);
    let empty = store.users_page("other", None, 10).await.unwrap();
    assert!(empty.users.is_empty() && empty.next.is_none());
}

pub async fn of_concurrent_creates_with_one_email_exactly_one_wins(store: Arc<dyn Store>) {
    let creates = (0..20).map(|n| {
        let store = Arc::clone(&store);
        // One address, many spellings and ids.
        let email = if n % 2 == 0 {
            "race@example.test"
        } else {
            "RACE@example.test"
        };
        tokio::spawn(async move {
            store
                .user_create("t", &user(&format!("r{n}"), email))
                .await
                .unwrap()
        })
    });
    let won: Vec<bool> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|&&w| w).count(), 1, "{won:?}");
    let page = store.users_page("t", None, 100).await.unwrap();
    assert_eq!(page.users.len(), 1, "the losers left nothing behind");
    let winner = store
        .user_find("t", "race@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.users[0], winner);
}

pub async fn tenants_have_directories_of_their_own(store: Arc<dyn Store>) {
    assert!(
        store
            .user_create("a", &user("same-id", "same@example.test"))
            .await
            .unwrap()
    );
    assert!(
        store
            .user_create("b", &user("same-id", "same@example.test"))
            .await
            .unwrap()
    );
    assert!(
        store
            .user_create("b", &user("b-only", "b@example.test"))
            .await
            .unwrap()
    );
    assert_eq!(store.user_find("a", "b@example.test").await.unwrap(), None);
    assert_eq!(store.user_get("a", "b-only").await.unwrap(), None);
    assert!(!store.user_delete("a", "b-only").await.unwrap());
    assert!(store.user_delete("a", "same-id").await.unwrap());
    assert!(store.user_get("b", "same-id").await.unwrap().is_some());
    let ids: HashSet<String> = store
        .users_page("b", None, 10)
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(
        ids,
        HashSet::from(["same-id".to_owned(), "b-only".to_owned()])
    );
    assert!(
        store
            .users_page("a", None, 10)
            .await
            .unwrap()
            .users
            .is_empty()
    );
}

pub async fn a_swap_replaces_only_the_user_it_expects(store: Arc<dyn Store>) {
    let ada = user("u1", "ada@example.test");
    assert!(store.user_create("t", &ada).await.unwrap());
    let stored = store.user_get("t", "u1").await.unwrap().unwrap();
    let mut logged_in = stored.clone();
    logged_in.last_login_at = Some(1_700_000_500);
    logged_in.password_hash = "$argon2id$rehashed".into();
    assert!(
        store
            .user_swap("t", &stored, &logged_in, Persist::Soon)
            .await
            .unwrap()
    );
    assert_eq!(
        store.user_get("t", "u1").await.unwrap(),
        Some(logged_in.clone())
    );
    // Changed meanwhile (an operator's update): a swap from the old one fails.
    let mut deactivated = logged_in.clone();
    deactivated.active = false;
    deactivated.sessions_epoch += 1;
    assert!(store.user_update("t", &deactivated).await.unwrap());
    let mut late = logged_in.clone();
    late.last_login_at = Some(1_700_000_900);
    assert!(
        !store
            .user_swap("t", &logged_in, &late, Persist::Now)
            .await
            .unwrap()
    );
    assert_eq!(store.user_get("t", "u1").await.unwrap(), Some(deactivated));
    // Gone: nothing to swap, nothing created.
    assert!(store.user_delete("t", "u1").await.unwrap());
    assert!(
        !store
            .user_swap("t", &logged_in, &late, Persist::Now)
            .await
            .unwrap()
    );
    assert_eq!(store.user_get("t", "u1").await.unwrap(), None);
}

pub async fn a_batch_creates_each_user_unless_its_email_or_id_is_taken(store: Arc<dyn Store>) {
    use polyauth::store::Created;
    assert!(
        store
            .user_create("t", &user("old", "old@example.test"))
            .await
            .unwrap()
    );
    let batch = [
        user("n1", "new1@example.test"),
        user("n2", "OLD@example.test"),
        user("old", "new2@example.test"),
        user("n3", "NEW1@example.test"),
        user("n4", "new4@example.test"),
    ];
    let outcomes = store.users_create_many("t", &batch).await.unwrap();
    assert_eq!(
        outcomes,
        [
            Created::Created,
            Created::EmailTaken,
            Created::IdTaken,
            // A later user of the batch sees the earlier ones.
            Created::EmailTaken,
            Created::Created,
        ]
    );
    let page = store.users_page("t", None, 100).await.unwrap();
    let ids: Vec<&str> = page.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["n1", "n4", "old"]);
    assert_eq!(
        store.user_get("t", "old").await.unwrap().unwrap().email,
        "old@example.test",
        "never overwritten"
    );
    assert_eq!(
        store.users_create_many("t", &[]).await.unwrap(),
        Vec::<Created>::new()
    );
}

pub async fn a_deleted_users_email_is_remembered_per_tenant(store: Arc<dyn Store>) {
    assert!(!store.email_retired("t", "gone@example.test").await.unwrap());
    store.email_retire("t", " Gone@Example.TEST").await.unwrap();
    store.email_retire("t", "gone@example.test").await.unwrap();
    assert!(store.email_retired("t", "GONE@example.test").await.unwrap());
    assert!(
        !store
            .email_retired("other", "gone@example.test")
            .await
            .unwrap()
    );
    assert!(!store.email_retired("t", "kept@example.test").await.unwrap());
}
