//! Memory stays bounded under login load: argon2's block memory is reused by
//! the hashing threads, not handed back to the allocator after every login.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::helpers::{PASSWORD, Served, Setup, pixyle_tenant};

const MIB: u64 = 1024 * 1024;
const MAX_CONCURRENT: u64 = 2;
/// The default argon2 memory (m = 19 MiB), which the tenant's hashes use.
const ARGON2_MEMORY: u64 = 19 * MIB;
const LOGINS: usize = 300;
const CLIENTS: usize = 16;

/// The resident set of process `pid`, from `/proc/<pid>/status`.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kib * 1024
}

#[tokio::test]
async fn failed_logins_leave_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Per-address lockout would stop the flood before 300 hashes.
    let mut setup = Setup::new()
        .server(&format!("[hashing]\nmax_concurrent = {MAX_CONCURRENT}"))
        .tenant(
            "m",
            pixyle_tenant("m", "/m", "[lockout]\nmax_failures = 100000\n"),
        );
    // Idle tenants: each one's dummy hash is argon2 memory allocated and freed
    // at startup, which must not stay resident either.
    for n in 0..4 {
        let id = format!("idle{n}");
        setup = setup.tenant(&id, pixyle_tenant(&id, &format!("/{id}"), ""));
    }
    let config = setup.write(dir.path());
    let served = Served::start(&config, "info");
    let url = served.url("/m/auth/v1/token");
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= LOGINS {
                        return statuses;
                    }
                    // Unknown accounts, each its own: hashed against the dummy.
                    let body = serde_json::json!({"email": format!("nobody{n}@m.test"), "password": PASSWORD});
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    statuses.push(response.status().as_u16());
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    assert_eq!(statuses.len(), LOGINS);
    assert!(
        statuses.iter().all(|&s| s == 401),
        "every login is refused after hashing: {statuses:?}"
    );

    let resident = resident_bytes(served.child.id());
    let bound = 64 * MIB + MAX_CONCURRENT * ARGON2_MEMORY;
    assert!(
        resident <= bound,
        "resident set {} MiB after {LOGINS} failed logins, bound {} MiB",
        resident / MIB,
        bound / MIB
    );
}
