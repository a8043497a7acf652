#!/usr/bin/env bash
# The project's version, set once in the workspace Cargo.toml ([workspace.package]).
#   scripts/version.sh          prints it (e.g. 0.2.0)
#   scripts/version.sh --major  prints the ABI major: the SONAME's number
#   scripts/version.sh --check  fails, naming the file, where a copy lags behind:
#                               py/Cargo.toml (the py crate is outside the workspace
#                               and cannot inherit it), the two lock files and the
#                               header's REGISTRY_VERSION_* macros.
#   scripts/version.sh --sync   brings them in line (`make sync-version`): after
#                               changing the version in Cargo.toml, run it and commit.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "Cargo.toml: no plain x.y.z [workspace.package] version (got '$version')" >&2; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}

# The version a lock file records for a package (the line after its name).
locked() { sed -n "/^name = \"$2\"\$/{n;s/^version = \"\(.*\)\"/\1/p}" "$1"; }

case "${1:-}" in
  "") echo "$version" ;;
  --major) echo "$major" ;;
  --check)
    stale=()
    py=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' py/Cargo.toml)
    [ "$py" = "$version" ] || stale+=("py/Cargo.toml has version $py")
    for pkg in libregistry libregistry-ffi; do
      [ "$(locked Cargo.lock $pkg)" = "$version" ] || stale+=("Cargo.lock has $pkg $(locked Cargo.lock $pkg)")
    done
    for pkg in libregistry libregistry-py; do
      [ "$(locked py/Cargo.lock $pkg)" = "$version" ] || stale+=("py/Cargo.lock has $pkg $(locked py/Cargo.lock $pkg)")
    done
    for part in MAJOR:$major MINOR:$minor PATCH:$patch; do
      grep -qx "#define REGISTRY_VERSION_${part%%:*} ${part#*:}" include/registry.h ||
        stale+=("include/registry.h has no '#define REGISTRY_VERSION_${part%%:*} ${part#*:}'")
    done
    if [ ${#stale[@]} -gt 0 ]; then
      printf 'version %s (Cargo.toml) is not followed everywhere:\n' "$version" >&2
      printf '  - %s\n' "${stale[@]}" >&2
      echo "run \`make sync-version\` and commit the result" >&2
      exit 1
    fi
    echo "version $version: py/Cargo.toml, the lock files and registry.h follow Cargo.toml"
    ;;
  --sync)
    sed -i '/^\[package\]/,/^\[/s/^version = ".*"/version = "'"$version"'"/' py/Cargo.toml
    # Any cargo command records the path packages' new version in the lock files.
    cargo metadata -q --offline --format-version 1 >/dev/null
    cargo metadata -q --offline --format-version 1 --manifest-path py/Cargo.toml >/dev/null
    REGISTRY_UPDATE_HEADER=1 cargo test -q -p libregistry-ffi --test header >/dev/null
    "$0" --check
    ;;
  *) echo "usage: $0 [--major|--check|--sync]" >&2; exit 2 ;;
esac
