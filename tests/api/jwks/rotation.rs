//! `polyauth keys rotate` for tenants with generated keys: on Redis with
//! two replicas that follow without a restart, and on the embedded store,
//! which one process holds at a time.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{access_token, jwks, kid_of, verify_status};
use crate::helpers::{PASSWORD, Served, Setup, TestApp, pixyle_tenant, status_json};
use crate::redis_server::RedisServer;

/// `polyauth keys rotate --tenant <tenant> --config <config>`, the real
/// binary: success, and all it printed.
async fn rotate(config: &Path, tenant: &str) -> (bool, String) {
    let (config, tenant) = (config.to_owned(), tenant.to_owned());
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
            .args(["keys", "rotate", "--tenant", &tenant, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .unwrap()
}

/// An access token of `user@p.test` from the replica at `base`.
async fn login(base: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/p/auth/v1/token"))
        .json(&json!({"email": "user@p.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body): (u16, Value) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Every token lives 5 s, so an old key verifies 5 s + 30 s of skew after
/// a rotation.
const SHORT_LIVES: &str =
    "[tokens]\naccess_ttl = \"5s\"\nrefresh_ttl = \"5s\"\nremember_refresh_ttl = \"5s\"\n";
const GRACE: Duration = Duration::from_secs(35);

#[tokio::test]
async fn replicas_on_redis_follow_a_rotation_within_a_second_and_drop_the_old_key_later() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .redis(&server.url(), "rotation")
        .tenant("p", pixyle_tenant("p", "/p", SHORT_LIVES))
        .write(dir.path());
    let a = Served::start(&config, "info");
    let b = Served::start(&config, "info");
    let (base_a, base_b) = (a.url(""), b.url(""));
    let token = login(&base_a).await;
    let old = kid_of(&token);
    assert_eq!(jwks(&base_a, "p").await.1, [old.as_str()]);
    assert_eq!(jwks(&base_b, "p").await.1, [old.as_str()]);

    let (ok, said) = rotate(&config, "p").await;
    assert!(ok, "keys rotate failed: {said}");
    let rotated = Instant::now();
    let new = loop {
        let (on_a, on_b) = (jwks(&base_a, "p").await.1, jwks(&base_b, "p").await.1);
        if on_a.len() == 2 && on_b == on_a {
            break on_a[0].clone();
        }
        assert!(
            rotated.elapsed() < Duration::from_secs(1),
            "a second after the rotation, A lists {on_a:?} and B {on_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(new, old);
    assert!(said.contains(&new) && said.contains(&old), "{said}");
    assert_eq!(jwks(&base_a, "p").await.1, [new.as_str(), old.as_str()]);
    // Both sign with the new key; each verifies the other's tokens and the
    // token signed before the rotation.
    let (from_a, from_b) = (login(&base_a).await, login(&base_b).await);
    assert_eq!(
        (kid_of(&from_a), kid_of(&from_b)),
        (new.clone(), new.clone())
    );
    for base in [&base_a, &base_b] {
        for token in [&token, &from_a, &from_b] {
            assert_eq!(verify_status(base, "p", token).await, 200);
        }
    }

    // Once the longest token the old key signed has expired, it is gone.
    let gone = loop {
        let (on_a, on_b) = (jwks(&base_a, "p").await.1, jwks(&base_b, "p").await.1);
        if on_a == [new.as_str()] && on_b == on_a {
            break rotated.elapsed();
        }
        assert!(
            rotated.elapsed() < GRACE + Duration::from_secs(3),
            "still listed: A {on_a:?}, B {on_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        gone >= GRACE - Duration::from_secs(2),
        "dropped after {gone:?}"
    );
    assert_eq!(
        verify_status(&base_b, "p", &login(&base_a).await).await,
        200
    );
}

#[tokio::test]
async fn the_embedded_store_rotates_with_the_server_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("p", pixyle_tenant("p", "/p", ""))
        .write(dir.path());
    let app = TestApp::start_in(dir).await;
    let token = access_token(&app, "p").await;
    let old = kid_of(&token);

    // One process holds the file: the command says what to do, and
    // changes nothing.
    let (ok, said) = rotate(&config, "p").await;
    assert!(!ok, "{said}");
    for words in ["in use", "stop the server", "redis"] {
        assert!(said.contains(words), "no {words:?} in: {said}");
    }
    assert_eq!(jwks(&app.address, "p").await.1, [old.as_str()]);
    assert_eq!(verify_status(&app.address, "p", &token).await, 200);

    let dir = app.stop().await;
    let (ok, said) = rotate(&config, "p").await;
    assert!(ok, "{said}");
    let app = TestApp::start_in(dir).await;
    let (_, kids) = jwks(&app.address, "p").await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[1], old);
    let fresh = access_token(&app, "p").await;
    assert_eq!(kid_of(&fresh), kids[0]);
    assert!(said.contains(&kids[0]), "{said}");
    assert_eq!(verify_status(&app.address, "p", &token).await, 200);
    assert_eq!(verify_status(&app.address, "p", &fresh).await, 200);
}

#[tokio::test]
async fn only_generated_keys_rotate_by_command() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hs.secret");
    std::fs::write(&secret, "s".repeat(40)).unwrap();
    let keys = format!(
        "[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    let config = Setup::new()
        .tenant("c", pixyle_tenant("c", "/c", &keys))
        .write(dir.path());
    let (ok, said) = rotate(&config, "c").await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("[[keys]]") && said.contains("c.toml"),
        "{said}"
    );
    let (ok, said) = rotate(&config, "nobody").await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("no tenant `nobody`") && said.contains("c"),
        "{said}"
    );
}
