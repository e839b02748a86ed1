//! `polyauth check` and `hash-password` as a user runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use crate::helpers::{PASSWORD, Setup, password_hash, pixyle_tenant};

fn polyauth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyauth"))
}

/// `polyauth check --config <config>`.
fn check(config: &Path) -> Output {
    polyauth()
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// `polyauth hash-password` with `stdin` piped in.
fn hash_password(stdin: &str) -> Output {
    let mut child = polyauth()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_a_valid_setup_and_prints_one_line_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("alpha", pixyle_tenant("cli-alpha", "/alpha", ""))
        .tenant("beta", pixyle_tenant("cli-beta", "/beta", ""))
        .write(dir.path());
    let output = check(&config);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "check failed: {}",
        text(&output.stderr)
    );
    for id in ["cli-alpha", "cli-beta"] {
        let lines = stdout.lines().filter(|line| line.contains(id)).count();
        assert_eq!(lines, 1, "expected one line naming `{id}` in:\n{stdout}");
    }
}

/// `check` says whether the admin API is on, and refuses a token too short
/// to guard it without ever printing it.
#[test]
fn check_says_whether_the_admin_api_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = || pixyle_tenant("cli-admin", "/a", "");
    let off = Setup::new().tenant("a", tenant()).write(dir.path());
    let said = text(&check(&off).stdout);
    assert!(said.contains("admin API off"), "{said}");

    let token = dir.path().join("admin-token");
    std::fs::write(&token, "a-test-admin-token-that-is-long-enough\n").unwrap();
    let on_dir = tempfile::tempdir().unwrap();
    let line = format!("admin_token_file = {:?}", token.display().to_string());
    let on = Setup::new()
        .server(&line)
        .tenant("a", tenant())
        .write(on_dir.path());
    let output = check(&on);
    let said = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        said.contains("admin API on at") && said.contains("/admin/v1"),
        "{said}"
    );
    assert!(
        !said.contains("long-enough"),
        "the token is never printed: {said}"
    );

    std::fs::write(&token, "short-token").unwrap();
    let output = check(&on);
    let said = text(&output.stdout) + &text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        said.contains("admin_token_file") && said.contains("at least 32"),
        "{said}"
    );
    assert!(!said.contains("short-token"), "{said}");
}

#[test]
fn check_rejects_a_malformed_phc_string_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = pixyle_tenant("t", "/t", "").replacen(&password_hash(PASSWORD), "not-a-phc", 1);
    let config = Setup::new().tenant("broken", tenant).write(dir.path());
    let output = check(&config);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "check accepted a bad hash");
    assert!(stderr.contains("broken.toml"), "no file in: {stderr}");
    assert!(
        stderr.contains("users[0].password_hash"),
        "no key in: {stderr}"
    );
}

#[test]
fn check_accepts_the_shipped_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = polyauth()
        .current_dir(root)
        .arg("check")
        .arg("--config")
        .arg(root.join("config"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the shipped config fails: {}",
        text(&output.stderr)
    );
}

#[test]
fn hash_password_prints_an_argon2id_phc_string_that_verifies() {
    let output = hash_password("correct horse\n");
    assert!(
        output.status.success(),
        "hash-password failed: {}",
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let phc = stdout.trim();
    assert!(phc.starts_with("$argon2id$"), "not argon2id: {phc}");
    polyauth::engine::password::validate_phc(phc).unwrap();
    let hash = PasswordHash::new(phc).unwrap();
    assert!(
        Argon2::default()
            .verify_password(b"correct horse", &hash)
            .is_ok()
    );
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let output = hash_password("");
    assert!(!output.status.success(), "an empty password was hashed");
    assert!(
        output.stdout.is_empty(),
        "printed: {}",
        text(&output.stdout)
    );
}
