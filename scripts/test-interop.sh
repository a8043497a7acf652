#!/usr/bin/env bash
# Interop with Go (tests/interop): Go gRPC consumers using etcd's resolver
# find and call providers registered through libregistry from Python and C
# and Go servers wrapped by the `registry` command (a rolling restart under
# `registry run` loses no call), and libregistry's discover/watch (C and
# Python) find what Go's naming/endpoints.Manager writes. What it does:
#   1. skips, saying so, where there is no Go toolchain (or one older than
#      tests/interop/go/go.mod needs: no toolchain is downloaded);
#   2. installs into .venv what the Python providers need: grpcio and
#      grpcio-tools, and libregistry from ./py when missing or older than
#      its sources;
#   3. builds libregistry.so and the `registry` command (cargo), the C
#      provider and consumer against it, the Python Greeter stubs from
#      tests/interop/proto/helloworld.proto, and the Go test binary (modules
#      as go.sum pins them);
#   4. runs it against an etcd of its own (tests/interop/run.py: started on
#      free loopback ports, stopped afterwards), bounded in time;
#   5. checks `registry list -o prometheus-sd` with Prometheus's own file_sd
#      loader (tests/interop/promsd, a Go module of its own), the same way.
#   6. the same for tests/interop/frameworks, a Go module of its own: go-zero's
#      zrpc client and kratos's gRPC client call providers registered in their
#      layouts, and C and Python consumers find what the frameworks write (its
#      first build compiles go-zero and kratos: about 4 min on 2 busy cores).
# Exits non-zero on any failure; every step has a time limit (the run:
# INTEROP_LIMIT_SECONDS, 300 by default; it takes ~15 s, and the rolling
# restart under `registry run` ~7 s more). Builds go to
# target/interop/.
# $ETCD_BIN picks the etcd (default: .venv's etcd 3.5); $INTEROP_RUN, a Go
# test name pattern, runs only those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/target/interop"
LIMIT_SECONDS="${INTEROP_LIMIT_SECONDS:-300}"

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
if ! command -v go >/dev/null 2>&1; then
  echo "== SKIPPED: Go interop tests (no Go toolchain on PATH; install Go to run tests/interop)"
  exit 0
fi
need="$(sed -n 's/^go \([0-9.]*\)$/\1/p' tests/interop/go/go.mod)"
have="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
  echo "== SKIPPED: Go interop tests (Go $have found; tests/interop/go needs Go $need or newer)"
  exit 0
fi

[ -x .venv/bin/python ] || scripts/setup.sh
PY="$ROOT/.venv/bin/python"
PIP=(timeout 600 "$PY" -m pip install -q --disable-pip-version-check)

echo "== interop: Python providers' packages (grpcio, grpcio-tools, libregistry) in .venv"
"$PY" -c 'import grpc, grpc_tools' 2>/dev/null || "${PIP[@]}" "grpcio>=1.60,<2" "grpcio-tools>=1.60,<2"
native="$("$PY" -c 'import libregistry._native as n; print(n.__file__)' 2>/dev/null || true)"
if [ -z "$native" ] || [ -n "$(find py/src py/python py/Cargo.toml py/pyproject.toml core/src \
     -newer "$native" -type f -print -quit 2>/dev/null)" ]; then
  "${PIP[@]}" --force-reinstall --no-deps ./py
fi
"$PY" -c 'import libregistry; print("interop: libregistry", libregistry.__version__, "from", libregistry.__file__)'

echo "== interop: building libregistry.so, registry, the C programs, the Python stubs and the Go test"
timeout 900 cargo build -q -p libregistry-ffi -p libregistry-cli
mkdir -p "$OUT/bin" "$OUT/py-stubs"
for program in provider consumer greeter; do
  cc -std=c11 -Wall -Wextra -Werror -pedantic -I include "tests/interop/c/$program.c" \
    -o "$OUT/bin/$program" -L target/debug -Wl,-rpath,"$ROOT/target/debug" -lregistry -lpthread -ldl -lm
done
"$PY" -m grpc_tools.protoc -I tests/interop/proto --python_out="$OUT/py-stubs" \
  --grpc_python_out="$OUT/py-stubs" tests/interop/proto/helloworld.proto
(cd tests/interop/go && timeout 600 go test -c -o "$OUT/interop.test" .)
# Prometheus's own file_sd loader, in a module of its own (its dependencies
# stay out of the interop module); it needs a newer Go than the rest.
promsd_need="$(sed -n 's/^go \([0-9.]*\)$/\1/p' tests/interop/promsd/go.mod)"
if [ "$(printf '%s\n%s\n' "$promsd_need" "$have" | sort -V | head -n1)" = "$promsd_need" ]; then
  (cd tests/interop/promsd && timeout 600 go test -c -o "$OUT/promsd.test" .)
else
  echo "== SKIPPED: Prometheus file_sd check (Go $have found; tests/interop/promsd needs Go $promsd_need)"
  rm -f "$OUT/promsd.test"
fi
(cd tests/interop/frameworks && timeout 900 go test -c -o "$OUT/frameworks.test" .)

echo "== interop: Go consumers and libregistry providers against a real etcd"
export INTEROP_PYTHON="$PY" INTEROP_PYTHONPATH="$OUT/py-stubs" INTEROP_DIR="$ROOT/tests/interop" \
  INTEROP_BIN="$OUT/bin" INTEROP_REGISTRY="$ROOT/target/debug/registry" INTEROP_RUN_LIMIT=$((LIMIT_SECONDS - 20))
timeout --kill-after=10 "$LIMIT_SECONDS" \
  "$PY" tests/interop/run.py "$OUT/interop.test" -test.v -test.count=1 -test.timeout="$((LIMIT_SECONDS - 30))s" \
  ${INTEROP_RUN:+"-test.run=$INTEROP_RUN"}
if [ -x "$OUT/promsd.test" ]; then
  echo "== interop: registry list -o prometheus-sd read by Prometheus's file_sd (about 5 s)"
  INTEROP_RUN_LIMIT=100 timeout --kill-after=10 120 \
    "$PY" tests/interop/run.py "$OUT/promsd.test" -test.v -test.count=1 -test.timeout=90s
fi

echo "== interop: go-zero's and kratos's own clients with libregistry (tests/interop/frameworks)"
timeout --kill-after=10 "$LIMIT_SECONDS" \
  "$PY" tests/interop/run.py "$OUT/frameworks.test" -test.v -test.count=1 -test.timeout="$((LIMIT_SECONDS - 30))s" \
  ${INTEROP_RUN:+"-test.run=$INTEROP_RUN"}
