#!/usr/bin/env bash
# Prints register latency p50/p99 from Python next to the Rust core's, in the
# same run against the same (freshly started) etcd, and whether two Python
# threads register in parallel. Installs the package first (pip install ./py)
# and builds the Rust core's side (`bench child-core`).
#   scripts/bench-python.sh [ROUNDS] [PER_ROUND]      (default 10 rounds of 200)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup.sh
echo "== building the package (pip install ./py) and the core's benchmark child (cargo build --release -p libregistry-bench); a few minutes the first time"
.venv/bin/python -m pip install -q --disable-pip-version-check ./py
cargo build -q --release -p libregistry-bench
export BENCH_CORE="$PWD/target/release/bench"
exec .venv/bin/python tests/python/bench_register.py "$@"
