#!/usr/bin/env bash
# make dist: every release artifact of this version, into dist/:
#   1. the Python wheel (abi3, manylinux_2_17) and 2. the sdist (maturin);
#   3. the C/C++ SDK tarball (with the `registry` command); 4. the .debs
#      libregistryMAJOR, libregistry-dev and libregistry-bin (the command);
#   5. the Rust crate (cargo package, which builds the packed crate);
#   6. SHA256SUMS.
# The wheel's extension and libregistry.so are built in one target dir with one
# linker, zig for glibc 2.17 (packaging/zig-cc), so their common dependencies
# are compiled once. Prints each artifact with its size, and the wall time.
# scripts/dist-check.sh checks what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

scripts/setup-dist.sh
scripts/version.sh --check >/dev/null
version=$(scripts/version.sh)
major=$(scripts/version.sh --major)
minor=$(echo "$version" | cut -d. -f2)
url=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' Cargo.toml)
maintainer=${DEB_MAINTAINER:-"libregistry developers <libregistry@users.noreply.github.com>"}
# Reproducible archives: file times are the last commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

source scripts/dist-env.sh
built=$root/target/$dist_target/dist
stage=$root/target/dist-stage

rm -rf dist "$stage"
mkdir -p dist "$stage"

step() { printf '== dist: %s (%ds)\n' "$1" $(($(date +%s) - started)); }

step "Python wheel (maturin, zig, glibc 2.17)"
(cd py && "${dist_env[@]}" maturin build --quiet --profile dist --target "$dist_target" \
   --compatibility manylinux2014 --strip --target-dir "$root/target" --out "$stage/wheel")
# maturin names the legacy alias first; the PEP 600 tag leads in the name pip and
# auditwheel print (the set of tags is the same, and so is the wheel).
for wheel in "$stage"/wheel/*.whl; do
  name=$(basename "$wheel")
  cp "$wheel" "dist/${name/manylinux2014_x86_64.manylinux_2_17_x86_64/manylinux_2_17_x86_64.manylinux2014_x86_64}"
done

step "Python sdist"
(cd py && "$root/.venv/bin/maturin" sdist --out "$root/dist" >/dev/null)

step "C library (cargo, zig, glibc 2.17, SONAME libregistry.so.$major) and the registry command"
"${dist_env[@]}" cargo rustc --quiet -p libregistry-ffi --lib --profile dist --target "$dist_target" \
  -- -C "link-arg=-Wl,-soname,libregistry.so.$major"
"${dist_env[@]}" cargo build --quiet -p libregistry-cli --profile dist --target "$dist_target"

step "C/C++ SDK tarball"
sdk=libregistry-$version-linux-x86_64
scripts/sdk-files.sh prefix "$built" "$stage/$sdk"
so=$stage/$sdk/lib/libregistry.so.$version
# The debug info goes beside the library; the library keeps a link to it.
objcopy --only-keep-debug --compress-debug-sections=zlib "$so" "$so.debug"
chmod 644 "$so.debug"
strip --strip-unneeded --remove-section=.comment "$so"
(cd "$(dirname "$so")" && objcopy --add-gnu-debuglink="$(basename "$so").debug" "$(basename "$so")")
strip --strip-debug --remove-section=.comment "$stage/$sdk/lib/libregistry.a"
strip --strip-all --remove-section=.comment "$stage/$sdk/bin/registry"
install -m 644 LICENSE CHANGELOG.md "$stage/$sdk/"
sed -e "s/@VERSION@/$version/g" -e "s/@MAJOR@/$major/g" -e "s/@MINOR@/$minor/g" \
  packaging/sdk-README.md > "$stage/$sdk/README.md"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$stage" -cf - "$sdk" | gzip -9n > "dist/$sdk.tar.gz"

step "Debian packages (dpkg-deb)"
runtime=libregistry$major
debs=$stage/deb
# The same stripped files as the tarball's, laid out for /usr and split in
# three: the shared library, the development files, the command.
scripts/sdk-files.sh debian "$stage/$sdk/lib" "$debs/libregistry-dev" "$stage/$sdk/bin"
multiarch=usr/lib/x86_64-linux-gnu
mkdir -p "$debs/$runtime/$multiarch" "$debs/libregistry-bin/usr"
mv "$debs/libregistry-dev/$multiarch/libregistry.so.$version" \
   "$debs/libregistry-dev/$multiarch/libregistry.so.$major" "$debs/$runtime/$multiarch/"
mv "$debs/libregistry-dev/usr/bin" "$debs/libregistry-bin/usr/"
# It needs libc6 from the highest glibc symbol version it references (2.17: it
# was linked against glibc 2.17). dpkg-shlibdeps would say 2.34 here: Debian 12's
# symbols file dates sysconf from 2.34, which concerns programs compiled against
# 2.34's headers, not this library.
libc6_for() { # the libc6 a binary needs: from its highest glibc symbol version
  local glibc
  glibc=$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  echo "libc6 (>= ${glibc#GLIBC_})"
}
runtime_depends=$(libc6_for "$debs/$runtime/$multiarch/libregistry.so.$version")
release_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")

deb() { # PACKAGE SECTION DEPENDS WHAT CONTENTS [MULTI_ARCH]
  local pkg=$1 tree=$debs/$1 doc=$debs/$1/usr/share/doc/$1
  install -d "$doc" "$tree/DEBIAN"
  sed -e "s|@MAINTAINER@|$maintainer|g" -e "s|@URL@|$url|g" packaging/debian/copyright > "$doc/copyright"
  gzip -9n < CHANGELOG.md > "$doc/changelog.gz"
  printf 'libregistry (%s) unstable; urgency=medium\n\n  * Release %s (changelog.gz has what it adds, changes and fixes).\n\n -- %s  %s\n' \
    "$version" "$version" "$maintainer" "$release_date" | gzip -9n > "$doc/changelog.Debian.gz"
  chmod 644 "$doc"/*
  sed -e "s|@PACKAGE@|$pkg|" -e "s|@SECTION@|$2|" -e "s|@DEPENDS@|$3|" -e "s|@WHAT@|$4|" \
      -e "s|@CONTENTS@|$5|" -e "s|@VERSION@|$version|" -e "s|@MAINTAINER@|$maintainer|" \
      -e "s|@URL@|$url|" -e "s|@SIZE@|$(du -sk --exclude=DEBIAN "$tree" | cut -f1)|" \
      -e "s|@MULTI_ARCH@|${6:-same}|" \
      packaging/debian/control.in > "$tree/DEBIAN/control"
  (cd "$tree" && find usr -type f -printf '%P\n' | LC_ALL=C sort | sed 's|^|usr/|' | xargs md5sum > DEBIAN/md5sums)
  chmod 644 "$tree"/DEBIAN/*
  find "$tree" -type d -exec chmod 755 {} +
  find "$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$tree" "dist/${pkg}_${version}_amd64.deb" >/dev/null
}
printf 'libregistry %s %s (>= %s)\n' "$major" "$runtime" "$version" > "$debs/$runtime.shlibs"
install -d "$debs/$runtime/DEBIAN"
install -m 644 "$debs/$runtime.shlibs" "$debs/$runtime/DEBIAN/shlibs"
echo "activate-noawait ldconfig" > "$debs/$runtime/DEBIAN/triggers"
deb "$runtime" libs "$runtime_depends" "shared library" "This package holds the shared library."
deb libregistry-dev libdevel "$runtime (= $version), libc6-dev" "development files" \
  "This package holds the C header, the C++ wrapper, the static library\\n and the pkg-config and CMake files."
# The command links the library statically: it needs only libc6. /usr/bin is
# not per architecture, so it is Multi-Arch: foreign.
deb libregistry-bin net "$(libc6_for "$debs/libregistry-bin/usr/bin/registry")" "command-line tool" \
  "This package holds the registry command: run any process registered\\n (deregistered before it is told to stop), list, watch and read\\n registrations, Prometheus service discovery." foreign

step "Rust crate (cargo package: packs core/ and builds the packed crate)"
dirty=()
if [ -n "$(git status --porcelain -- core Cargo.toml README.md LICENSE 2>/dev/null)" ]; then
  echo "dist: core/ has uncommitted changes: the crate is packed from them and marked dirty" >&2
  dirty=(--allow-dirty)
fi
cargo package --quiet -p libregistry "${dirty[@]}"
cp "target/package/libregistry-$version.crate" dist/

step "SHA256SUMS"
(cd dist && sha256sum -- *.whl *.tar.gz *.deb *.crate > SHA256SUMS)

echo "== dist: $(ls dist | wc -l) files in $root/dist, built in $(($(date +%s) - started)) s"
(cd dist && for f in *; do printf '  %8s  %s\n' "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$f")")" "$root/dist/$f"; done)
