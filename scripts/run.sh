#!/usr/bin/env bash
# Builds shardcast and runs the default pipeline (generator source, SQL on 127.0.0.1:5433). Extra
# arguments go to `shardcast run`, e.g. scripts/run.sh --source kafka://127.0.0.1:9092/events
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec cargo run --release --locked -- run "$@"
