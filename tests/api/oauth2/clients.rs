//! `[[clients]]` in a tenant file, as `polyauth check` judges it, and
//! `polyauth hash-secret` as an operator runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::json;

use super::{Caller, SECRET, VENDOR, login, oauth2, secret_hash, vendor_tenant};
use crate::helpers::{Setup, TestApp, status_json};

fn polyauth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyauth"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `polyauth hash-secret [args]` with `stdin` piped in.
fn hash_secret(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = polyauth()
        .arg("hash-secret")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `--generate` may exit before reading: a closed pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// `polyauth check` on a tenant file holding `clients` (TOML tables).
fn check_with_clients(clients: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let tenant = format!("{}\n{clients}", vendor_tenant("t", ""));
    let config = Setup::new()
        .dialect("vendor", VENDOR)
        .tenant("t", tenant)
        .write(dir.path());
    polyauth()
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_rejects_a_malformed_secret_hash_naming_file_and_key() {
    let good = secret_hash("another-secret-0123456789-abcdefghij");
    let hex = good.strip_prefix("sha256:").unwrap();
    for bad in [
        hex.to_owned(),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha512:{hex}"),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        format!("sha256:{}x", &hex[1..]),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
    ] {
        let output = check_with_clients(&format!(
            "[[clients]]\nid = \"other\"\nsecret_hash = \"{bad}\"\n"
        ));
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{bad} accepted");
        assert!(stderr.contains("t.toml"), "no file in: {stderr}");
        assert!(
            stderr.contains("clients[1].secret_hash"),
            "no key in: {stderr}"
        );
        assert!(!stderr.contains(hex), "the hash is repeated: {stderr}");
    }
    let output = check_with_clients(&format!(
        "[[clients]]\nid = \"other\"\nsecret_hash = \"{good}\"\n"
    ));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn check_rejects_a_repeated_or_empty_client_id() {
    let hash = secret_hash(SECRET);
    for (clients, key) in [
        (
            format!("[[clients]]\nid = \"billing\"\nsecret_hash = \"{hash}\"\n"),
            "clients[1].id",
        ),
        (
            format!("[[clients]]\nid = \"\"\nsecret_hash = \"{hash}\"\n"),
            "clients[1].id",
        ),
        ("[[clients]]\nid = \"x\"\n".to_owned(), "clients[1]"),
        (
            format!("[[clients]]\nid = \"x\"\nsecret_hash = \"{hash}\"\nsecret = \"s\"\n"),
            "clients[1]",
        ),
    ] {
        let output = check_with_clients(&clients);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "accepted: {clients}");
        assert!(stderr.contains("t.toml"), "no file in: {stderr}");
        assert!(stderr.contains(key), "no {key} in: {stderr}");
    }
    let repeated = text(
        &check_with_clients(&format!(
            "[[clients]]\nid = \"billing\"\nsecret_hash = \"{hash}\"\n"
        ))
        .stderr,
    );
    assert!(repeated.contains("repeated"), "{repeated}");
}

#[test]
fn hash_secret_hashes_stdin_without_one_trailing_newline() {
    let secret = "a-secret-of-exactly-thirty-two-b";
    assert_eq!(secret.len(), 32);
    for (stdin, hashed) in [
        (format!("{secret}\n"), secret.to_owned()),
        (secret.to_owned(), secret.to_owned()),
        (format!("{secret}\r\n"), secret.to_owned()),
        // Only one newline is dropped.
        (format!("{secret}\n\n"), format!("{secret}\n")),
        (format!(" {secret} \n"), format!(" {secret} ")),
    ] {
        let output = hash_secret(&[], stdin.as_bytes());
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), format!("{}\n", secret_hash(&hashed)));
        assert!(!text(&output.stderr).contains(secret));
    }
}

#[test]
fn hash_secret_refuses_a_secret_shorter_than_32_bytes() {
    for stdin in ["", "\n", "thirty-one-bytes-are-not-enough\n"] {
        let output = hash_secret(&[], stdin.as_bytes());
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{stdin:?} was hashed");
        assert!(
            output.stdout.is_empty(),
            "printed: {}",
            text(&output.stdout)
        );
        assert!(stderr.contains("32 bytes"), "{stderr}");
        assert!(
            !stderr.contains("thirty-one"),
            "the secret is repeated: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_generated_secret_and_its_hash_make_a_working_client() {
    let output = hash_secret(&["--generate"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let [secret_line, hash_line] = lines[..] else {
        panic!("not two lines: {stdout}");
    };
    let secret = secret_line.strip_prefix("secret: ").unwrap();
    let hash = hash_line.strip_prefix("secret_hash: ").unwrap();
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .unwrap();
    assert_eq!(random.len(), 32);
    assert_eq!(hash, secret_hash(secret));
    let again = text(&hash_secret(&["--generate"], b"").stdout);
    assert_ne!(again, stdout, "the same secret twice");

    // The printed hash, pasted into a tenant file, admits the secret.
    let tenant = format!(
        "{}\n[[clients]]\nid = \"generated\"\nsecret_hash = \"{hash}\"\n",
        vendor_tenant("a", "")
    );
    let app = TestApp::spawn(Setup::new().dialect("vendor", VENDOR).tenant("a", tenant)).await;
    let tokens = login(&app, "a").await;
    let form = [("token", tokens.access.as_str())];
    let response = oauth2(
        &app,
        "a",
        "introspect",
        Caller::Basic("generated", secret),
        &form,
    )
    .await;
    let (status, body) = status_json(response).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    let response = oauth2(
        &app,
        "a",
        "introspect",
        Caller::Basic("generated", SECRET),
        &form,
    )
    .await;
    assert_eq!(response.status(), 401);
}
