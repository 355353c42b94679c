#!/usr/bin/env bash
# Runs every test of shardcast on a fresh Debian machine: installs what the tests need (apt packages,
# the tansu broker), then formatting, lints, unit tests and the end-to-end tests, which start their own
# broker and Redis servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${SHARDCAST_CACHE:-$HOME/.cache/shardcast}"
scripts/install-deps.sh
export SHARDCAST_TANSU="${SHARDCAST_TANSU:-$cache/tansu-0.6.0/bin/tansu}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads 2
