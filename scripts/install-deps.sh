#!/usr/bin/env bash
# Installs what building and testing shardcast needs on a Debian machine: C build tools for the bundled
# librdkafka, Redis, the psql client, the tansu Kafka-protocol broker (built once, then cached) and the
# ONNX Runtime library of the learned forecaster (from the onnxruntime wheel, in a venv in the cache).
set -euo pipefail

cache="${SHARDCAST_CACHE:-$HOME/.cache/shardcast}"
mkdir -p "$cache"

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The lints and formatting checks need these toolchain components.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

# Stop the Redis that the Debian package starts: tests start their own servers on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

tansu="$cache/tansu-0.6.0/bin/tansu"
if [ ! -x "$tansu" ]; then
  echo "install-deps: building the tansu 0.6.0 broker (about 15 minutes on 2 cores, once per machine)"
  cargo install tansu --version 0.6.0 --locked --features libsql --root "$cache/tansu-0.6.0"
fi
# ONNX Runtime for the learned load forecaster: the shared library ships inside the onnxruntime wheel, so a
# venv holding the wheel is the install; ort loads it from ORT_DYLIB_PATH (scripts/test.sh exports it).
ort_venv="$cache/onnxruntime-1.31"
ort_lib="$(find "$ort_venv" -path '*/onnxruntime/capi/libonnxruntime.so*' -type f 2>/dev/null | sort | head -n 1 || true)"
if [ -z "$ort_lib" ]; then
  echo "install-deps: installing ONNX Runtime 1.31 into $ort_venv"
  command -v python3 >/dev/null || { echo "install-deps: python3 is needed for ONNX Runtime" >&2; exit 1; }
  if ! python3 -m venv "$ort_venv" 2>/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$ort_venv"
  fi
  "$ort_venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime==1.31.*"
  ort_lib="$(find "$ort_venv" -path '*/onnxruntime/capi/libonnxruntime.so*' -type f | sort | head -n 1)"
fi
if [ -z "$ort_lib" ]; then
  echo "install-deps: the onnxruntime wheel in $ort_venv holds no capi/libonnxruntime.so" >&2
  exit 1
fi
echo "install-deps: ONNX Runtime at $ort_lib"
echo "install-deps: ok (tansu at $tansu)"
