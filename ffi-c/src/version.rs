//! Version, error message and status names.

use std::ffi::{c_char, c_int};

use crate::boundary;

// The version is set once, in the workspace's Cargo.toml; these follow it.
// cbindgen cannot evaluate them, so the header's macros of the same names are
// written from the same numbers by tests/header.rs (`make header`).

/// Major version of this library (macro form of `registry_version()`).
/// cbindgen:ignore
pub const REGISTRY_VERSION_MAJOR: u32 = number(env!("CARGO_PKG_VERSION_MAJOR"));
/// Minor version of this library.
/// cbindgen:ignore
pub const REGISTRY_VERSION_MINOR: u32 = number(env!("CARGO_PKG_VERSION_MINOR"));
/// Patch version of this library.
/// cbindgen:ignore
pub const REGISTRY_VERSION_PATCH: u32 = number(env!("CARGO_PKG_VERSION_PATCH"));

const fn number(digits: &str) -> u32 {
    match u32::from_str_radix(digits, 10) {
        Ok(value) => value,
        Err(_) => panic!("a version component of Cargo.toml is not a number"),
    }
}

/// The library's version, e.g. "0.2.0". Static storage: never free it.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn registry_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last failed `registry_` call on this thread ("" when
/// none failed yet). Owned by the library: valid until the next failed call
/// on this thread; copy it to keep it. Never NULL. Thread-safe (per thread).
#[no_mangle]
pub extern "C" fn registry_last_error() -> *const c_char {
    boundary::last_error_ptr()
}

/// The name of a status code, e.g. "REGISTRY_TIMEOUT"; "REGISTRY_UNKNOWN_STATUS"
/// for a number that is not one. Static storage: never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn registry_status_name(status: c_int) -> *const c_char {
    let name: &'static str = match status {
        0 => "REGISTRY_OK\0",
        1 => "REGISTRY_INVALID_ARGUMENT\0",
        2 => "REGISTRY_UNAVAILABLE\0",
        3 => "REGISTRY_TIMEOUT\0",
        4 => "REGISTRY_PERMISSION_DENIED\0",
        5 => "REGISTRY_ALREADY_REGISTERED\0",
        6 => "REGISTRY_NOT_REGISTERED\0",
        7 => "REGISTRY_CONFLICT\0",
        8 => "REGISTRY_CLOSED\0",
        9 => "REGISTRY_FORKED\0",
        10 => "REGISTRY_INSIDE_RUNTIME\0",
        11 => "REGISTRY_ETCD_ERROR\0",
        12 => "REGISTRY_PANIC\0",
        13 => "REGISTRY_NOT_FOUND\0",
        14 => "REGISTRY_TLS_ERROR\0",
        _ => "REGISTRY_UNKNOWN_STATUS\0",
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_macros_match_the_crate_version() {
        let version = format!(
            "{}.{}.{}",
            super::REGISTRY_VERSION_MAJOR,
            super::REGISTRY_VERSION_MINOR,
            super::REGISTRY_VERSION_PATCH
        );
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
    }
}
