//! Live reload (SIGHUP, and `watch_config`) on the real binary: tenants
//! added, changed and removed without a restart; a broken file leaving the
//! running configuration; verify answering through reloads; store state
//! surviving them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Served, Setup, password_hash, pixyle_tenant, status_json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn login(
    client: &reqwest::Client,
    served: &Served,
    prefix: &str,
    email: &str,
) -> (u16, Value) {
    let response = client
        .post(served.url(&format!("{prefix}/auth/v1/token")))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    status_json(response).await
}

async fn verify(client: &reqwest::Client, served: &Served, prefix: &str, token: &str) -> u16 {
    client
        .get(served.url(&format!("{prefix}/_polyauth/verify")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn write_tenant(config: &Path, stem: &str, text: &str) {
    std::fs::write(config.join("tenants").join(format!("{stem}.toml")), text).unwrap();
}

/// Sends SIGHUP and waits for the reload's outcome line; answers it.
fn reload(served: &mut Served) -> Value {
    served.hangup();
    served.wait_for_any(&[
        "configuration reloaded",
        "configuration reload refused: the running configuration stays",
    ])
}

#[tokio::test]
async fn sighup_adds_changes_and_removes_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .tenant("b", pixyle_tenant("b", "/b", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = client();
    assert_eq!(login(&client, &served, "/a", "user@a.test").await.0, 200);
    assert_eq!(login(&client, &served, "/b", "user@b.test").await.0, 200);
    assert_eq!(login(&client, &served, "/c", "user@c.test").await.0, 404);

    // c added; a given a new user and a lockout of one failure; b removed.
    write_tenant(&config, "c", &pixyle_tenant("c", "/c", ""));
    let a = pixyle_tenant("a", "/a", "[lockout]\nmax_failures = 1\n")
        + &format!(
            "\n[[users]]\nemail = \"new@a.test\"\npassword_hash = \"{}\"\n",
            password_hash(PASSWORD)
        );
    write_tenant(&config, "a", &a);
    std::fs::remove_file(config.join("tenants/b.toml")).unwrap();
    let event = reload(&mut served);
    assert_eq!(event["message"], "configuration reloaded", "{event}");

    assert_eq!(login(&client, &served, "/c", "user@c.test").await.0, 200);
    assert_eq!(login(&client, &served, "/a", "new@a.test").await.0, 200);
    let (status, body) = login(&client, &served, "/b", "user@b.test").await;
    assert_eq!(status, 404, "{body}");
    let document = client
        .get(served.url("/b/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 404, "its document went with it");
    // a's new lockout policy holds: one failure locks.
    let wrong = client
        .post(served.url("/a/auth/v1/token"))
        .json(&json!({"email": "new@a.test", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(login(&client, &served, "/a", "new@a.test").await.0, 429);

    // c changes dialect (Pixyle to Visualyze) and gains CORS: its routes
    // and answers follow.
    let visualyze = pixyle_tenant("c", "/c", "cors_origins = [\"https://app.test\"]")
        .replace("dialect = \"pixyle\"", "dialect = \"visualyze\"");
    write_tenant(&config, "c", &visualyze);
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    assert_eq!(
        login(&client, &served, "/c", "user@c.test").await.0,
        404,
        "Pixyle's route is gone"
    );
    let form = reqwest::multipart::Form::new()
        .text("email", "user@c.test")
        .text("password", PASSWORD);
    let (status, body) = status_json(
        client
            .post(served.url("/c/api/v1/user/login"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["token"].is_string(), "{body}");
    let preflight = client
        .request(reqwest::Method::OPTIONS, served.url("/c/api/v1/user/login"))
        .header("origin", "https://app.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.test"
    );
}

#[tokio::test]
async fn a_broken_file_leaves_the_running_configuration_and_says_what_check_says() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = client();
    write_tenant(&config, "a", &pixyle_tenant("a", "/a", "no_such_key = 1"));
    write_tenant(&config, "c", &pixyle_tenant("c", "/c", ""));
    let event = reload(&mut served);
    assert_eq!(
        event["message"], "configuration reload refused: the running configuration stays",
        "{event}"
    );
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let said = String::from_utf8_lossy(&check.stderr);
    let said = said.trim().strip_prefix("error: ").unwrap();
    assert_eq!(event["error"], said, "the reload and check say the same");
    assert!(
        said.contains("a.toml") && said.contains("no_such_key"),
        "{said}"
    );
    // Nothing changed: a serves as before, c is not there.
    assert_eq!(login(&client, &served, "/a", "user@a.test").await.0, 200);
    assert_eq!(login(&client, &served, "/c", "user@c.test").await.0, 404);
    let metrics = client
        .get(served.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("polyauth_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
    // Fixed, it reloads.
    write_tenant(&config, "a", &pixyle_tenant("a", "/a", ""));
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    assert_eq!(login(&client, &served, "/c", "user@c.test").await.0, 200);
}

#[tokio::test]
async fn verify_and_login_answer_through_twenty_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = reqwest::Client::new();
    let (_, body) = login(&client, &served, "/a", "user@a.test").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = served.url("/a/_polyauth/verify");
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let (ok, failed, stop) = (Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = client.get(&url).bearer_auth(&token).send().await;
                    match answer.map(|r| r.status().as_u16()) {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for n in 0..20 {
        // Each reload really changes something: a tenant file rewritten.
        let extra = format!("# reload {n}");
        write_tenant(&config, "a", &pixyle_tenant("a", "/a", &extra));
        let event = reload(&mut served);
        assert_eq!(event["message"], "configuration reloaded", "{event}");
        assert_eq!(login(&client, &served, "/a", "user@a.test").await.0, 200);
    }
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} verifies failed", ok + failed);
    assert!(ok > 20, "{ok} verifies");
}

/// Revocations, sessions and generated keys belong to the store: a tenant
/// removed and added again finds them.
#[tokio::test]
async fn store_state_survives_and_a_re_added_tenant_finds_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .tenant("b", pixyle_tenant("b", "/b", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = client();
    let (_, kept) = login(&client, &served, "/a", "user@a.test").await;
    let kept = kept["access_token"].as_str().unwrap().to_owned();
    let (_, revoked) = login(&client, &served, "/a", "user@a.test").await;
    let revoked = revoked["access_token"].as_str().unwrap().to_owned();
    let done = client
        .delete(served.url("/a/auth/v1/revoke_access"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);

    let text = std::fs::read_to_string(config.join("tenants/a.toml")).unwrap();
    std::fs::remove_file(config.join("tenants/a.toml")).unwrap();
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    assert_eq!(verify(&client, &served, "/a", &kept).await, 404);
    write_tenant(&config, "a", &text);
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    assert_eq!(
        verify(&client, &served, "/a", &kept).await,
        200,
        "its generated key again"
    );
    assert_eq!(
        verify(&client, &served, "/a", &revoked).await,
        401,
        "still revoked"
    );
}

#[tokio::test]
async fn server_settings_that_need_a_restart_are_reported_and_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let server = std::fs::read_to_string(config.join("polyauth.toml")).unwrap();
    let moved = server.replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"", 1);
    assert_ne!(moved, server);
    std::fs::write(config.join("polyauth.toml"), moved).unwrap();
    served.hangup();
    let warned = served.wait_for(
        "server settings changed that need a restart; the reload leaves them as they are",
    );
    assert_eq!(warned["keys"], "listen");
    let event = served.wait_for("configuration reloaded");
    assert!(event.is_object());
    assert_eq!(
        login(&client(), &served, "/a", "user@a.test").await.0,
        200,
        "still on its port"
    );
}

/// With `watch_config`, changing a tenant file is enough.
#[tokio::test]
async fn with_watch_config_a_file_change_alone_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .server("watch_config = true")
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    write_tenant(&config, "c", &pixyle_tenant("c", "/c", ""));
    served.wait_for("configuration reloaded");
    assert_eq!(login(&client(), &served, "/c", "user@c.test").await.0, 200);
    // Debounced: one reload for a burst of changes.
    std::fs::remove_file(config.join("tenants/c.toml")).unwrap();
    served.wait_for("configuration reloaded");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(login(&client(), &served, "/c", "user@c.test").await.0, 404);
}

/// A request already routed finishes on the configuration it started on:
/// a login being hashed when its tenant is removed still gets its answer.
#[tokio::test]
async fn a_request_in_flight_finishes_on_the_set_it_started_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .tenant("b", pixyle_tenant("b", "/b", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "debug");
    let body = json!({"email": "user@a.test", "password": PASSWORD}).to_string();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", served.port))
        .await
        .unwrap();
    let request = format!(
        "POST /a/auth/v1/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    served.wait_for("argon2 job running");
    std::fs::remove_file(config.join("tenants/a.toml")).unwrap();
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Its tenant is gone for the next request.
    assert_eq!(login(&client(), &served, "/a", "user@a.test").await.0, 404);
}

/// Keys change with a reload: a tenant moved from its generated key to a
/// configured HS256 one signs and verifies with that one only.
#[tokio::test]
async fn a_reload_changes_a_tenants_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = client();
    let (_, body) = login(&client, &served, "/a", "user@a.test").await;
    let generated = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(verify(&client, &served, "/a", &generated).await, 200);

    let secret = dir.path().join("hs256.secret");
    std::fs::write(&secret, "a-test-signing-secret-of-at-least-32-bytes").unwrap();
    let keys = format!(
        "[[keys]]\nkid = \"hs-1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    write_tenant(&config, "a", &(pixyle_tenant("a", "/a", "") + "\n" + &keys));
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    assert_eq!(
        verify(&client, &served, "/a", &generated).await,
        401,
        "its generated key is gone"
    );
    let (_, body) = login(&client, &served, "/a", "user@a.test").await;
    let configured = body["access_token"].as_str().unwrap().to_owned();
    let header = configured.split('.').next().unwrap();
    use base64::Engine as _;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("HS256"), Some("hs-1"))
    );
    assert_eq!(verify(&client, &served, "/a", &configured).await, 200);
}

/// Access rules change with a reload: a path that was open needs a
/// credential once the new rule is mounted.
#[tokio::test]
async fn a_reload_changes_a_tenants_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    let open = "[[access]]\npaths = [\"/reports/**\"]\npolicy = \"public\"\n";
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", open))
        .write(dir.path());
    let mut served = Served::start(&config, "info");
    let client = client();
    let ask = |served: &Served| {
        client
            .get(served.url("/a/_polyauth/verify"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/reports/q3")
            .send()
    };
    assert_eq!(ask(&served).await.unwrap().status(), 200, "public");
    let denied = "[[access]]\npaths = [\"/reports/**\"]\npolicy = \"deny\"\n";
    write_tenant(&config, "a", &pixyle_tenant("a", "/a", denied));
    assert_eq!(reload(&mut served)["message"], "configuration reloaded");
    let (_, body) = login(&client, &served, "/a", "user@a.test").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let answer = client
        .get(served.url("/a/_polyauth/verify"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/reports/q3")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403, "denied even with a credential");
    assert_eq!(ask(&served).await.unwrap().status(), 403);
}
