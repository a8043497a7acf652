#!/usr/bin/env bash
# make bench: builds the benchmark (release) with its Python and Go drivers,
# runs every section against etcd 3.7.3 (ETCD_BIN picks another) started
# on loopback, prints the table, writes BENCHMARKS.md and draws
# BENCHMARKS.png (bench/python/plot.py).
#   BENCH_QUICK=1 scripts/bench.sh   every section with tiny counts, output under target/bench/
# Installs what it needs first: scripts/setup.sh, the Python package (pip
# install ./py), the Python peer and matplotlib into .venv, the Go peer's
# modules through the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

[ -x .venv/bin/python ] || scripts/setup.sh
PY="$PWD/.venv/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
export ETCD_BIN="${ETCD_BIN:-$(scripts/etcd-path.sh 3.7.3 2>/dev/null || scripts/etcd-path.sh)}"
mkdir -p target/bench

echo "== bench: building the benchmark and the provider (release)"
cargo build --release -q -p libregistry-bench -p libregistry-tests --bin bench --bin provider

echo "== bench: the Python package, the Python peer and matplotlib into .venv"
# The extension is built against the workspace's target dir so that the
# dependencies it shares with the workspace are compiled once.
CARGO_TARGET_DIR="$PWD/target" "${PIP[@]}" ./py
"${PIP[@]}" "etcd-sdk-python==0.0.7" "protobuf>=4,<8" "matplotlib>=3.8,<4"

echo "== bench: the Go peer"
if command -v go >/dev/null; then
  (cd bench/go && go build -o ../../target/bench/go-peer .)
  export BENCH_GO_PEER="$PWD/target/bench/go-peer"
else
  echo "== bench: go not found: the Go peer is left out"
fi

export BENCH_PYTHON="$PY" BENCH_PEER_PYTHON="$PY"
echo "== bench: running ($(( $(date +%s) - start )) s of setup and build so far)"
target/release/bench
out=BENCHMARKS.png
[ "${BENCH_QUICK:-0}" = 1 ] && out=target/bench/BENCHMARKS.png
"$PY" bench/python/plot.py target/bench/results.json "$out"
echo "== bench: done in $(( $(date +%s) - start )) s"
