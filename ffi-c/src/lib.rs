//! The C ABI of libregistry. Every exported symbol starts with `registry_`;
//! `include/registry.h` is generated from this crate by cbindgen.
//!
//! Conventions (rustls-ffi's): opaque handles with `_new` / `_free`
//! (`_free(NULL)` does nothing); one `registry_status` for every fallible
//! call; results through `*_out` parameters written only on success; input
//! strings borrowed for the call only; every body behind one panic boundary.

#![allow(non_camel_case_types)]

mod boundary;
mod client;
mod discovery;
mod events;
mod metrics;
mod options;
mod registration;
mod service;
mod status;
mod version;

pub use client::*;
pub use discovery::*;
pub use events::*;
pub use metrics::*;
pub use options::*;
pub use registration::*;
pub use service::*;
pub use status::registry_status;
pub use version::*;
