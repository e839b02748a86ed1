//! The Redis store against real `redis-server` processes: its key layout
//! and TTLs, replicas (real polyauth processes) sharing it, and outages.

use std::time::{Duration, Instant};

use polyauth::store::{
    ApiKeyRecord, ApiKeys, Attempt, Lockout, LockoutPolicy, RedisSettings, RedisStore, Revocations,
    Secrets, Sessions, Settle, StoredSigningKey, TokenState, unix_now,
};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Served, Setup, TestApp, password_hash, pixyle_tenant, status_json};
use crate::redis_server::RedisServer;
use crate::sixth_vendor::SIXTH;

/// A store on `server` with keys under `prefix`.
pub async fn connect(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(RedisSettings {
        url: server.url().into(),
        key_prefix: prefix.into(),
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(3),
    })
    .await
    .unwrap()
}

/// The integer of a RESP integer reply (`:42`).
fn integer(reply: &str) -> i64 {
    reply
        .trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

#[tokio::test]
async fn entries_carry_the_time_they_have_left_under_the_tenant_hash_tag() {
    let server = RedisServer::start();
    let store = connect(&server, "pa").await;
    let now = unix_now();
    store.revoke_token("acme", "j1", now + 100).await.unwrap();
    store
        .family_start("acme", "f1", "r1", now + 200)
        .await
        .unwrap();
    store
        .family_start("acme", "f2", "r2", now + 50)
        .await
        .unwrap();
    // Revoking extends a family's record to the later end, never shortens it.
    store.family_revoke("acme", "f2", now + 300).await.unwrap();
    store.family_revoke("acme", "f1", now + 10).await.unwrap();
    let policy = LockoutPolicy {
        max_failures: 5,
        window: Duration::from_secs(60),
        lock_for: Duration::from_secs(600),
        hold: Duration::from_secs(5),
    };
    let Attempt::Allowed(reservation) = store
        .lockout_reserve("acme", &["acct:a@b.test"], &policy)
        .await
        .unwrap()
    else {
        panic!("the first attempt is allowed");
    };
    store
        .lockout_settle(
            "acme",
            &["acct:a@b.test"],
            &reservation,
            Settle::Failed,
            &policy,
        )
        .await
        .unwrap();
    let record = ApiKeyRecord {
        subject: "alice".into(),
        created_at: now,
        generation: 0,
    };
    store.api_key_rotate("acme", "h1", &record).await.unwrap();
    store
        .secret_get_or_insert("acme", "api-key-derivation", vec![7; 32])
        .await
        .unwrap();
    let key = StoredSigningKey {
        kid: "k".into(),
        alg: "EdDSA".into(),
        pkcs8_der: vec![1],
        created_at: now,
    };
    store.signing_keys_get_or_init("acme", key).await.unwrap();

    let ttl = |key: &str| integer(&server.command(&format!("TTL {key}")));
    let within = |key: &str, expected: u64| {
        let left = ttl(key);
        assert!(
            // Kept through the last second of validity: one more than the time left.
            (expected as i64 - 3..=expected as i64 + 1).contains(&left),
            "{key}: TTL {left}, expected about {expected}"
        );
    };
    within("pa:{acme}:revoked:j1", 100);
    within("pa:{acme}:family:f1", 200);
    within("pa:{acme}:family:f2", 300);
    within("pa:{acme}:lockout:acct:a@b.test", 60);
    // What has no natural end has no TTL.
    for key in [
        "pa:{acme}:apikeys",
        "pa:{acme}:apikey-of",
        "pa:{acme}:secret:api-key-derivation",
        "pa:{acme}:signing-keys",
    ] {
        assert_eq!(ttl(key), -1, "{key}");
    }
    let keys = server.command("KEYS *");
    let names: Vec<&str> = keys
        .lines()
        .filter(|l| !l.starts_with(['*', '$']))
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(
        names.iter().all(|k| k.starts_with("pa:{acme}:")),
        "{names:?}"
    );
}

#[tokio::test]
async fn key_prefixes_keep_deployments_apart() {
    let server = RedisServer::start();
    let one = connect(&server, "one").await;
    let two = connect(&server, "two").await;
    one.revoke_token("t", "j", unix_now() + 60).await.unwrap();
    assert_eq!(
        two.token_state("t", "j", None).await.unwrap(),
        TokenState::Active
    );
    assert_eq!(
        one.token_state("t", "j", None).await.unwrap(),
        TokenState::Revoked
    );
}

#[tokio::test]
async fn a_revocation_on_one_store_reaches_the_others_memory() {
    let server = RedisServer::start();
    let a = connect(&server, "shared").await;
    let b = connect(&server, "shared").await;
    let end = unix_now() + 60;
    let record = ApiKeyRecord {
        subject: "alice".into(),
        created_at: unix_now(),
        generation: 0,
    };
    a.api_key_rotate("t", "h1", &record).await.unwrap();
    // B looks these up until it answers them from memory (its subscription
    // proved live), so what follows tests the announcements, not Redis.
    until_answered_from_memory(&server, || async {
        assert_eq!(
            b.token_state("t", "j1", None).await.unwrap(),
            TokenState::Active
        );
        assert_eq!(
            b.token_state("t", "j2", Some("f")).await.unwrap(),
            TokenState::Active
        );
        assert!(b.api_key_get("t", "h1").await.unwrap().is_some());
    })
    .await;

    a.revoke_token("t", "j1", end).await.unwrap();
    a.family_revoke("t", "f", end).await.unwrap();
    a.api_key_rotate("t", "h2", &record).await.unwrap();
    let started = Instant::now();
    loop {
        let j1 = b.token_state("t", "j1", None).await.unwrap();
        let j2 = b.token_state("t", "j2", Some("f")).await.unwrap();
        let h1 = b.api_key_get("t", "h1").await.unwrap();
        if (j1, j2, h1.is_none()) == (TokenState::Revoked, TokenState::Revoked, true) {
            break;
        }
        assert!(
            started.elapsed() < polyauth::store::REDIS_STALENESS,
            "B still answers from memory: {j1:?} {j2:?} {h1:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rotation_through_one_store_reaches_the_others_within_a_second() {
    let server = RedisServer::start();
    let a = connect(&server, "shared").await;
    let b = connect(&server, "shared").await;
    let key = |kid: &str| StoredSigningKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        pkcs8_der: vec![1],
        created_at: unix_now(),
    };
    b.signing_keys_get_or_init("t", key("k0")).await.unwrap();
    let mut changes = b.signing_keys_changes();
    let rotated = a.signing_key_add("t", key("k1"), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("B hears of A's rotation within a second")
        .unwrap();
    assert_eq!(
        b.signing_keys_get_or_init("t", key("x")).await.unwrap(),
        rotated
    );
    // One deployment-wide generation, not one per tenant: what B polls.
    assert_eq!(
        server.command("GET shared:signing-keys-generation").trim(),
        "$1\r\n1"
    );
    // An earlier version's single key is adopted, never replaced.
    let legacy = r#"{"kid":"legacy","alg":"EdDSA","pkcs8_der":[1]}"#;
    server.command(&format!(
        "SET shared:{{old}}:signing-key {}",
        serde_json::to_string(legacy).unwrap()
    ));
    let keys = a.signing_keys_get_or_init("old", key("new")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].created_at), ("legacy", 0));
}

/// Runs `checks` until one run of them makes no store call on `server`.
async fn until_answered_from_memory<F, Fut>(server: &RedisServer, checks: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = store_calls(server);
        checks().await;
        if store_calls(server) == before {
            return;
        }
        assert!(Instant::now() < deadline, "still asking Redis after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pixyle tenant `p` at `/p` on Redis under `prefix`; its signing key is
/// generated into the store (no `[[keys]]`).
fn pixyle_on_redis(server: &RedisServer, prefix: &str) -> Setup {
    with_pixyle(Setup::new().redis(&server.url(), prefix))
}

/// `setup` with tenant `p`: 5 failures lock it for 2 s.
fn with_pixyle(setup: Setup) -> Setup {
    let lockout = "[lockout]\nmax_failures = 5\nwindow = \"1m\"\nlock_for = \"2s\"\n";
    setup.tenant("p", pixyle_tenant("p", "/p", lockout))
}

async fn pixyle_login(client: &reqwest::Client, base: &str, password: &str) -> (u16, Value) {
    let response = client
        .post(format!("{base}/p/auth/v1/token"))
        .json(&json!({"email": "user@p.test", "password": password}))
        .send()
        .await
        .unwrap();
    status_json(response).await
}

async fn verify(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client
        .get(format!("{base}/p/_polyauth/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn logout(client: &reqwest::Client, base: &str, token: &str) -> (u16, Value) {
    let response = client
        .delete(format!("{base}/p/auth/v1/revoke_access"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    status_json(response).await
}

/// Commands that read or write the store's entries (not pub/sub or PING).
fn store_calls(server: &RedisServer) -> u64 {
    ["exists", "hget", "hmget", "get", "evalsha", "eval", "set"]
        .iter()
        .map(|c| server.calls(c))
        .sum()
}

#[tokio::test]
async fn verify_answers_live_tokens_without_a_redis_round_trip() {
    let server = RedisServer::start();
    let app = TestApp::spawn(pixyle_on_redis(&server, "cache")).await;
    let (status, login) = app.pixyle_login("/p", "user@p.test", PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();
    // The first check asks Redis; once the subscription has proved itself
    // live (its first heartbeat), later checks are answered from memory.
    until_answered_from_memory(&server, || async {
        assert_eq!(app.verify("/p", access).await.status(), 200);
    })
    .await;
    // Fifty in a row without a store call. A heartbeat delayed past the
    // staleness bound (a stalled test machine) sends a run to Redis: then
    // the run is tried again, but it must succeed at least once.
    let mut runs = 0;
    loop {
        let before = store_calls(&server);
        for _ in 0..50 {
            assert_eq!(app.verify("/p", access).await.status(), 200);
        }
        if store_calls(&server) == before {
            break;
        }
        runs += 1;
        assert!(runs < 5, "verify asked Redis in every run of 50");
    }
    // This replica's own logout is honoured at once.
    assert_eq!(logout(&app.client, &app.address, access).await.0, 200);
    assert_eq!(app.verify("/p", access).await.status(), 401);
}

/// Two real polyauth processes sharing one Redis.
fn two_replicas(setup: &Setup) -> (tempfile::TempDir, Served, Served) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup.write(dir.path());
    let a = Served::start(&config, "info");
    let b = Served::start(&config, "info");
    (dir, a, b)
}

#[tokio::test]
async fn replicas_share_the_key_and_a_logout_on_one_reaches_the_other_within_a_second() {
    let server = RedisServer::start();
    let (_dir, a, b) = two_replicas(&pixyle_on_redis(&server, "replicas"));
    let client = reqwest::Client::new();
    let (status, login) = pixyle_login(&client, &a.url(""), PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();
    // Signed by A with the generated key, verified by B: the key is shared.
    // B verifies until it answers from memory, so that the logout below
    // must reach it through the announcement.
    until_answered_from_memory(&server, || async {
        assert_eq!(verify(&client, &b.url(""), access).await, 200);
    })
    .await;
    assert_eq!(logout(&client, &a.url(""), access).await.0, 200);
    let logged_out = Instant::now();
    while verify(&client, &b.url(""), access).await != 401 {
        assert!(
            logged_out.elapsed() < Duration::from_secs(1),
            "B still accepts a token A logged out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(verify(&client, &a.url(""), access).await, 401);
}

#[tokio::test]
async fn concurrent_right_passwords_across_two_replicas_all_succeed() {
    let server = RedisServer::start();
    let (_dir, a, b) = two_replicas(&pixyle_on_redis(&server, "rush"));
    let client = reqwest::Client::new();
    let bases = [a.url(""), b.url("")];
    let attempts = (0..16).map(|i| pixyle_login(&client, &bases[i % 2], PASSWORD));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(statuses, [200; 16]);
    // Nothing was counted: five wrong passwords still get their own answer.
    for i in 0..5 {
        assert_eq!(pixyle_login(&client, &bases[i % 2], "wrong").await.0, 401);
    }
}

#[tokio::test]
async fn fifty_wrong_passwords_across_two_replicas_lock_at_exactly_max_failures() {
    let server = RedisServer::start();
    let (_dir, a, b) = two_replicas(&pixyle_on_redis(&server, "lockout"));
    let client = reqwest::Client::new();
    let bases = [a.url(""), b.url("")];
    let attempts = (0..50).map(|i| pixyle_login(&client, &bases[i % 2], "wrong password"));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count(401), count(429)), (5, 45), "{statuses:?}");
    // Locked on both replicas, even with the right password ...
    assert_eq!(pixyle_login(&client, &bases[1], PASSWORD).await.0, 429);
    // ... until `lock_for` has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(pixyle_login(&client, &bases[0], PASSWORD).await.0, 200);
}

#[tokio::test]
async fn refresh_families_across_replicas_rotate_once_detect_reuse_and_die_on_signout() {
    let server = RedisServer::start();
    let tenant = format!(
        "id = \"s\"\ndialect = \"sixth\"\npath_prefix = \"/s\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         [[users]]\nemail = \"me@s.test\"\npassword_hash = \"{}\"\n",
        password_hash(PASSWORD)
    );
    let setup = Setup::new()
        .redis(&server.url(), "families")
        .dialect("sixth", SIXTH)
        .tenant("s", tenant);
    let (_dir, a, b) = two_replicas(&setup);
    let client = reqwest::Client::new();
    let sign_in = || async {
        let response = client
            .put(a.url("/s/v9/signin"))
            .json(&json!({"login": "me@s.test", "pass": PASSWORD}))
            .send()
            .await
            .unwrap();
        let (status, login) = status_json(response).await;
        assert_eq!(status, 201, "{login}");
        login
    };
    let login = sign_in().await;
    let first = login["result"]["renew"].as_str().unwrap();
    let renew = |base: String, token: String| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/s/v9/renew"))
                .header("x-renew", token)
                .send()
                .await
                .unwrap();
            status_json(response).await
        }
    };
    let bases = [a.url(""), b.url("")];
    let attempts = (0..20).map(|i| renew(bases[i % 2].clone(), first.to_owned()));
    let answers = futures_util::future::join_all(attempts).await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 419).count(), 19);
    // The losers presented a rotated-out token: reuse, so the whole family
    // is dead, the winner's new refresh token included.
    let second = winners[0]["result"]["renew"].as_str().unwrap().to_owned();
    assert_eq!(renew(bases[1].clone(), second).await.0, 419);

    // Signing out with a refresh token on A ends its session on B.
    let login = sign_in().await;
    let refresh = login["result"]["renew"].as_str().unwrap().to_owned();
    let signed_out = client
        .post(a.url("/s/v9/signout"))
        .json(&json!({ "token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 202);
    assert_eq!(renew(bases[1].clone(), refresh).await.0, 419);
    let access = login["result"]["jwt"].as_str().unwrap();
    let verified = client
        .get(b.url("/s/_polyauth/verify"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 401);
}

#[tokio::test]
async fn a_redis_outage_fails_closed_and_heals_without_a_restart() {
    let mut redis = RedisServer::start_durable();
    let dir = tempfile::tempdir().unwrap();
    // Calls bounded at 1 s, the default: requests during the outage must
    // answer within it.
    let config = with_pixyle(Setup::new().redis_with_timeout(&redis.url(), "outage", "1s"))
        .write(dir.path());
    let served = Served::start(&config, "info");
    let base = served.url("");
    // No request may hang: the client gives up long after polyauth must have answered.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ready = || async {
        client
            .get(served.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    let (_, login) = pixyle_login(&client, &base, PASSWORD).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let (_, other) = pixyle_login(&client, &base, PASSWORD).await;
    let revoked_before = other["access_token"].as_str().unwrap().to_owned();
    assert_eq!(logout(&client, &base, &revoked_before).await.0, 200);
    assert_eq!(verify(&client, &base, &access).await, 200);

    redis.kill();
    let down = Instant::now();
    while ready().await != 503 {
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "/readyz stayed 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Over more than the cache's staleness bound, every use of a credential
    // answers Pixyle's unavailable answer, quickly, never a success.
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(1500) {
        let asked = Instant::now();
        assert_eq!(verify(&client, &base, &access).await, 503);
        assert!(asked.elapsed() < Duration::from_secs(3), "verify hung");
        let refreshed = client
            .post(format!("{base}/p/auth/v1/refresh"))
            .bearer_auth(&refresh)
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(refreshed).await;
        assert_eq!(status, 503, "{body}");
        assert!(body["error"].is_string(), "{body}");
        let asked = Instant::now();
        let (status, body) = logout(&client, &base, &access).await;
        assert_eq!(
            status, 503,
            "a logout reported done without its revocation: {body}"
        );
        assert_eq!(pixyle_login(&client, &base, PASSWORD).await.0, 503);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "logout or login hung"
        );
    }
    assert_eq!(ready().await, 503);

    redis.restart();
    let back = Instant::now();
    while ready().await != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "/readyz not 200 within 10 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The logout during the outage did not happen; the one before it did.
    assert_eq!(verify(&client, &base, &access).await, 200);
    assert_eq!(verify(&client, &base, &revoked_before).await, 401);
    assert_eq!(logout(&client, &base, &access).await.0, 200);
    assert_eq!(verify(&client, &base, &access).await, 401);

    served.terminate();
    let (status, logs) = served.wait();
    assert!(status.success(), "exit status {status}");
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(logs.contains("redis subscription lost"), "{logs}");
}
