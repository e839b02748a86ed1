//! Password hashes made by other software: each scheme's hashes come from
//! its reference implementation in the test virtualenv (Python `bcrypt`,
//! `passlib`, `argon2-cffi`, `hashlib`), never from the code under test.
//! Tenant-file users carry them as they are; the directory's users are
//! rehashed to the tenant's argon2id on their first good login.

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{admin, with_admin};
use crate::helpers::{PASSWORD, Setup, TestApp};
use crate::tools::python;

/// Hashes of [`PASSWORD`], by scheme name, from the reference implementations.
fn reference_hashes() -> Vec<(String, String)> {
    const SCRIPT: &str = r#"
import base64, hashlib, json, os, sys
import argon2, bcrypt
from passlib.hash import pbkdf2_sha256, pbkdf2_sha512, django_pbkdf2_sha256, scrypt

password = sys.argv[1]
raw = password.encode()
salt = os.urandom(16)
b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
phc_pbkdf2 = "$pbkdf2-sha256$i=1000,l=32$" + b64(salt) + "$" + b64(
    hashlib.pbkdf2_hmac("sha256", raw, salt, 1000, 32))
hashes = {
    "argon2id": argon2.PasswordHasher(time_cost=1, memory_cost=256, parallelism=1,
                                      type=argon2.Type.ID).hash(password),
    "argon2i": argon2.PasswordHasher(time_cost=1, memory_cost=256, parallelism=2,
                                     type=argon2.Type.I).hash(password),
    "argon2d": argon2.PasswordHasher(time_cost=2, memory_cost=128, parallelism=1,
                                     type=argon2.Type.D).hash(password),
    "bcrypt 2b": bcrypt.hashpw(raw, bcrypt.gensalt(rounds=4)).decode(),
    "bcrypt 2a": bcrypt.hashpw(raw, bcrypt.gensalt(rounds=5, prefix=b"2a")).decode(),
    "bcrypt 2y": bcrypt.hashpw(raw, bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1),
    "pbkdf2_sha256 passlib": pbkdf2_sha256.using(rounds=1000).hash(password),
    "pbkdf2_sha512 passlib": pbkdf2_sha512.using(rounds=1000).hash(password),
    "pbkdf2_sha256 phc": phc_pbkdf2,
    "pbkdf2_sha256 django": django_pbkdf2_sha256.using(rounds=1000).hash(password),
    "scrypt": scrypt.using(rounds=10, block_size=8, parallelism=1).hash(password),
}
print(json.dumps(hashes))
"#;
    let done = std::process::Command::new(python())
        .args(["-c", SCRIPT, PASSWORD])
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "the reference implementations failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let hashes: serde_json::Map<String, Value> = serde_json::from_slice(&done.stdout).unwrap();
    hashes
        .into_iter()
        .map(|(scheme, hash)| (scheme, hash.as_str().unwrap().to_owned()))
        .collect()
}

/// One pixyle tenant `f` whose users are `user-<n>@f.test`, one per hash.
fn tenant_with(hashes: &[(String, String)]) -> String {
    let mut tenant = r#"
id = "f"
dialect = "pixyle"
path_prefix = "/f"
issuer = "http://polyauth.test/f"
audience = "f-api"

[lockout]
max_failures = 1000
"#
    .to_owned();
    for (n, (_, hash)) in hashes.iter().enumerate() {
        tenant += &format!("\n[[users]]\nemail = \"user-{n}@f.test\"\npassword_hash = '{hash}'\n");
    }
    tenant
}

#[tokio::test]
async fn every_foreign_scheme_logs_in_with_its_password_and_only_with_it() {
    let hashes = reference_hashes();
    assert_eq!(hashes.len(), 11, "{hashes:?}");
    let app = TestApp::spawn(Setup::new().tenant("f", tenant_with(&hashes))).await;
    for (n, (scheme, _)) in hashes.iter().enumerate() {
        let email = format!("user-{n}@f.test");
        let (status, body) = app.pixyle_login("/f", &email, PASSWORD).await;
        assert_eq!(status, 200, "{scheme}: {body}");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(app.verify("/f", token).await.status(), 200, "{scheme}");
        let (status, _) = app
            .pixyle_login("/f", &email, "correct horse battery stapler")
            .await;
        assert_eq!(status, 401, "{scheme}: a wrong password");
        let (status, _) = app.pixyle_login("/f", &email, "").await;
        assert_ne!(status, 200, "{scheme}: an empty password");
    }
}

/// Absurd costs are refused when the configuration is read, before any
/// login could spend them; `check` names the user and the bound.
#[test]
fn absurd_costs_and_unknown_schemes_are_refused_by_check() {
    let bcrypt_17 = "$2b$17$C6UzMDM.H6dfI/f/IKxGhuJ0Tc4T5u/E38yXMUd8qnsP4dYwPH8G.";
    let scrypt_21 =
        "$scrypt$ln=21,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let scrypt_memory =
        "$scrypt$ln=20,r=16,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let pbkdf2_huge = "pbkdf2_sha256$10000001$salt$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=";
    let argon2_huge =
        "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
    let md5_crypt = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/";
    for (hash, says) in [
        (bcrypt_17, "bcrypt cost 17"),
        (scrypt_21, "scrypt ln=21"),
        (scrypt_memory, "exceeds the 1 GiB bound"),
        (pbkdf2_huge, "iteration count 10000001"),
        (argon2_huge, "exceeds the 1 GiB bound"),
        (md5_crypt, "unknown password hash scheme"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let hashes = [("absurd".to_owned(), hash.to_owned())];
        let config = Setup::new()
            .tenant("f", tenant_with(&hashes))
            .write(dir.path());
        let done = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&done.stdout).to_string()
            + &String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{hash} was accepted");
        assert!(said.contains("users[0].password_hash"), "{said}");
        assert!(said.contains(says), "{hash}: {said}");
        assert!(!said.contains(hash), "the hash is not echoed: {said}");
    }
}

/// Directory users created with each reference hash: a wrong password
/// leaves the hash as it is; the first good login rehashes it to the
/// tenant's argon2id, and the password keeps working.
#[tokio::test]
async fn directory_users_are_rehashed_to_argon2id_on_their_first_good_login() {
    let hashes = reference_hashes();
    let tenant = tenant_with(&[]);
    let (setup, _token) = with_admin(Setup::new().tenant("f", tenant));
    let app = TestApp::spawn(setup).await;
    for (n, (scheme, hash)) in hashes.iter().enumerate() {
        let email = format!("dir-{n}@f.test");
        let body = json!({"email": email, "password_hash": hash});
        let (status, user) =
            admin(&app, Method::POST, "/admin/v1/tenants/f/users", Some(body)).await;
        assert_eq!(status, 201, "{scheme}: {user}");
        let expected = scheme.split(' ').next().unwrap();
        let expected = if expected == "bcrypt" {
            "bcrypt"
        } else {
            expected
        };
        assert_eq!(user["hash_scheme"], expected, "{scheme}");
        let path = format!("/admin/v1/tenants/f/users/{}", user["id"].as_str().unwrap());

        let (status, _) = app
            .pixyle_login("/f", &email, "correct horse battery stapler")
            .await;
        assert_eq!(status, 401, "{scheme}: a wrong password");
        let (_, after_wrong) = admin(&app, Method::GET, &path, None).await;
        assert_eq!(
            after_wrong["hash_scheme"], expected,
            "{scheme}: not rehashed by a failure"
        );

        let (status, body) = app.pixyle_login("/f", &email, PASSWORD).await;
        assert_eq!(status, 200, "{scheme}: {body}");
        let (_, after) = admin(&app, Method::GET, &path, None).await;
        assert_eq!(after["hash_scheme"], "argon2id", "{scheme}: rehashed");
        let (status, _) = app.pixyle_login("/f", &email, PASSWORD).await;
        assert_eq!(
            status, 200,
            "{scheme}: the new hash takes the same password"
        );
        let (status, _) = app.pixyle_login("/f", &email, "wrong").await;
        assert_eq!(status, 401, "{scheme}: and no other");
    }
    // Each is now the tenant's argon2id (its default parameters), and a
    // login with it makes no new one.
    let stored = |dir: &std::path::Path| {
        let store = polyauth::store::EmbeddedStore::open(&dir.join("data/polyauth.redb")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let page = runtime
            .block_on(polyauth::store::Users::users_page(&store, "f", None, 100))
            .unwrap();
        page.users
            .into_iter()
            .map(|u| (u.email, u.password_hash))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let dir = app.stop().await;
    let path = dir.path().to_owned();
    let before = tokio::task::spawn_blocking(move || stored(&path))
        .await
        .unwrap();
    assert_eq!(before.len(), hashes.len());
    for (email, hash) in &before {
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{email}: {hash}"
        );
    }
    let app = TestApp::start_in(dir).await;
    let (status, _) = app.pixyle_login("/f", "dir-0@f.test", PASSWORD).await;
    assert_eq!(status, 200);
    let dir = app.stop().await;
    let path = dir.path().to_owned();
    let after = tokio::task::spawn_blocking(move || stored(&path))
        .await
        .unwrap();
    assert_eq!(after, before, "not rehashed again");
}
