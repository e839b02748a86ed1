//! `polyauth users import` as an operator runs it: the real binary on a
//! file of JSON lines, its summary, its refusals by line number, its exit
//! status, and its memory on 100,000 lines.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Served, Setup, TestApp, password_hash, pixyle_tenant};

fn import(config: &Path, tenant: &str, file: &Path, json: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polyauth"));
    command
        .args(["users", "import", "--tenant", tenant, "--config"])
        .arg(config);
    if json {
        command.arg("--json");
    }
    command.arg(file).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Lines: two new users, one already there, three refused.
fn lines() -> String {
    let hash = password_hash(PASSWORD);
    [
        json!({"email": "one@a.test", "password_hash": hash, "roles": ["user"]}).to_string(),
        json!({"email": "two@a.test", "password_hash": hash, "active": true}).to_string(),
        "{not json".to_owned(),
        json!({"email": "ONE@a.test", "password_hash": hash}).to_string(),
        json!({"email": "three@a.test", "password": PASSWORD}).to_string(),
        String::new(),
        json!({"email": "four@a.test", "password_hash": "$2b$17$C6UzMDM.H6dfI/f/IKxGhuJ0Tc4T5u/E38yXMUd8qnsP4dYwPH8G."}).to_string(),
    ]
    .join("\n")
        + "\n"
}

#[tokio::test]
async fn an_import_reports_refused_lines_by_number_and_running_it_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, lines()).unwrap();

    let done = import(&config, "a", &file, false);
    let (stdout, stderr) = (text(&done.stdout), text(&done.stderr));
    assert_eq!(done.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "imported 2, unchanged 1, refused 3\n", "{stderr}");
    let refused: Vec<&str> = stderr.lines().collect();
    assert_eq!(refused.len(), 3, "{stderr}");
    assert!(refused[0].starts_with("line 3: "), "{stderr}");
    assert!(refused[1].starts_with("line 5: password:"), "{stderr}");
    assert!(refused[2].starts_with("line 7: password_hash:"), "{stderr}");
    assert!(refused[2].contains("bcrypt cost 17"), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains("$2b$17"),
        "{stderr}"
    );

    let again = import(&config, "a", &file, true);
    assert_eq!(again.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            &summary["imported"],
            &summary["unchanged"],
            &summary["refused"]
        ),
        (&json!(0), &json!(3), &json!(3)),
        "{summary}"
    );
    let lines: Vec<u64> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 7]);

    // Only good lines: exit 0.
    let good = dir.path().join("good.jsonl");
    let hash = password_hash(PASSWORD);
    std::fs::write(
        &good,
        json!({"email": "five@a.test", "password_hash": hash}).to_string(),
    )
    .unwrap();
    let done = import(&config, "a", &good, false);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(text(&done.stdout), "imported 1, unchanged 0, refused 0\n");

    let app = TestApp::start_in(dir).await;
    for email in ["one@a.test", "two@a.test", "five@a.test"] {
        let (status, body) = app.pixyle_login("/a", email, PASSWORD).await;
        assert_eq!(status, 200, "{email}: {body}");
    }
    let (status, _) = app.pixyle_login("/a", "three@a.test", PASSWORD).await;
    assert_eq!(status, 401);
}

#[test]
fn usage_and_configuration_errors_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, lines()).unwrap();
    let unknown = import(&config, "nope", &file, false);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("no tenant `nope`"),
        "{}",
        text(&unknown.stderr)
    );
    let missing = import(&config, "a", &dir.path().join("absent.jsonl"), false);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("absent.jsonl"));
    let no_config = import(&dir.path().join("nowhere"), "a", &file, false);
    assert_eq!(no_config.status.code(), Some(2));
    let no_file = Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .args(["users", "import", "--tenant", "a"])
        .output()
        .unwrap();
    assert_eq!(no_file.status.code(), Some(2), "clap's usage error");

    // The embedded store serves one process: the gateway must be stopped.
    let served = Served::start(&config, "info");
    let busy = import(&config, "a", &file, false);
    assert_eq!(busy.status.code(), Some(2));
    assert!(
        text(&busy.stderr).contains("stop the gateway"),
        "{}",
        text(&busy.stderr)
    );
    drop(served);
}

/// On Redis the gateway keeps running: what is imported logs in at once.
#[tokio::test]
async fn an_import_into_redis_reaches_the_running_gateway() {
    let redis = crate::redis_server::RedisServer::start();
    let setup = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .redis(&redis.url(), "import");
    let app = TestApp::spawn(setup).await;
    let file = app.dir.path().join("users.jsonl");
    std::fs::write(&file, lines()).unwrap();
    let config = app.dir.path().join("config");
    let file_for = file.clone();
    let done = tokio::task::spawn_blocking(move || import(&config, "a", &file_for, false))
        .await
        .unwrap();
    assert_eq!(
        text(&done.stdout),
        "imported 2, unchanged 1, refused 3\n",
        "{}",
        text(&done.stderr)
    );
    let (status, body) = app.pixyle_login("/a", "one@a.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}

/// The peak resident memory (MiB, `VmHWM`) `child` reached, sampled from
/// `/proc/<pid>/status` until it exits, and its exit status. (Not `wait4`'s
/// `ru_maxrss`: a child spawned by vfork counts the test process's memory
/// before its exec.)
fn wait_with_peak(mut child: std::process::Child) -> (std::process::ExitStatus, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak_kib >> 10);
        }
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| {
                kib.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs an import of `file` into tenant `a`: its summary, and its peak
/// resident memory in MiB.
fn measured_import(config: &Path, file: &Path) -> (String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyauth"))
        .args(["users", "import", "--tenant", "a", "--config"])
        .arg(config)
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (status, peak_mib) = wait_with_peak(child);
    let mut summary = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut summary).unwrap();
    assert!(status.success(), "{summary}");
    (summary, peak_mib)
}

/// 100,000 lines (one hash, distinct emails) import in bounded memory: the
/// process holds a batch, never the file nor the users it made. Against an
/// import of one line by the same binary, its peak grows by less than the
/// file's size plus the users' (about 57 MiB): what grows is the store's
/// own bounded cache (16 MiB) and the allocator's slack.
#[test]
fn a_hundred_thousand_lines_import_in_bounded_memory() {
    const LINES: usize = 100_000;
    const GROWTH_BOUND_MIB: u64 = 32;
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new()
        .tenant("a", pixyle_tenant("a", "/a", ""))
        .write(dir.path());
    let hash = password_hash(PASSWORD);
    let line = |n: usize| {
        json!({"email": format!("user-{n:06}@bulk.test"), "password_hash": hash, "roles": ["user"]})
            .to_string()
            + "\n"
    };
    let one = dir.path().join("one.jsonl");
    std::fs::write(&one, line(LINES)).unwrap();
    let (summary, baseline_mib) = measured_import(&config, &one);
    assert_eq!(summary, "imported 1, unchanged 0, refused 0\n");

    let file = dir.path().join("users.jsonl");
    let body: String = (0..LINES).map(line).collect();
    std::fs::write(&file, &body).unwrap();
    let file_mib = body.len() as u64 >> 20;
    assert!(file_mib >= 15, "{file_mib} MiB");
    drop(body);
    let (summary, peak_mib) = measured_import(&config, &file);
    assert_eq!(
        summary,
        format!("imported {LINES}, unchanged 0, refused 0\n")
    );
    eprintln!(
        "{LINES} lines ({file_mib} MiB): peak RSS {peak_mib} MiB, one line {baseline_mib} MiB"
    );
    assert!(
        peak_mib < baseline_mib + GROWTH_BOUND_MIB,
        "peak RSS {peak_mib} MiB for {LINES} lines ({file_mib} MiB) against {baseline_mib} MiB for one"
    );
    // Every line is there.
    let again = import(&config, "a", &file, false);
    assert_eq!(
        text(&again.stdout),
        format!("imported 0, unchanged {LINES}, refused 0\n")
    );
}
