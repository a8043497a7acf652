#!/usr/bin/env bash
# Builds etcd and etcdctl VERSION from their Go modules, once, into
# .venv/etcd-vVERSION/{etcd,etcdctl}:
#
#   scripts/build-etcd.sh 3.7.3      (or 3.6.16: the versions with a module below)
#
# The binaries are etcd's own main packages (go.etcd.io/etcd/server/v3 is
# etcd's `main` calling etcdmain.Main, go.etcd.io/etcd/etcdctl/v3 etcdctl's)
# at the versions that scripts/etcd-build/vVERSION/go.mod names, with every
# dependency pinned by its go.sum: the build list is the one etcd's own
# go.mod gives. Built as etcd's release script builds them (CGO_ENABLED=0,
# -trimpath), without the Git SHA (a module carries none: `etcd --version`
# says "Not provided"). Nothing is done when both binaries are there and
# report VERSION. Needs Go (the go directive of that go.mod or newer; no
# toolchain is downloaded) and the Go module proxy for a first build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

if [ $# -ne 1 ]; then
  echo "usage: scripts/build-etcd.sh VERSION   (one of: $(ls scripts/etcd-build | sed 's/^v//' | tr '\n' ' '))" >&2
  exit 2
fi
version="${1#v}"
module="$ROOT/scripts/etcd-build/v$version"
out="$ROOT/.venv/etcd-v$version"
# Generous: a first build takes about 100 s on 2 busy cores.
LIMIT_SECONDS="${ETCD_BUILD_LIMIT_SECONDS:-1800}"

if [ ! -f "$module/go.mod" ]; then
  echo "build-etcd: no module for etcd $version (scripts/etcd-build/v$version/go.mod)" >&2
  exit 2
fi

reports() { # BINARY: the version it reports (etcd --version, etcdctl version)
  "$1" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n1
}
ctl_reports() {
  "$1" version 2>/dev/null | sed -n 's/^etcdctl version: //p' | head -n1
}
cached() {
  [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ] &&
    [ "$(reports "$out/etcd")" = "$version" ] && [ "$(ctl_reports "$out/etcdctl")" = "$version" ]
}
if cached; then
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
if ! command -v go >/dev/null 2>&1; then
  echo "build-etcd: cannot build etcd $version: no Go toolchain on PATH" >&2
  exit 1
fi
need="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$module/go.mod")"
have="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
  echo "build-etcd: cannot build etcd $version: Go $have found, its module needs Go $need or newer" >&2
  exit 1
fi

mkdir -p "$ROOT/.venv"
exec 9>"$ROOT/.venv/etcd-v$version.lock"
flock 9 # another build of the same version (a parallel setup) finishes first
if cached; then
  exit 0
fi

echo "build-etcd: building etcd and etcdctl $version with Go $have into .venv/etcd-v$version" \
  "(about 100 s on 2 cores with a cold Go build cache, less when warm)"
start=$SECONDS
staging="$(mktemp -d "$ROOT/.venv/etcd-v$version.building.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
(
  cd "$module"
  timeout "$LIMIT_SECONDS" go build -trimpath -o "$staging/etcd" go.etcd.io/etcd/server/v3
  timeout "$LIMIT_SECONDS" go build -trimpath -o "$staging/etcdctl" go.etcd.io/etcd/etcdctl/v3
)
got="$(reports "$staging/etcd")"
got_ctl="$(ctl_reports "$staging/etcdctl")"
if [ "$got" != "$version" ] || [ "$got_ctl" != "$version" ]; then
  echo "build-etcd: built etcd reports '$got' and etcdctl '$got_ctl', not $version" >&2
  exit 1
fi
rm -rf "$out"
chmod 755 "$staging"
mv "$staging" "$out"
trap - EXIT
echo "build-etcd: etcd $version ready in $((SECONDS - start)) s: $out/etcd"
