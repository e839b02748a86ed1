#!/usr/bin/env bash
# Runs every quality gate and every test, as CI does:
#   cargo fmt --check, cargo clippy -D warnings, cargo test.
# Installs what the tests need when it is missing (Debian packages via apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_rust_component() {
  if ! cargo "$1" --version >/dev/null 2>&1; then
    log "installing rust component $2"
    rustup component add "$2"
  fi
}

need_rust_component fmt rustfmt
need_rust_component clippy clippy

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "cargo test"
cargo test --locked --all-targets

log "all checks passed"
