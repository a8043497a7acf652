//! Links libregistry.so with a version script that exports the `registry_*`
//! functions and nothing else, in every build: no symbol of a dependency can
//! become part of the ABI by accident. (The SONAME is the release build's
//! business: `make dist` passes `-soname libregistry.so.MAJOR` when it links
//! the library it ships; a development build keeps none, so the tests can
//! link `target/debug/libregistry.so` by its plain name.)

use std::path::PathBuf;

const VERSION_SCRIPT: &str = "{\n  global:\n    registry_*;\n  local:\n    *;\n};\n";

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out_dir.join("libregistry.map");
    std::fs::write(&script, VERSION_SCRIPT).expect("write the version script");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
