#!/usr/bin/env bash
# Installs what `make dist` and its checks need, idempotently, on top of
# scripts/setup.sh (protoc, .venv, etcd):
#   - into .venv: packaging/requirements-dist.txt (maturin, zig, cargo-zigbuild, auditwheel)
#   - when root with apt: lintian, binutils (objcopy,
#     strip, readelf, objdump), pkg-config, cmake, g++ (the C and C++ consumers)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

stamp=.venv/.dist-tools
if ! cmp -s packaging/requirements-dist.txt "$stamp" 2>/dev/null; then
  echo "setup: installing the dist tools into .venv (packaging/requirements-dist.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -r packaging/requirements-dist.txt
  cp packaging/requirements-dist.txt "$stamp"
fi

missing=()
for tool in lintian:lintian objcopy:binutils pkg-config:pkg-config cmake:cmake g++:g++; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: make dist needs ${missing[*]} (Debian packages); install them" >&2
    exit 1
  fi
fi
