//! The C ABI a major version promises (docs/COMPATIBILITY.md). `abi.txt`
//! beside this file lists, for the SONAME's major version, what
//! `include/registry.h` declares: every function with its prototype, every
//! callback type, every enum constant with its number, every field of the
//! public structs in order, every opaque handle type. Removing or changing
//! one of them fails this test, naming it, while the major version stays the
//! same; anything new passes with a notice. `make abi`
//! (`REGISTRY_UPDATE_ABI=1`) adds the new entries to the list; it refuses to
//! drop or change one unless the major version changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Entry name (`fn registry_register`, `const REGISTRY_OK`,
/// `field registry_event.0`, ...) to its declaration, whitespace collapsed.
type Entries = BTreeMap<String, String>;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn list_path() -> PathBuf {
    crate_dir().join("tests/abi.txt")
}

/// The SONAME's number: the major version (0 for every 0.x release).
fn abi_major() -> u32 {
    env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap()
}

#[test]
fn no_exported_symbol_of_this_major_version_was_removed_or_changed() {
    let header = std::fs::read_to_string(crate_dir().join("../include/registry.h"))
        .expect("read include/registry.h");
    let now = declarations(&header);
    assert!(
        now.keys().filter(|k| k.starts_with("fn ")).count() >= 25,
        "too few functions read from registry.h: {now:#?}"
    );
    let text = std::fs::read_to_string(list_path()).unwrap_or_default();
    let (major, promised) = parse_list(&text);
    let update = std::env::var_os("REGISTRY_UPDATE_ABI").is_some();

    if major != Some(abi_major()) {
        // A new major version starts a new promise: the list is written anew.
        assert!(
            update,
            "ffi-c/tests/abi.txt is the ABI of major version {major:?}, this is {}: \
             run `make abi` to write the list of the new major version",
            abi_major()
        );
        write_list(&now);
        return;
    }

    let mut broken = Vec::new();
    for (name, was) in &promised {
        match now.get(name) {
            None => broken.push(format!(
                "{name} was removed from registry.h (promised: `{was}`)"
            )),
            Some(is) if canonical(is) != canonical(was) => {
                broken.push(format!("{name} changed: was `{was}`, is `{is}`"))
            }
            Some(_) => {}
        }
    }
    let added: Vec<&String> = now.keys().filter(|k| !promised.contains_key(*k)).collect();
    for name in &added {
        println!("ABI notice: {name} is new (not in ffi-c/tests/abi.txt yet; `make abi` adds it)");
    }
    assert!(
        broken.is_empty(),
        "the C ABI of libregistry.so.{} is broken ({} of {} promised entries):\n  {}\n\
         Restore them, or make the change in a new major version (docs/COMPATIBILITY.md).",
        abi_major(),
        broken.len(),
        promised.len(),
        broken.join("\n  ")
    );
    if update && !added.is_empty() {
        write_list(&now);
    }
}

fn parse_list(text: &str) -> (Option<u32>, Entries) {
    let mut major = None;
    let mut entries = Entries::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(number) = line.strip_prefix("major ") {
            major = number.trim().parse().ok();
        } else if let Some((name, decl)) = line.split_once(": ") {
            entries.insert(name.to_string(), decl.to_string());
        } else {
            panic!("ffi-c/tests/abi.txt: cannot read line {line:?}");
        }
    }
    (major, entries)
}

fn write_list(entries: &Entries) {
    let mut text = format!(
        "# The C ABI of libregistry.so.{major}, read from include/registry.h by\n\
         # ffi-c/tests/abi.rs. Removing or changing an entry fails `make test` until the\n\
         # major version changes; `make abi` adds new entries. Parameter names do not count.\n\
         major {major}\n",
        major = abi_major()
    );
    for (name, decl) in entries {
        text.push_str(&format!("{name}: {decl}\n"));
    }
    std::fs::write(list_path(), text).expect("write ffi-c/tests/abi.txt");
}

/// Every declaration of the header, by entry name.
fn declarations(header: &str) -> Entries {
    let mut entries = Entries::new();
    for decl in statements(header) {
        if let Some(rest) = decl.strip_prefix("typedef enum ") {
            let (name, body) = braced(rest);
            for constant in body.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let id = constant.split('=').next().unwrap().trim();
                entries.insert(format!("const {id}"), format!("enum {name} {constant}"));
            }
        } else if let Some(rest) = decl.strip_prefix("typedef struct ") {
            if rest.contains('{') {
                let (name, body) = braced(rest);
                let fields = body.split(';').map(str::trim).filter(|f| !f.is_empty());
                for (index, field) in fields.enumerate() {
                    entries.insert(format!("field {name}.{index}"), field.to_string());
                }
            } else {
                let name = rest.split_whitespace().last().unwrap();
                entries.insert(format!("type {name}"), format!("{decl};"));
            }
        } else if decl.starts_with("typedef ") {
            let name = between(&decl, "(*", ")");
            entries.insert(format!("callback {name}"), format!("{decl};"));
        } else {
            let head = decl.split('(').next().unwrap();
            let name = head.rsplit([' ', '*']).next().unwrap();
            entries.insert(format!("fn {name}"), format!("{decl};"));
        }
    }
    entries
}

/// The header's top-level declarations, comments and preprocessor lines
/// (with the `extern "C"` block they guard) left out, whitespace collapsed.
fn statements(header: &str) -> Vec<String> {
    let mut code = String::new();
    let mut in_comment = false;
    let mut cplusplus_guard = false;
    for line in header.lines() {
        let trimmed = line.trim();
        if in_comment {
            in_comment = !trimmed.ends_with("*/");
            continue;
        }
        if trimmed.starts_with("/*") {
            in_comment = !trimmed.ends_with("*/");
            continue;
        }
        if trimmed.starts_with("#ifdef __cplusplus") {
            cplusplus_guard = true;
            continue;
        }
        if cplusplus_guard {
            cplusplus_guard = !trimmed.starts_with("#endif");
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        code.push_str(trimmed);
        code.push(' ');
    }
    let mut out = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for c in code.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    assert!(
        current.trim().is_empty(),
        "registry.h ends inside a declaration: {current:?}"
    );
    out
}

/// `name { body } alias` to (name, body).
fn braced(text: &str) -> (&str, &str) {
    let name = text.split_whitespace().next().unwrap();
    (name, between(text, "{", "}"))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap() + open.len();
    let end = start + text[start..].find(close).unwrap();
    &text[start..end]
}

/// A declaration without its parameter names, which are no part of the ABI:
/// `int f(const char *name, size_t n)` becomes `int f(const char *, size_t)`.
fn canonical(decl: &str) -> String {
    let Some(open) = decl.rfind('(') else {
        return decl.to_string();
    };
    let close = open + decl[open..].find(')').unwrap();
    let params: Vec<String> = decl[open + 1..close]
        .split(',')
        .map(|p| {
            let p = p.trim();
            let name_at = p.rfind([' ', '*']).map_or(0, |i| i + 1);
            let is_named = name_at > 0
                && p[name_at..]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_');
            if is_named { p[..name_at].trim_end() } else { p }.to_string()
        })
        .collect();
    format!(
        "{}({}){}",
        &decl[..open],
        params.join(", "),
        &decl[close + 1..]
    )
}

#[test]
fn canonical_drops_parameter_names_only() {
    assert_eq!(
        canonical("enum registry_status registry_update(const struct registry_registration *registration, const char *const *keys, size_t count);"),
        "enum registry_status registry_update(const struct registry_registration *, const char *const *, size_t);"
    );
    assert_eq!(
        canonical("const char *registry_version(void);"),
        "const char *registry_version(void);"
    );
    assert_eq!(
        canonical("typedef void (*registry_event_callback)(void *userdata, const struct registry_event *event);"),
        "typedef void (*registry_event_callback)(void *, const struct registry_event *);"
    );
    assert_ne!(canonical("int f(int a);"), canonical("int f(long a);"));
}
