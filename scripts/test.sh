#!/usr/bin/env bash
# Runs every test of shardcast on a fresh Debian machine: installs what the tests need (apt packages,
# the tansu broker, ONNX Runtime), then formatting, lints, unit tests and the end-to-end tests, which
# start their own broker and Redis servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${SHARDCAST_CACHE:-$HOME/.cache/shardcast}"
scripts/install-deps.sh
export SHARDCAST_TANSU="${SHARDCAST_TANSU:-$cache/tansu-0.6.0/bin/tansu}"
# The learned forecaster's tests load ONNX Runtime from here (installed by install-deps.sh).
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(find "$cache/onnxruntime-1.31" -path '*/onnxruntime/capi/libonnxruntime.so*' -type f | sort | head -n 1)"
  export ORT_DYLIB_PATH
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast -- --test-threads 2 2>&1 | tee "$log" || status=$?
# One total over every test binary, so the last line says what ran.
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
