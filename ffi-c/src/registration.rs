//! `registry_registration`: one registered service.

use std::ffi::{c_char, CString};

use libregistry::blocking;

use crate::boundary::{
    from_handle, guard, guard_void, into_handle, required_ref, required_str, Failure,
};
use crate::status::registry_status;

/// A registered service (opaque). Thread-safe, but `registry_deregister`
/// and `registry_registration_free` must not race with other calls on it.
pub struct registry_registration {
    inner: blocking::Registration,
    key: CString,
}

impl registry_registration {
    pub(crate) fn new_handle(inner: blocking::Registration) -> *mut Self {
        let key = CString::new(inner.key()).unwrap_or_default();
        into_handle(registry_registration { inner, key })
    }
}

/// The etcd key, e.g. "/micro/127.0.0.1:4000". Owned by the registration:
/// valid until it is freed or deregistered. NULL when `registration` is NULL.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`.
#[no_mangle]
pub unsafe extern "C" fn registry_registration_key(
    registration: *const registry_registration,
) -> *const c_char {
    // SAFETY: per the contract above.
    match unsafe { registration.as_ref() } {
        Some(r) => r.key.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Changes `count` metadata entries (`keys[i]` = `values[i]`, as
/// `registry_service_set`; all copied) and rewrites the value in etcd in
/// place: the key never disappears meanwhile. Set "weight" to "0" to drain.
/// Returns once etcd confirmed, or fails within the request timeout (then
/// the new value is written once etcd is back, unless it was invalid).
///
/// # Safety
/// `registration` live; `keys` and `values` each hold `count` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn registry_update(
    registration: *const registry_registration,
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let registration = unsafe { required_ref(registration, "registration") }?;
        if count > 0 && (keys.is_null() || values.is_null()) {
            return Err(Failure::invalid(if keys.is_null() {
                "keys is NULL"
            } else {
                "values is NULL"
            }));
        }
        let mut changes = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: both arrays hold `count` pointers per the contract.
            let key = unsafe { required_str(*keys.add(i), &format!("keys[{i}]")) }?;
            let value = unsafe { required_str(*values.add(i), &format!("values[{i}]")) }?;
            changes.push((key, value));
        }
        registration.inner.update(changes)?;
        Ok(())
    })
}

/// Takes the key out of etcd but keeps the registration (drain before a
/// stop, or while the service cannot serve): consumers stop seeing it, and
/// neither healing nor a health check writes it back until
/// `registry_registration_restore`. Returns once etcd confirmed, or fails
/// within the request timeout (then healing deletes it). Again: no-op.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`.
#[no_mangle]
pub unsafe extern "C" fn registry_registration_withdraw(
    registration: *const registry_registration,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let registration = unsafe { required_ref(registration, "registration") }?;
        registration.inner.withdraw()?;
        Ok(())
    })
}

/// Writes a withdrawn registration back (with any `registry_update` made
/// meanwhile). Returns once etcd confirmed, or fails within the request
/// timeout (then healing writes it). Not withdrawn: no-op.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`.
#[no_mangle]
pub unsafe extern "C" fn registry_registration_restore(
    registration: *const registry_registration,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let registration = unsafe { required_ref(registration, "registration") }?;
        registration.inner.restore()?;
        Ok(())
    })
}

/// Whether the registration is withdrawn (by `registry_registration_withdraw`
/// or its failing health check). False when `registration` is NULL.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`.
#[no_mangle]
pub unsafe extern "C" fn registry_registration_is_withdrawn(
    registration: *const registry_registration,
) -> bool {
    // SAFETY: per the contract above.
    unsafe { registration.as_ref() }.is_some_and(|r| r.inner.is_withdrawn())
}

/// Deletes the key now (one request, confirmed by etcd or failed within the
/// request timeout) and frees the handle, whatever the result. After the
/// client was freed: REGISTRY_CLOSED (its lease already removed the key).
/// NULL: REGISTRY_INVALID_ARGUMENT.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_deregister(
    registration: *mut registry_registration,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let registration = unsafe { from_handle(registration) }
            .ok_or_else(|| Failure::invalid("registration is NULL"))?;
        registration.inner.deregister()?;
        Ok(())
    })
}

/// Frees the handle without deregistering: the key stays in etcd until the
/// client is freed (or its process dies). NULL does nothing.
///
/// # Safety
/// `registration` NULL or a live `registry_registration`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_registration_free(registration: *mut registry_registration) {
    // SAFETY: per the contract above.
    guard_void(|| drop(unsafe { from_handle(registration) }));
}
