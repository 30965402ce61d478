#!/usr/bin/env bash
# Use the crates as a new user would: a scratch crate outside the workspace depends on each one by
# path, with default features off plus at most one feature, and runs every crate README's examples
# as its own doctests. Catches a README example that only compiles inside the workspace (a
# dependency the user would not have, a feature turned on by another crate) and a crate that does
# not build with its default features off.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$scratch/src"
cat >"$scratch/Cargo.toml" <<EOF
[package]
name = "scratch-user"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
yatagarasu-core = { path = "$root/yatagarasu-core", default-features = false }
yatagarasu-coalesce = { path = "$root/yatagarasu-coalesce", default-features = false }
yatagarasu-s3 = { path = "$root/yatagarasu-s3", default-features = false, features = ["test-util"] }
yatagarasu-cache = { path = "$root/yatagarasu-cache", default-features = false, features = ["memory"] }
yatagarasu = { path = "$root/yatagarasu-bin", default-features = false }
# What the README examples use besides the crates, as a user's Cargo.toml would list it.
futures-util = "0.3"
http = "1"
http-body-util = "0.1"
tokio = { version = "1", features = ["rt", "macros"] }
EOF
{
    echo '//! The crates READMEs, as doctests of a crate outside the workspace.'
    for readme in yatagarasu-core yatagarasu-coalesce yatagarasu-s3 yatagarasu-cache yatagarasu-bin; do
        name="Readme$(echo "$readme" | tr -d '-')"
        printf '#[doc = include_str!("%s/%s/README.md")]\npub struct %s;\n' "$root" "$readme" "$name"
    done
} >"$scratch/src/lib.rs"
# The workspace's lock file, so the scratch crate builds the versions CI tested (and reuses them).
cp "$root/Cargo.lock" "$scratch/Cargo.lock"

cd "$scratch"
CARGO_TARGET_DIR="$root/target/scratch-user" cargo test --doc --quiet 2>&1 | tail -n 3
