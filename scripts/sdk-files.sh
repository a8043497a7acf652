#!/usr/bin/env bash
# Installs the C/C++ SDK's files (libraries, headers, pkg-config and CMake
# files) and the `registry` command into a tree, in one of two layouts:
#   scripts/sdk-files.sh prefix LIB_DIR DEST [BIN_DIR]   DEST/lib, DEST/include,
#                                              DEST/bin; registry.pc and the CMake
#                                              package relocatable (the tarball,
#                                              make install)
#   scripts/sdk-files.sh debian LIB_DIR DEST [BIN_DIR]   DEST/usr/lib/x86_64-linux-gnu,
#                                              DEST/usr/include, DEST/usr/bin,
#                                              prefix=/usr (the .debs)
# LIB_DIR holds libregistry.so and libregistry.a; the shared library is
# installed as libregistry.so.VERSION with the links libregistry.so.MAJOR (its
# SONAME) and libregistry.so. BIN_DIR holds the `registry` command (default:
# LIB_DIR, where cargo puts it too).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# = 3 ] || [ $# = 4 ] || { echo "usage: $0 prefix|debian LIB_DIR DEST [BIN_DIR]" >&2; exit 2; }
layout=$1 lib_src=$2 dest=$3 bin_src=${4:-$2}

version=$("$root/scripts/version.sh")
major=$("$root/scripts/version.sh" --major)
url=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' "$root/Cargo.toml")
# What libregistry.a needs besides itself: rustc's --print native-static-libs.
static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

case $layout in
  prefix)
    libdir=$dest/lib includedir=$dest/include bindir=$dest/bin
    pc_prefix='${pcfiledir}/../..' pc_libdir='${prefix}/lib' rpath='-Wl,-rpath,${libdir} '
    libdir_to_includedir=../include ;;
  debian)
    libdir=$dest/usr/lib/x86_64-linux-gnu includedir=$dest/usr/include bindir=$dest/usr/bin
    pc_prefix=/usr pc_libdir='${prefix}/lib/x86_64-linux-gnu' rpath=''
    libdir_to_includedir=../../include ;;
  *) echo "$0: unknown layout '$layout' (prefix or debian)" >&2; exit 2 ;;
esac

install -d "$libdir/pkgconfig" "$libdir/cmake/registry" "$includedir" "$bindir"
install -m 644 "$lib_src/libregistry.so" "$libdir/libregistry.so.$version"
ln -sfn "libregistry.so.$version" "$libdir/libregistry.so.$major"
ln -sfn "libregistry.so.$major" "$libdir/libregistry.so"
install -m 644 "$lib_src/libregistry.a" "$libdir/libregistry.a"
install -m 644 "$root/include/registry.h" "$root/include/registry.hpp" "$includedir/"
install -m 755 "$bin_src/registry" "$bindir/registry"

render() {
  sed -e "s|@PREFIX@|$pc_prefix|g" -e "s|@LIBDIR@|$pc_libdir|g" -e "s|@RPATH@|$rpath|g" \
      -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@URL@|$url|g" \
      -e "s|@STATIC_LIBS@|$static_libs|g" \
      -e "s|@STATIC_LIBS_CMAKE@|$(echo $static_libs | sed -e 's/-l//g' -e 's/ /;/g')|g" \
      -e "s|@LIBDIR_TO_INCLUDEDIR@|$libdir_to_includedir|g" \
      "$root/ffi-c/$1.in" > "$2/$1"
  chmod 644 "$2/$1"
}
render registry.pc "$libdir/pkgconfig"
render registry-static.pc "$libdir/pkgconfig"
render registryConfig.cmake "$libdir/cmake/registry"
render registryConfigVersion.cmake "$libdir/cmake/registry"
