#!/usr/bin/env bash
# Runs every quality gate and every test, as CI does:
#   cargo fmt --check, cargo clippy -D warnings, cargo test.
# Installs what the tests need when it is missing (redis-server via apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_rust_component() {
  if ! cargo "$1" --version >/dev/null 2>&1; then
    log "installing rust component $2"
    rustup component add "$2"
  fi
}

# Tests start their own redis-server processes (one per test, on a free
# port, killed when the test ends); only the Debian package is needed.
need_debian_package() {
  if ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2 with apt-get"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}

need_rust_component fmt rustfmt
need_rust_component clippy clippy
need_debian_package redis-server redis-server

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "cargo test"
cargo test --locked --all-targets

log "all checks passed"
