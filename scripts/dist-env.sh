# The environment of the release builds, sourced by scripts/dist.sh and
# scripts/dist-check.sh (which set $root): the dist tools on PATH, zig as C
# compiler and linker for glibc 2.17 (packaging/zig-cc), and the build's paths
# mapped to short names inside the binaries. The wheel's extension, the C
# library and the sdist check are all built with exactly this (and with
# --profile dist --target x86_64-unknown-linux-gnu), so cargo compiles their
# common dependencies once.
dist_target=x86_64-unknown-linux-gnu
dist_env=(env "PATH=$root/.venv/bin:$PATH"
  "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=$root/packaging/zig-cc"
  "CC_x86_64_unknown_linux_gnu=$root/packaging/zig-cc"
  "RUSTFLAGS=--remap-path-prefix=$root=libregistry --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=cargo")
