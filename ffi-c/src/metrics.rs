//! A client's metrics: the Prometheus text (allocated, freed by
//! `registry_string_free`) and single samples by name.

use std::ffi::{c_char, CString};

use crate::boundary::{guard, guard_void, required_out, required_ref, required_str, Failure};
use crate::client::registry_client;
use crate::status::registry_status;

/// Writes the client's metrics in Prometheus's text format (registrations,
/// lease grants, leases lost by reason, keys restored, heal attempts and
/// failures, keepalive round trips, requests by kind and outcome, watch
/// restarts, watchers, outage seconds: the names Rust and Python use) to
/// `*text_out`, a new NUL-terminated string the caller frees with
/// `registry_string_free`. Thread-safe; works after close (the final counts).
///
/// # Safety
/// `client` a live `registry_client`; `text_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_client_metrics_text(
    client: *const registry_client,
    text_out: *mut *mut c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        required_out(text_out, "text_out")?;
        // The text is ASCII names and numbers: no interior NUL.
        let text = CString::new(client.inner.metrics_text()).unwrap_or_default();
        // SAFETY: checked non-NULL above.
        unsafe { *text_out = text.into_raw() };
        Ok(())
    })
}

/// Writes the value of one metric sample to `*value_out`, the sample named
/// as the text writes it, e.g. "libregistry_registrations" or
/// "libregistry_leases_lost_total{reason=\"expired\"}". REGISTRY_NOT_FOUND
/// when the client has no such sample. Thread-safe.
///
/// # Safety
/// `client` a live `registry_client`; `sample` a NUL-terminated string;
/// `value_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_client_metric(
    client: *const registry_client,
    sample: *const c_char,
    value_out: *mut f64,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        // SAFETY: per the contract above.
        let sample = unsafe { required_str(sample, "sample") }?;
        required_out(value_out, "value_out")?;
        let value = client.inner.metrics().get(sample).ok_or_else(|| Failure {
            status: registry_status::REGISTRY_NOT_FOUND,
            message: format!("no metric sample named {sample:?}"),
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { *value_out = value };
        Ok(())
    })
}

/// Frees a string the library allocated for the caller
/// (`registry_client_metrics_text`). NULL does nothing.
///
/// # Safety
/// `text` NULL or a string from this library not yet freed, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_string_free(text: *mut c_char) {
    guard_void(|| {
        if !text.is_null() {
            // SAFETY: per the contract above: it came from `CString::into_raw`.
            drop(unsafe { CString::from_raw(text) });
        }
    });
}
