#!/usr/bin/env bash
# Runs every quality gate and every test, as CI does:
#   cargo fmt --check, cargo clippy -D warnings, the OpenAPI checks, cargo test.
# Installs what the tests need when it is missing: redis-server, nginx,
# caddy, chromium (and python3-venv if needed) via apt-get, Python tools via
# pip in a virtualenv, Node libraries via npm in tests/js.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_rust_component() {
  if ! cargo "$1" --version >/dev/null 2>&1; then
    log "installing rust component $2"
    rustup component add "$2"
  fi
}

# Installs Debian package $2 unless command $1 exists (always when $1 is "").
need_debian_package() {
  if [ -z "$1" ] || ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2 with apt-get"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}

need_rust_component fmt rustfmt
need_rust_component clippy clippy
# Tests start their own redis-server processes (one per test, on a free
# port, killed when the test ends); only the Debian package is needed.
need_debian_package redis-server redis-server
# A key-loading test makes RSA keys with openssl at test time.
need_debian_package openssl openssl
# Real proxies in front of polyauth (forward-auth, upstream proxy tests) and
# a real browser (CORS): each test starts its own on free ports.
need_debian_package nginx nginx
need_debian_package caddy caddy
need_debian_package chromium chromium
# Node libraries the tests drive (jose verifying from the JWKS).
if ! command -v npm >/dev/null 2>&1; then need_debian_package npm npm; fi
log "npm ci (tests/js)"
(cd tests/js && npm ci --silent --no-audit --no-fund)

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

# The OpenAPI checks run the real binary and Python tools in a virtualenv:
# every document validates, schemathesis fuzzes every demo tenant, and a
# client generated per dialect is driven through every route.
log "OpenAPI checks (virtualenv in target/openapi-venv)"
venv=target/openapi-venv
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "the OpenAPI checks need Python >= 3.11 (schemathesis, openapi-python-client); found $(python3 --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    need_debian_package "" python3-venv
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  -r scripts/openapi-requirements.txt -c scripts/openapi-constraints.txt
cargo build --locked
PATH="$PWD/$venv/bin:$PATH" timeout 1800 "$venv/bin/python" scripts/openapi_check.py

log "cargo test"
# PyJWT and the other Python libraries the tests drive live in the venv.
POLYAUTH_TEST_PYTHON="$PWD/$venv/bin/python" cargo test --locked --all-targets

log "all checks passed"
