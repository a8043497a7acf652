//! The committed `include/registry.h` must equal what the pinned cbindgen
//! generates from this crate. `REGISTRY_UPDATE_HEADER=1` rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_macros());
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("generate the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let committed_path = crate_dir.join("../include/registry.h");
    if std::env::var_os("REGISTRY_UPDATE_HEADER").is_some() {
        std::fs::write(&committed_path, &fresh).expect("write include/registry.h");
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/registry.h is stale: run `make header` and commit it"
    );
}

/// The version macros, from Cargo.toml's version (cbindgen skips the Rust
/// constants of src/version.rs: it cannot evaluate them).
fn version_macros() -> String {
    let docs = [
        "Major version of this library (macro form of `registry_version()`).",
        "Minor version of this library.",
        "Patch version of this library.",
    ];
    let parts = [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ];
    docs.iter()
        .zip(parts)
        .map(|(doc, (part, number))| {
            format!("\n/**\n * {doc}\n */\n#define REGISTRY_VERSION_{part} {number}\n")
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[test]
fn every_exported_symbol_starts_with_registry() {
    let header = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/registry.h"),
    )
    .unwrap();
    let mut count = 0;
    for line in header.lines() {
        // Function prototypes: "<type> registry_name(...".
        if let Some(paren) = line.find('(') {
            if line.starts_with(' ')
                || line.starts_with('/')
                || line.starts_with('#')
                || line.starts_with("typedef")
            {
                continue;
            }
            let name = line[..paren]
                .split_whitespace()
                .last()
                .unwrap_or("")
                .trim_start_matches('*');
            assert!(
                name.starts_with("registry_"),
                "exported {name:?} lacks the registry_ prefix"
            );
            count += 1;
        }
    }
    assert!(count >= 25, "only {count} functions found in the header");
}
