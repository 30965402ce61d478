#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need on a fresh machine, then
# checks formatting, lints every target with warnings denied, builds each library with its default
# features off and with each feature alone, checks the declared minimum Rust versions, runs every
# test (unit, integration, doctests) and checks that the workspace packages.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------------
# redis-server: the Redis cache tier is tested against a real one (each test starts its own);
# redis-cli (Debian installs it with redis-server) forms the test clusters.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    say "installing redis-server"
    if ! apt-get install -y redis-server >/dev/null 2>&1; then
        apt-get update >/dev/null && apt-get install -y redis-server >/dev/null
    fi
fi
# A thousand concurrent client connections in one test process need the file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Rust components (a rustup toolchain without them gets them added).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    say "installing rustfmt and clippy"
    rustup component add rustfmt clippy
fi
# cargo-nextest runs the tests in parallel processes with per-test time limits; plain cargo test is
# the fallback when it cannot be installed.
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest"
    cargo install cargo-nextest --locked || echo "cargo-nextest unavailable; using cargo test"
fi

# --- checks --------------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy (all targets, warnings denied; default features, then with otel)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p yatagarasu --all-targets --locked --features otel -- -D warnings

say "each library with default features off, and with each feature alone"
# Library code only (the tests need the full feature set); warnings denied, so a feature that
# leaves code unused or fails to build alone shows here.
lib_features() {
    local crate=$1; shift
    for features in "$@"; do
        echo "$crate: ${features:-no features}"
        cargo clippy -p "$crate" --lib --locked --no-default-features ${features:+--features "$features"} -- -D warnings
    done
}
lib_features yatagarasu-core ""
lib_features yatagarasu-coalesce ""
lib_features yatagarasu-s3 "" test-util
lib_features yatagarasu-cache "" memory disk redis
lib_features yatagarasu "" cli otel

say "minimum Rust versions (declared by every dependency)"
python3 scripts/check-msrv.py

say "tests"
# With the optional OpenTelemetry feature on, so its end-to-end test runs too (clippy above checks
# the default build).
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --features yatagarasu/otel
else
    cargo test --workspace --locked --features yatagarasu/otel --lib --bins --tests
fi

say "doctests"
cargo test --workspace --locked --doc --features yatagarasu-s3/test-util

say "the crates used from outside the workspace (default features off, README examples)"
bash scripts/check-crates-alone.sh

say "the workspace packages (each crate as crates.io would receive it)"
package_log=$(mktemp)
if ! cargo package --workspace --locked --no-verify --allow-dirty >"$package_log" 2>&1; then
    cat "$package_log"
    exit 1
fi
grep -E '^ *Packaging' "$package_log"
rm -f "$package_log"
