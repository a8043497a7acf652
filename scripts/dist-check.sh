#!/usr/bin/env bash
# make dist-check: checks what `make dist` wrote into dist/, each artifact
# installed the way a user installs it, in a temp dir outside the repository:
#   wheel    auditwheel says manylinux_2_17; at most 5 MB; carries py.typed, the
#            stubs, the license, the README, classifiers and URLs; `pip install`
#            into a fresh virtualenv under `env -i` with no cargo, rustc or protoc
#            on PATH takes under 10 s, and the whole Python test suite passes
#            against that install (not the source tree)
#   sdist    pip builds a wheel from it (with Rust and protoc, as its README says)
#   tarball  SONAME libregistry.so.MAJOR, exports exactly registry.h's functions,
#            no GLIBC symbol above 2.17, stripped with its .debug beside it; the C
#            example (pkg-config: shared, and static through registry-static) and
#            the C++ one (CMake find_package: shared and static) built against the
#            unpacked tarball register and deregister on a real etcd; bin/registry
#            runs and needs no glibc above 2.17
#   .debs    lintian; dpkg -i, the same programs through the system's pkg-config
#            and CMake, /usr/bin/registry runs, then dpkg -r leaves none of their
#            files (root only)
#   crate    packed with its license and README; cargo doc without warnings
#   SHA256SUMS matches every artifact
# Ends with a line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

version=$(scripts/version.sh)
major=$(scripts/version.sh --major)
ETCD_BIN=$(realpath "${ETCD_BIN:-$(scripts/etcd-path.sh)}")
export ETCD_BIN
source tests/dist/etcd.sh
source scripts/dist-env.sh

work=$(mktemp -d /tmp/libregistry-dist-check.XXXXXX)
installed_debs=0
cleanup() {
  etcd_stop
  if [ $installed_debs = 1 ]; then dpkg -r libregistry-bin libregistry-dev "libregistry$major" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "  ok: $*"; }
bad() { failed=$((failed + 1)); echo "  FAILED: $*"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
section() { printf '== dist-check: %s (%ds)\n' "$1" $(($(date +%s) - started)); }

wheel=$(ls dist/libregistry-"$version"-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl)
sdist=dist/libregistry-$version.tar.gz
sdk=libregistry-$version-linux-x86_64
runtime_deb=dist/libregistry${major}_${version}_amd64.deb
dev_deb=dist/libregistry-dev_${version}_amd64.deb
bin_deb=dist/libregistry-bin_${version}_amd64.deb
crate=dist/libregistry-$version.crate

section "artifacts and SHA256SUMS"
for f in "$wheel" "$sdist" "dist/$sdk.tar.gz" "$runtime_deb" "$dev_deb" "$bin_deb" "$crate" dist/SHA256SUMS; do
  check "$f is there ($(numfmt --to=iec-i --suffix=B "$(stat -c %s "$f" 2>/dev/null || echo 0)"))" "[ -s '$f' ]"
done
check "SHA256SUMS lists the seven artifacts and matches them" \
  "[ \$(wc -l < dist/SHA256SUMS) = 7 ] && (cd dist && sha256sum --quiet -c SHA256SUMS)"

# --- the wheel -------------------------------------------------------------
section "wheel: tag, size, contents"
audit=$(.venv/bin/auditwheel show "$wheel" 2>&1)
echo "$audit" | sed -n '/consistent with/,/^$/p' | sed 's/^/    /'
check "auditwheel: consistent with manylinux_2_17_x86_64" "grep -q '\"manylinux_2_17_x86_64\"' <<<\"\$audit\""
wheel_bytes=$(stat -c %s "$wheel")
check "wheel is at most 5 MB ($wheel_bytes bytes)" "[ $wheel_bytes -le $((5 * 1024 * 1024)) ]"
contents=$(.venv/bin/python - "$wheel" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = z.namelist()
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = z.read(meta).decode()
    print("\n".join(names))
    for field in ("License-Expression: Apache-2.0", "Classifier: Typing :: Typed", "Project-URL: Source",
                  "Requires-Python: >=3.9", "Description-Content-Type: text/markdown", "# libregistry (Python)",
                  "Provides-Extra: prometheus"):
        print("METADATA has", field) if field in text else None
EOF
)
for want in libregistry/py.typed libregistry/_native.pyi libregistry/_native.abi3.so \
            "dist-info/licenses/LICENSE" "METADATA has License-Expression: Apache-2.0" \
            "METADATA has Classifier: Typing :: Typed" "METADATA has Project-URL: Source" \
            "METADATA has Requires-Python: >=3.9" "METADATA has Description-Content-Type: text/markdown" \
            "METADATA has # libregistry (Python)" libregistry/prometheus.py \
            "METADATA has Provides-Extra: prometheus"; do
  check "wheel: $want" "grep -qF -- '$want' <<<\"\$contents\""
done

section "wheel: pip install into a fresh virtualenv, no cargo, rustc or protoc on PATH"
# PATH: /usr/bin without protoc (/bin is /usr/bin here); cargo and rustc live elsewhere.
mkdir -p "$work/bin" "$work/home"
for tool in /usr/bin/*; do
  case $(basename "$tool") in protoc*|cargo*|rustc*|rustup) ;; *) ln -s "$tool" "$work/bin/" ;; esac
done
clean=(env -i "PATH=$work/bin" "HOME=$work/home" LANG=C.UTF-8 "ETCD_BIN=$ETCD_BIN")
check "no cargo, rustc or protoc on the clean PATH" \
  "! \"\${clean[@]}\" sh -c 'command -v cargo || command -v rustc || command -v protoc'"
"${clean[@]}" python3 -m venv "$work/venv"
t0=$(date +%s.%N)
"${clean[@]}" "$work/venv/bin/python" -m pip install -q --no-index --disable-pip-version-check "$root/$wheel"
install_secs=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }')
check "pip install of the wheel took $install_secs s (under 10 s)" "awk 'BEGIN { exit !($install_secs < 10) }'"
from=$(cd "$work" && "${clean[@]}" "$work/venv/bin/python" -c 'import libregistry; print(libregistry.__version__, libregistry.__file__)')
echo "    import libregistry: $from"
check "the venv imports libregistry $version from its own site-packages" \
  "[[ '$from' == '$version $work/venv/lib/'*'/site-packages/libregistry/__init__.py' ]]"

section "wheel: the Python test suite against the installed wheel"
# prometheus_client through the wheel's extra, as a user asks for it.
"${clean[@]}" "$work/venv/bin/python" -m pip install -q --disable-pip-version-check "pytest>=7,<10" \
  "libregistry[prometheus] @ file://$root/$wheel"
# The tests, the examples they run and the README whose texts they check,
# without the package's source.
mkdir -p "$work/tree/tests" "$work/tree/examples"
cp -r tests/python "$work/tree/tests/" && cp -r examples/python "$work/tree/examples/"
cp README.md "$work/tree/"
python_suite() {
  local status=0
  (cd "$work/tree" && "${clean[@]}" "$work/venv/bin/python" -m pytest tests/python -q -p no:cacheprovider \
     >"$work/pytest.log" 2>&1) || status=$?
  # The summary when it passes; the failures too when it does not.
  tail -n "$([ $status = 0 ] && echo 1 || echo 80)" "$work/pytest.log" | sed 's/^/    /'
  return $status
}
check "Python test suite passes against the installed wheel" python_suite

section "sdist: pip builds a wheel from it"
# Built like make dist builds (same profile, target and linker) so the compiled
# dependencies are reused; what is checked is that the sdist holds all it needs.
check "pip wheel $sdist" "\"\${dist_env[@]}\" CARGO_TARGET_DIR='$root/target' \
  MATURIN_PEP517_ARGS='--profile dist --target $dist_target --compatibility manylinux2014' \
  .venv/bin/pip wheel -q --no-deps --no-build-isolation --disable-pip-version-check -w '$work/sdist-wheel' '$sdist' \
  && ls '$work'/sdist-wheel/libregistry-$version-*.whl >/dev/null"

# --- the C/C++ SDK tarball -------------------------------------------------
section "tarball: the library"
tar xzf "dist/$sdk.tar.gz" -C "$work"
prefix=$work/$sdk
lib=$prefix/lib/libregistry.so.$version
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
check "SONAME is libregistry.so.$major ($soname)" "[ '$soname' = libregistry.so.$major ]"
check "links: libregistry.so -> libregistry.so.$major -> libregistry.so.$version" \
  "[ \$(readlink '$prefix/lib/libregistry.so') = libregistry.so.$major ] && [ \$(readlink '$prefix/lib/libregistry.so.$major') = libregistry.so.$version ]"
glibc=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
check "highest glibc symbol version is $glibc (at most GLIBC_2.17)" \
  "[ \$(printf '%s\n' GLIBC_2.17 '$glibc' | sort -V | tail -n 1) = GLIBC_2.17 ]"
nm -D --defined-only "$lib" | awk '{print $3}' | sort > "$work/exported"
grep -v '^typedef' "$prefix/include/registry.h" | grep -oE '^[a-z].*[ *]registry_[a-z0-9_]+\(' |
  grep -oE 'registry_[a-z0-9_]+\($' | tr -d '(' | sort > "$work/declared"
check "exports exactly the $(wc -l < "$work/declared") functions of registry.h" \
  "diff '$work/declared' '$work/exported' >/dev/null || { diff '$work/declared' '$work/exported' | sed 's/^/    /'; false; }"
check "the library has no debug sections; its .debug file has them and is linked" \
  "! readelf -S '$lib' | grep '\.debug_' >/dev/null && readelf -S '$lib.debug' | grep '\.debug_line' >/dev/null \
   && readelf --string-dump=.gnu_debuglink '$lib' | grep 'libregistry.so.$version.debug' >/dev/null"
check "libregistry.a has no debug sections" "! readelf -S '$prefix/lib/libregistry.a' 2>/dev/null | grep '\.debug_' >/dev/null"
check "registry.pc is relocatable (prefix=\${pcfiledir}/../..)" "grep -qx 'prefix=\${pcfiledir}/../..' '$prefix/lib/pkgconfig/registry.pc'"
check "no file of the tarball names the repository ($root)" "! grep -rqF '$root' '$prefix/lib/pkgconfig' '$prefix/lib/cmake' '$prefix/include'"
glibc=$(objdump -T "$prefix/bin/registry" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
check "bin/registry --version says registry $version; its highest glibc symbol version is $glibc" \
  "[ \"\$('$prefix/bin/registry' --version)\" = 'registry $version' ] \
   && [ \$(printf '%s\n' GLIBC_2.17 '$glibc' | sort -V | tail -n 1) = GLIBC_2.17 ]"

# Runs an example provider against our etcd: it must register the seed's key
# with this version's value, and deregister on SIGTERM leaving nothing behind.
runs_against_etcd() { # EXE
  local exe=$1 out=$1.out pid value
  REGISTRY_ENDPOINTS=$ETCD_ENDPOINT "$exe" >"$out" 2>&1 &
  pid=$!
  if ! waits_for_line "$out" "registered /micro/127.0.0.1:4000"; then
    kill "$pid"; wait "$pid"; sed 's/^/    /' "$out"; return 1
  fi
  value=$(etcd_ctl get --print-value-only /micro/127.0.0.1:4000)
  if [[ $value != '{"Addr":"127.0.0.1:4000","ServerName":"micro",'*'"frameVersion":"'$version'"'* ]]; then
    echo "    etcd holds: $value"; kill "$pid"; wait "$pid"; return 1
  fi
  kill -TERM "$pid"
  wait "$pid" || { echo "    $exe exited with an error:"; sed 's/^/    /' "$out"; return 1; }
  grep -qx deregistered "$out" || { sed 's/^/    /' "$out"; return 1; }
  [ -z "$(etcd_ctl get --prefix /micro/ --keys-only)" ] || { echo "    keys left under /micro/"; return 1; }
}

waits_for_line() { # FILE LINE: up to 20 s
  local deadline=$((SECONDS + 20))
  until grep -qxF "$2" "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# Is LIB what the dynamic loader picks for EXE's libregistry.so.MAJOR?
loads() { # EXE LIB
  local resolved
  resolved=$(ldd "$1" | awk -v so="libregistry.so.$major" '$1 == so {print $3}')
  [ -n "$resolved" ] && [ "$(realpath "$resolved")" = "$(realpath "$2")" ]
}

# Builds the C example through pkg-config (shared, static) and the C++ one
# through CMake (shared, static) in DIR, outside the repository, and runs them.
build_and_run_examples() { # WHERE DIR PKG_CONFIG_PATH CMAKE_PREFIX_PATH LIB_DIR
  local where=$1 dir=$2 pc_path=$3 cmake_prefix=$4 lib_dir=$5
  mkdir -p "$dir"
  cp examples/c/provider.c examples/cpp/provider.cpp tests/dist/CMakeLists.txt "$dir/"
  local pc=(env "PKG_CONFIG_PATH=$pc_path" pkg-config)
  check "$where: C, pkg-config registry: builds (-std=c99 -Wall -Wextra -Werror)" \
    "cc -std=c99 -Wall -Wextra -Werror -o '$dir/provider_c' '$dir/provider.c' \$(\"\${pc[@]}\" --cflags --libs registry)"
  check "$where: C, shared: the loader picks $lib_dir/libregistry.so.$major" \
    "loads '$dir/provider_c' '$lib_dir/libregistry.so.$major'"
  check "$where: C, shared: registers and deregisters on etcd" "runs_against_etcd '$dir/provider_c'"
  check "$where: pkg-config --static --libs registry adds Libs.private" \
    "\"\${pc[@]}\" --static --libs registry | grep -- '-lregistry -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc' >/dev/null"
  check "$where: C, pkg-config registry-static: builds" \
    "cc -std=c99 -Wall -Wextra -Werror -o '$dir/provider_c_static' '$dir/provider.c' \$(\"\${pc[@]}\" --cflags --libs registry-static)"
  check "$where: C, static: ldd shows no libregistry" "! ldd '$dir/provider_c_static' | grep libregistry >/dev/null"
  check "$where: C, static: registers and deregisters on etcd" "runs_against_etcd '$dir/provider_c_static'"
  check "$where: C++, CMake find_package(registry $version EXACT): configures and builds" \
    "cmake -S '$dir' -B '$dir/build' -DEXPECTED_VERSION=$version ${cmake_prefix:+-DCMAKE_PREFIX_PATH=$cmake_prefix} >'$dir/cmake.log' 2>&1 \
     && cmake --build '$dir/build' >>'$dir/cmake.log' 2>&1 || { tail -n 20 '$dir/cmake.log' | sed 's/^/    /'; false; }"
  check "$where: C++, registry::registry: registers and deregisters on etcd" "runs_against_etcd '$dir/build/provider_cpp'"
  check "$where: C++, registry::registry_static: no libregistry at run time; registers and deregisters" \
    "! ldd '$dir/build/provider_cpp_static' | grep libregistry >/dev/null && runs_against_etcd '$dir/build/provider_cpp_static'"
  check "$where: the builds name no path into the repository" \
    "! grep -rqF '$root' '$dir/build/CMakeCache.txt' && ! \"\${pc[@]}\" --cflags --libs registry registry-static | grep -F '$root' >/dev/null"
}

etcd_start "$work/etcd"
echo "    etcd $("$ETCD_BIN" --version | head -n 1 | cut -d' ' -f3) on $ETCD_ENDPOINT (pid $ETCD_PID)"
section "tarball: C and C++ programs built against the unpacked tarball"
build_and_run_examples tarball "$work/tarball-build" "$prefix/lib/pkgconfig" "$prefix" "$prefix/lib"

# --- the Debian packages ---------------------------------------------------
section "debs: lintian"
for deb in "$runtime_deb" "$dev_deb" "$bin_deb"; do
  tags=$(lintian --display-info --fail-on error "$deb" 2>&1) && status=0 || status=$?
  tags=$(grep -v 'running with root privileges' <<<"$tags" || true)
  [ -z "$tags" ] || sed 's/^/    /' <<<"$tags"
  check "lintian: no error in $(basename "$deb")" "[ $status = 0 ]"
done
check "libregistry$major: Depends $(dpkg-deb -f "$runtime_deb" Depends), Section libs" \
  "[ \"\$(dpkg-deb -f '$runtime_deb' Section)\" = libs ] && dpkg-deb -f '$runtime_deb' Depends | grep '^libc6 (>= 2\.' >/dev/null"
check "libregistry-dev: Depends on libregistry$major (= $version), Section libdevel" \
  "[ \"\$(dpkg-deb -f '$dev_deb' Section)\" = libdevel ] && dpkg-deb -f '$dev_deb' Depends | grep -F 'libregistry$major (= $version)' >/dev/null"
check "libregistry-bin: Depends $(dpkg-deb -f "$bin_deb" Depends), Section net, holds /usr/bin/registry" \
  "[ \"\$(dpkg-deb -f '$bin_deb' Section)\" = net ] && dpkg-deb -f '$bin_deb' Depends | grep '^libc6 (>= 2\.' >/dev/null \
   && dpkg-deb -c '$bin_deb' | grep ' \./usr/bin/registry\$' >/dev/null"

section "debs: dpkg -i, build, run, dpkg -r"
if [ "$(id -u)" != 0 ]; then
  echo "  SKIPPED: installing the .debs needs root"
elif dpkg -s "libregistry$major" >/dev/null 2>&1 || dpkg -s libregistry-dev >/dev/null 2>&1 \
     || dpkg -s libregistry-bin >/dev/null 2>&1; then
  echo "  SKIPPED: libregistry$major, libregistry-dev or libregistry-bin is installed on this machine already (not ours to replace)"
else
  # Every path the packages bring that the machine did not have before.
  for deb in "$runtime_deb" "$dev_deb" "$bin_deb"; do dpkg-deb -c "$deb"; done | awk '{print $6}' | sed 's|^\./|/|; s|/$||' |
    sort -u | while read -r path; do [ -e "$path" ] || [ -L "$path" ] || echo "$path"; done > "$work/deb-new-paths"
  installed_debs=1
  check "dpkg -i the three packages" "dpkg -i '$runtime_deb' '$dev_deb' '$bin_deb' >/dev/null"
  build_and_run_examples debs "$work/deb-build" "" "" /usr/lib/x86_64-linux-gnu
  check "/usr/bin/registry --version says registry $version" "[ \"\$(/usr/bin/registry --version)\" = 'registry $version' ]"
  check "dpkg -r the three packages" "dpkg -r libregistry-bin libregistry-dev 'libregistry$major' >/dev/null"
  installed_debs=0
  left=$(while read -r path; do [ -e "$path" ] || [ -L "$path" ] && echo "$path"; done < "$work/deb-new-paths" || true)
  check "dpkg -r left none of the $(wc -l < "$work/deb-new-paths") paths the packages brought" \
    "[ -z '$left' ] || { echo '$left' | sed 's/^/    left: /'; false; }"
fi
etcd_stop

# --- the Rust crate --------------------------------------------------------
section "crate"
listing=$(tar tzf "$crate")
for want in Cargo.toml LICENSE README.md src/lib.rs; do
  check "crate has $want" "grep -qx 'libregistry-$version/$want' <<<\"\$listing\""
done
check "cargo doc -p libregistry without warnings" \
  "(RUSTDOCFLAGS='-D warnings' cargo doc -q -p libregistry --no-deps 2>&1 | sed 's/^/    /'; exit \${PIPESTATUS[0]})"

echo "== dist-check: done in $(($(date +%s) - started)) s"
echo "dist-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
