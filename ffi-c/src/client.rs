//! `registry_client`: one etcd connection, one lease, any number of registrations.

use std::ffi::c_char;

use libregistry::{blocking, Options};

use crate::boundary::{
    from_handle, guard, guard_void, into_handle, required_out, required_ref, Failure,
};
use crate::events::Callbacks;
use crate::registration::registry_registration;
use crate::service::registry_service;
use crate::status::registry_status;

/// A client (opaque): holds one lease shared by all its registrations.
/// Thread-safe: any number of threads may call `registry_register`,
/// `registry_update`, `registry_deregister` and the getters at once.
/// `registry_client_free` must not race with other calls on the same client.
pub struct registry_client {
    pub(crate) inner: blocking::Client,
    pub(crate) callbacks: Callbacks,
}

/// Connects to etcd and grants the client's lease; fails within the request
/// timeout when etcd cannot be reached (REGISTRY_UNAVAILABLE or
/// REGISTRY_TIMEOUT). `opts` may be NULL: defaults and `REGISTRY_*`
/// environment variables; it is only read (the caller still frees it).
/// On success writes a new client to `*client_out`, freed by `registry_client_free`.
///
/// # Safety
/// `opts` NULL or a live `registry_options`; `client_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_client_new(
    opts: *const crate::options::registry_options,
    client_out: *mut *mut registry_client,
) -> registry_status {
    guard(|| {
        required_out(client_out, "client_out")?;
        // SAFETY: per the contract above.
        let options = match unsafe { opts.as_ref() } {
            Some(o) => o.inner.clone(),
            None => Options::new(),
        };
        let inner = blocking::Client::connect(options)?;
        let client = registry_client {
            inner,
            callbacks: Callbacks::default(),
        };
        // SAFETY: checked non-NULL above.
        unsafe { *client_out = into_handle(client) };
        Ok(())
    })
}

/// Revokes the client's lease, so all its registrations vanish from etcd at
/// once (bounded even when etcd is dead: 2 s plus 1 s per 10,000
/// registrations, or `registry_options_set_close_timeout_ms`). The client
/// stays allocated: further calls give REGISTRY_CLOSED. Calling it twice is
/// harmless.
///
/// # Safety
/// `client` a live `registry_client`.
#[no_mangle]
pub unsafe extern "C" fn registry_client_close(client: *const registry_client) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        client.inner.close()?;
        client.callbacks.finish();
        Ok(())
    })
}

/// Revokes the client's lease (as `registry_client_close`, bounded in
/// time), stops event callbacks (none runs after this returns), then frees
/// the client. NULL does nothing. Registration handles stay valid to free;
/// deregistering them gives REGISTRY_CLOSED.
///
/// # Safety
/// `client` NULL or a live `registry_client`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_client_free(client: *mut registry_client) {
    guard_void(|| {
        // SAFETY: per the contract above.
        if let Some(client) = unsafe { from_handle(client) } {
            let _ = client.inner.close();
            client.callbacks.finish();
        }
    });
}

/// Writes the current lease ID to `*lease_out` (0 before the client's first
/// registration, while it is healing after a lost lease, or closed).
/// Thread-safe.
///
/// # Safety
/// `client` a live `registry_client`; `lease_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_client_lease_id(
    client: *const registry_client,
    lease_out: *mut i64,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        required_out(lease_out, "lease_out")?;
        // SAFETY: checked non-NULL above.
        unsafe { *lease_out = client.inner.lease_id().unwrap_or(0) };
        Ok(())
    })
}

/// Writes the TTL etcd granted for the lease, in seconds, to `*ttl_out` (0
/// before the client's first registration). Thread-safe.
///
/// # Safety
/// `client` a live `registry_client`; `ttl_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_client_granted_ttl(
    client: *const registry_client,
    ttl_out: *mut u32,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        required_out(ttl_out, "ttl_out")?;
        // SAFETY: checked non-NULL above.
        unsafe { *ttl_out = client.inner.granted_ttl_secs() };
        Ok(())
    })
}

/// Registers `service` under the client's lease and returns once etcd has
/// confirmed, or fails within the request timeout leaving nothing behind.
/// The service is only read (the caller still frees it). On success writes a
/// new handle to `*registration_out`, released by `registry_deregister`
/// (removes the key) or `registry_registration_free` (keeps it until the
/// client is freed). Thread-safe.
///
/// # Safety
/// `client`, `service` live handles; `registration_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_register(
    client: *mut registry_client,
    service: *const registry_service,
    registration_out: *mut *mut registry_registration,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        let service = unsafe { required_ref(service, "service") }?;
        required_out(registration_out, "registration_out")?;
        let reg = client.inner.register(&service.inner)?;
        // SAFETY: checked non-NULL above.
        unsafe { *registration_out = registry_registration::new_handle(reg) };
        Ok(())
    })
}

/// Registers `count` services at once, in transactions of at most 128
/// operations; all or nothing. `services` is an array of `count` service
/// pointers (only read). On success writes `count` new handles into the
/// caller's array `registrations_out` (each released as from
/// `registry_register`); on failure writes nothing. Thread-safe.
///
/// # Safety
/// `client` live; `services` holds `count` live service pointers;
/// `registrations_out` has room for `count` pointers.
#[no_mangle]
pub unsafe extern "C" fn registry_register_many(
    client: *mut registry_client,
    services: *const *const registry_service,
    count: usize,
    registrations_out: *mut *mut registry_registration,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        if count == 0 {
            return Ok(());
        }
        if services.is_null() {
            return Err(Failure::invalid("services is NULL"));
        }
        required_out(registrations_out, "registrations_out")?;
        // SAFETY: `services` holds `count` pointers per the contract.
        let pointers = unsafe { std::slice::from_raw_parts(services, count) };
        let mut batch = Vec::with_capacity(count);
        for (i, ptr) in pointers.iter().enumerate() {
            // SAFETY: each is NULL or a live service per the contract.
            let service = unsafe { required_ref(*ptr, &format!("services[{i}]")) }?;
            batch.push(service.inner.clone());
        }
        let regs = client.inner.register_many(&batch)?;
        for (i, reg) in regs.into_iter().enumerate() {
            // SAFETY: room for `count` pointers per the contract.
            unsafe { *registrations_out.add(i) = registry_registration::new_handle(reg) };
        }
        Ok(())
    })
}

/// Adds `callback`, called with `userdata` for every event of this client
/// from now on (registered, lease lost, restored, key restored,
/// deregistered, conflict, closed), in order, on a libregistry thread. Keep
/// it short and make no blocking `registry_` call from it. `userdata` must
/// stay valid until `registry_client_free` returns; no callback runs after.
///
/// # Safety
/// `client` live; `callback` safe to call from another thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn registry_client_set_event_callback(
    client: *mut registry_client,
    callback: crate::events::registry_event_callback,
    userdata: *mut std::ffi::c_void,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        let Some(callback) = callback else {
            return Err(Failure::invalid("callback is NULL"));
        };
        client.callbacks.add(&client.inner, callback, userdata)
    })
}

/// The key a service would be registered under by this client, e.g.
/// "/micro/127.0.0.1:4000", copied into `buf` (NUL-terminated) when it fits
/// in `buf_len` bytes; `*needed_out` (if not NULL) gets the length including
/// the NUL. REGISTRY_INVALID_ARGUMENT when it does not fit.
///
/// # Safety
/// `client`, `service` live; `buf` has `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn registry_client_key_of(
    client: *const registry_client,
    service: *const registry_service,
    buf: *mut c_char,
    buf_len: usize,
    needed_out: *mut usize,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        let service = unsafe { required_ref(service, "service") }?;
        let key = client.inner.as_async().key_of(&service.inner);
        // SAFETY: per the contract above.
        unsafe { crate::boundary::copy_out(&key, buf, buf_len, needed_out) }
    })
}
