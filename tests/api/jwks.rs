//! `/.well-known/jwks.json` and key rotation (SPEC §11, "Keys and JWKS"):
//! what the set holds, stock libraries verifying tokens from it alone, and
//! keys leaving it when they retire or are rotated out.

mod rotation;

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, pixyle_tenant};
use crate::tokens::claims;
use crate::tools::{python, repo};

/// A PEM private key made by `openssl genpkey <args>` in `dir`, as a TOML
/// string literal of its path.
fn openssl_key(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(name);
    let status = std::process::Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (./scripts/test.sh installs it)");
    assert!(status.success(), "openssl genpkey {args:?}");
    format!("{:?}", path.display().to_string())
}

fn es256_key(dir: &Path, name: &str) -> String {
    openssl_key(
        dir,
        name,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

fn rs256_key(dir: &Path, name: &str) -> String {
    openssl_key(
        dir,
        name,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

fn ed25519_key(dir: &Path, name: &str) -> String {
    openssl_key(dir, name, &["-algorithm", "ED25519"])
}

/// A `[[keys]]` entry; `extra` is appended to it (e.g. `retire_after`).
fn key_entry(kid: &str, alg: &str, pem: &str, extra: &str) -> String {
    format!("[[keys]]\nkid = \"{kid}\"\nalg = \"{alg}\"\nprivate_key_file = {pem}\n{extra}\n")
}

/// An access token of `user@<tenant>.test`, tenant mounted at `/<tenant>`.
async fn access_token(app: &TestApp, tenant: &str) -> String {
    let (status, body) = app
        .pixyle_login(
            &format!("/{tenant}"),
            &format!("user@{tenant}.test"),
            PASSWORD,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The `kid` a token's header names.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The tenant's JWKS response.
async fn jwks_response(base: &str, tenant: &str) -> reqwest::Response {
    reqwest::get(format!("{base}/{tenant}/.well-known/jwks.json"))
        .await
        .unwrap()
}

/// The tenant's JWKS: the set and the `kid`s it lists, in order.
async fn jwks(base: &str, tenant: &str) -> (Value, Vec<String>) {
    let response = jwks_response(base, tenant).await;
    assert_eq!(response.status(), 200);
    let set: Value = response.json().await.unwrap();
    let kids = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    (set, kids)
}

/// Runs `program args` with `stdin` off the async threads; whether it
/// succeeded, and its stdout (stderr when that is empty).
async fn run(program: std::path::PathBuf, args: Vec<String>, stdin: String) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(&program)
            .args(&args)
            .current_dir(repo().join("tests/js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stderr).into_owned();
        }
        (output.status.success(), text)
    })
    .await
    .unwrap()
}

/// PyJWT as a Python service uses it: `PyJWKClient` fetches the JWKS and
/// picks the key by `kid`; `jwt.decode` checks signature, iss and aud.
const PYJWT: &str = r#"
import json, sys, jwt
url, issuer, audience, alg = sys.argv[1:5]
token = sys.stdin.read().strip()
try:
    key = jwt.PyJWKClient(url).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key, algorithms=[alg], issuer=issuer, audience=audience)
except Exception as error:
    print(f"refused: {type(error).__name__}: {error}")
    sys.exit(1)
print(json.dumps({"kid": key.key_id, "claims": claims}))
"#;

/// What PyJWT says of `token`, given the JWKS `url` and what to expect.
async fn pyjwt(url: &str, token: &str, issuer: &str, audience: &str, alg: &str) -> (bool, String) {
    let args = ["-c", PYJWT, url, issuer, audience, alg].map(str::to_owned);
    run(python(), args.to_vec(), token.to_owned()).await
}

/// What jose (Node) says of `token`: `createRemoteJWKSet` + `jwtVerify`.
async fn jose(url: &str, token: &str, issuer: &str, audience: &str) -> (bool, String) {
    let node = crate::tools::program("POLYAUTH_TEST_NODE", "node");
    let args = ["verify_jwks.mjs", url, issuer, audience].map(str::to_owned);
    run(node, args.to_vec(), token.to_owned()).await
}

#[tokio::test]
async fn pyjwt_and_jose_verify_tokens_from_the_jwks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let es = es256_key(dir.path(), "es.pem");
    let rs = rs256_key(dir.path(), "rs.pem");
    Setup::new()
        // No [[keys]]: an Ed25519 key is generated into the store.
        .tenant("ed", pixyle_tenant("ed", "/ed", ""))
        .tenant(
            "es",
            pixyle_tenant("es", "/es", &key_entry("es-1", "ES256", &es, "")),
        )
        .tenant(
            "rs",
            pixyle_tenant("rs", "/rs", &key_entry("rs-1", "RS256", &rs, "")),
        )
        .write(dir.path());
    let app = TestApp::start_in(dir).await;
    for (tenant, alg) in [("ed", "EdDSA"), ("es", "ES256"), ("rs", "RS256")] {
        let token = access_token(&app, tenant).await;
        let url = app.url(&format!("/{tenant}/.well-known/jwks.json"));
        let issuer = format!("http://polyauth.test/{tenant}");
        let audience = format!("{tenant}-api");
        let expected = json!({ "kid": kid_of(&token), "claims": claims(&token) });
        let (ok, said) = pyjwt(&url, &token, &issuer, &audience, alg).await;
        assert!(ok, "PyJWT refused the {alg} token: {said}");
        assert_eq!(serde_json::from_str::<Value>(&said).unwrap(), expected);
        let (ok, said) = jose(&url, &token, &issuer, &audience).await;
        assert!(ok, "jose refused the {alg} token: {said}");
        assert_eq!(serde_json::from_str::<Value>(&said).unwrap(), expected);

        // They check what they are told to: audience, issuer, signature.
        let tampered = {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut c = claims(&token);
            c["roles"] = json!(["superuser"]);
            use base64::Engine as _;
            parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&c).unwrap());
            parts.join(".")
        };
        for (token, issuer, audience) in [
            (token.as_str(), issuer.as_str(), "another-api"),
            (token.as_str(), "http://elsewhere.test", audience.as_str()),
            (tampered.as_str(), issuer.as_str(), audience.as_str()),
        ] {
            let (ok, said) = pyjwt(&url, token, issuer, audience, alg).await;
            assert!(!ok && said.starts_with("refused"), "PyJWT: {said}");
            let (ok, said) = jose(&url, token, issuer, audience).await;
            assert!(!ok && said.starts_with("refused"), "jose: {said}");
        }
    }
    // A tenant's JWKS does not vouch for another tenant's tokens.
    let foreign = access_token(&app, "es").await;
    let url = app.url("/ed/.well-known/jwks.json");
    let (ok, said) = jose(&url, &foreign, "http://polyauth.test/es", "es-api").await;
    assert!(!ok, "jose: {said}");
}

/// Members of a private or symmetric JWK (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[tokio::test]
async fn the_jwks_lists_public_keys_only_and_may_be_cached() {
    let dir = tempfile::tempdir().unwrap();
    let es = es256_key(dir.path(), "es.pem");
    let rs = rs256_key(dir.path(), "rs.pem");
    let ed = ed25519_key(dir.path(), "ed.pem");
    let secret = dir.path().join("hs.secret");
    std::fs::write(&secret, "s".repeat(40)).unwrap();
    let hs = format!(
        "[[keys]]\nkid = \"hs-1\"\nalg = \"HS256\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    let mixed = format!(
        "{}{}",
        key_entry("ed-1", "EdDSA", &ed, ""),
        hs.replace("hs-1", "hs-2")
    );
    Setup::new()
        .tenant("gen", pixyle_tenant("gen", "/gen", ""))
        .tenant(
            "es",
            pixyle_tenant("es", "/es", &key_entry("es-1", "ES256", &es, "")),
        )
        .tenant(
            "rs",
            pixyle_tenant("rs", "/rs", &key_entry("rs-1", "RS256", &rs, "")),
        )
        .tenant("hs", pixyle_tenant("hs", "/hs", &hs))
        .tenant("mixed", pixyle_tenant("mixed", "/mixed", &mixed))
        .write(dir.path());
    let app = TestApp::start_in(dir).await;

    let public = [
        (
            "gen",
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA"}),
            &["x"][..],
        ),
        (
            "es",
            json!({"kty": "EC", "crv": "P-256", "alg": "ES256"}),
            &["x", "y"][..],
        ),
        ("rs", json!({"kty": "RSA", "alg": "RS256"}), &["n", "e"][..]),
        (
            "mixed",
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA"}),
            &["x"][..],
        ),
    ];
    for (tenant, fixed, members) in public {
        let response = jwks_response(&app.address, tenant).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        assert_eq!(response.headers()["content-type"], "application/json");
        let set: Value = response.json().await.unwrap();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{tenant}: {set}");
        let key = keys[0].as_object().unwrap();
        for (name, value) in fixed.as_object().unwrap() {
            assert_eq!(&key[name], value, "{tenant}: {name}");
        }
        assert_eq!(key["use"], "sig");
        for member in members {
            assert!(
                key[*member].as_str().is_some_and(|v| !v.is_empty()),
                "{tenant}: {member}"
            );
        }
        for member in PRIVATE_MEMBERS {
            assert!(
                !key.contains_key(*member),
                "{tenant} publishes `{member}`: {set}"
            );
        }
        let mut expected: Vec<&str> = vec!["kty", "kid", "alg", "use"];
        expected.extend(members);
        if key.contains_key("crv") {
            expected.push("crv");
        }
        let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
        names.sort();
        expected.sort();
        assert_eq!(names, expected, "{tenant}: only public members");
        // The key that signs is the one listed.
        let token = access_token(&app, tenant).await;
        assert_eq!(key["kid"], kid_of(&token), "{tenant}");
    }
    // Symmetric keys are secrets: never published.
    let (set, _) = jwks(&app.address, "hs").await;
    assert_eq!(set, json!({ "keys": [] }));
    let (_, kids) = jwks(&app.address, "mixed").await;
    assert_eq!(kids, ["ed-1"]);
}

#[test]
fn every_dialect_document_describes_the_jwks() {
    let dialects = polyauth::dialect::Dialects::load(None).unwrap();
    for name in dialects.names() {
        let document = polyauth::openapi::document(dialects.get(name).unwrap(), None);
        let document = serde_json::to_value(&document).unwrap();
        let operation = &document["paths"]["/.well-known/jwks.json"]["get"];
        assert_eq!(operation["operationId"], "jwks", "{name}");
        let ok = &operation["responses"]["200"];
        assert!(ok["headers"].get("Cache-Control").is_some(), "{name}");
        let key = &ok["content"]["application/json"]["schema"]["properties"]["keys"]["items"];
        assert_eq!(
            key["required"],
            json!(["kty", "kid", "alg", "use"]),
            "{name}"
        );
        for member in PRIVATE_MEMBERS {
            assert!(key["properties"].get(*member).is_none(), "{name}: {member}");
        }
    }
}

/// `[[keys]]` of the tenant at `dir/config`, rewritten (the server reads
/// them at start).
fn rewrite_tenant(dir: &Path, tenant: &str, keys: &str) {
    Setup::new()
        .tenant(tenant, pixyle_tenant(tenant, &format!("/{tenant}"), keys))
        .write(dir);
}

/// `/_polyauth/verify`'s status for `token` on tenant `/<tenant>` at `base`.
async fn verify_status(base: &str, tenant: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/{tenant}/_polyauth/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_retired_configured_key_leaves_the_jwks_and_its_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = key_entry("k-old", "ES256", &es256_key(dir.path(), "old.pem"), "");
    let new = key_entry("k-new", "EdDSA", &ed25519_key(dir.path(), "new.pem"), "");
    rewrite_tenant(dir.path(), "t", &old);
    let app = TestApp::start_in(dir).await;
    let token = access_token(&app, "t").await;
    assert_eq!(kid_of(&token), "k-old");
    let dir = app.stop().await;

    // A date already past is accepted: the key is simply retired.
    let retired = old.replace("\n\n", "\nretire_after = \"2020-01-01T00:00:00Z\"\n");
    assert!(retired.contains("retire_after"));
    rewrite_tenant(dir.path(), "t", &format!("{new}{retired}"));
    let app = TestApp::start_in(dir).await;
    assert_eq!(jwks(&app.address, "t").await.1, ["k-new"]);
    assert_eq!(verify_status(&app.address, "t", &token).await, 401);
    let fresh = access_token(&app, "t").await;
    assert_eq!(kid_of(&fresh), "k-new");
    assert_eq!(verify_status(&app.address, "t", &fresh).await, 200);
    let dir = app.stop().await;

    // Listed first but retired: the first key that is not signs.
    rewrite_tenant(dir.path(), "t", &format!("{retired}{new}"));
    let app = TestApp::start_in(dir).await;
    assert_eq!(kid_of(&access_token(&app, "t").await), "k-new");
    assert_eq!(jwks(&app.address, "t").await.1, ["k-new"]);
    assert_eq!(verify_status(&app.address, "t", &token).await, 401);
}

/// `unix` seconds as RFC 3339, in UTC or at a +02:00 offset.
fn rfc3339(unix: u64, offset: bool) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let utc = humantime::format_rfc3339_seconds(time).to_string();
    if !offset {
        return utc;
    }
    // 2h later on the clock, two hours ahead of UTC: the same instant.
    let later = humantime::format_rfc3339_seconds(time + std::time::Duration::from_secs(7200));
    later.to_string().replace('Z', "+02:00")
}

#[tokio::test]
async fn a_key_retires_at_its_date_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let retire_at = polyauth::store::unix_now() + 3;
    let first = key_entry(
        "k1",
        "ES256",
        &es256_key(dir.path(), "k1.pem"),
        &format!("retire_after = {:?}", rfc3339(retire_at, true)),
    );
    let second = key_entry("k2", "EdDSA", &ed25519_key(dir.path(), "k2.pem"), "");
    rewrite_tenant(dir.path(), "t", &format!("{first}{second}"));
    let app = TestApp::start_in(dir).await;
    let token = access_token(&app, "t").await;
    assert_eq!(kid_of(&token), "k1");
    assert_eq!(jwks(&app.address, "t").await.1, ["k1", "k2"]);
    assert_eq!(verify_status(&app.address, "t", &token).await, 200);
    while polyauth::store::unix_now() < retire_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(jwks(&app.address, "t").await.1, ["k2"]);
    assert_eq!(verify_status(&app.address, "t", &token).await, 401);
    assert_eq!(kid_of(&access_token(&app, "t").await), "k2");
}

/// `polyauth check --config <config>`: success, and what it printed.
fn check(config: &Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn check_validates_retire_after_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let pem = es256_key(dir.path(), "k.pem");
    let other = ed25519_key(dir.path(), "other.pem");
    let with = |retire_after: &str| {
        let keys = format!(
            "{}{}",
            key_entry("k0", "EdDSA", &other, ""),
            key_entry(
                "k1",
                "ES256",
                &pem,
                &format!("retire_after = {retire_after}")
            )
        );
        Setup::new()
            .tenant("t", pixyle_tenant("t", "/t", &keys))
            .write(dir.path())
    };
    for bad in [
        "\"2026-12-31\"",
        "\"next tuesday\"",
        "\"2026-13-01T00:00:00Z\"",
        "42",
    ] {
        let (ok, said) = check(&with(bad));
        assert!(!ok, "{bad}: {said}");
        assert!(
            said.contains("t.toml: `keys[1].retire_after`: ") && said.contains("RFC 3339"),
            "{bad}: {said}"
        );
    }
    // Quoted or as a TOML date-time, in UTC or with an offset; past or not.
    for fine in [
        "\"2020-01-01T00:00:00Z\"",
        "2099-12-31T00:00:00Z",
        "\"2099-12-31T00:00:00.5+01:00\"",
    ] {
        let (ok, said) = check(&with(fine));
        assert!(ok, "{fine}: {said}");
    }
    let (_, said) = check(&with("\"2020-01-01T00:00:00Z\""));
    assert!(said.contains("2 configured keys, 1 retired"), "{said}");

    // Every key retired: nothing could sign. The error names the key that
    // retired last.
    let keys = format!(
        "{}{}",
        key_entry(
            "k0",
            "EdDSA",
            &other,
            "retire_after = \"2021-06-01T00:00:00Z\""
        ),
        key_entry(
            "k1",
            "ES256",
            &pem,
            "retire_after = \"2020-01-01T00:00:00Z\""
        )
    );
    let config = Setup::new()
        .tenant("t", pixyle_tenant("t", "/t", &keys))
        .write(dir.path());
    let (ok, said) = check(&config);
    assert!(!ok, "{said}");
    assert!(
        said.contains("t.toml: `keys[0].retire_after`: ") && said.contains("every key is retired"),
        "{said}"
    );
}
