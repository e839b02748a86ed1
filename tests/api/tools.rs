//! Real programs the tests drive (nginx, caddy, chromium, Python and Node
//! libraries). `./scripts/test.sh` installs every one of them when missing;
//! a test run without them fails saying so, it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The program named by `$env_var`, else `default` on the `PATH`; panics,
/// naming what installs it, when there is none.
pub fn program(env_var: &str, default: &str) -> PathBuf {
    let chosen = std::env::var_os(env_var).map(PathBuf::from);
    let path = chosen.unwrap_or_else(|| PathBuf::from(default));
    let found = if path.components().count() > 1 {
        path.is_file().then_some(path.clone())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&path))
                .find(|candidate| candidate.is_file())
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "{} not found (set {env_var} to override). Run ./scripts/test.sh, which installs it",
            path.display()
        )
    })
}

/// The Python of the test virtualenv (PyJWT and the OpenAPI tools).
pub fn python() -> PathBuf {
    let default = repo().join("target/openapi-venv/bin/python");
    program("POLYAUTH_TEST_PYTHON", default.to_str().unwrap())
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A port nothing listens on now (a race with other processes is possible:
/// starters retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
