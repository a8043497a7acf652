//! `registry_service`: a name, an address and metadata, to register.

use std::ffi::c_char;
use std::time::Duration;

use libregistry::health::Check;
use libregistry::Service;

use crate::boundary::{
    from_handle, guard, guard_void, into_handle, required_mut, required_out, required_str, Failure,
};
use crate::status::registry_status;

/// A service to register (opaque). Not thread-safe while being modified.
pub struct registry_service {
    pub(crate) inner: Service,
}

/// Makes a service `name` (1..=128 of [A-Za-z0-9._-]) at `addr` ("host:port").
/// Both strings are copied. On success writes a new handle to
/// `*service_out`, which the caller frees with `registry_service_free`
/// (registering does not take it over). Name and address are checked here.
///
/// # Safety
/// `name`, `addr` NUL-terminated strings; `service_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_service_new(
    name: *const c_char,
    addr: *const c_char,
    service_out: *mut *mut registry_service,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let name = unsafe { required_str(name, "name") }?;
        let addr = unsafe { required_str(addr, "addr") }?;
        required_out(service_out, "service_out")?;
        let inner = Service::new(name, addr);
        inner.validate_identity().map_err(Failure::from)?;
        // SAFETY: checked non-NULL above.
        unsafe { *service_out = into_handle(registry_service { inner }) };
        Ok(())
    })
}

/// Sets one metadata entry (both strings copied): `env`, `region`, `zone`,
/// `scheme`, `weight` ("0".."10000"), `deployment`, `appVersion`,
/// `buildTime` (RFC 3339), or any extra key of [A-Za-z0-9._-]{1,64}.
/// `ip`, `port`, `frameVersion` and `startTime` are derived and refused.
/// The key is checked now, the value when registering.
///
/// # Safety
/// `service` a live `registry_service`; `key`, `value` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn registry_service_set(
    service: *mut registry_service,
    key: *const c_char,
    value: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let service = unsafe { required_mut(service, "service") }?;
        let key = unsafe { required_str(key, "key") }?;
        let value = unsafe { required_str(value, "value") }?;
        service.inner.set(key, value)?;
        Ok(())
    })
}

/// Gives the service a health check (the URL is copied): registering waits
/// for its first passing probe (at most 60 s, then REGISTRY_TIMEOUT), the
/// key is withdrawn after `fails` failed probes in a row and written back
/// after `passes` passing ones (REGISTRY_EVENT_WITHDRAWN / _REINSTATED).
/// `url`: "tcp://HOST:PORT" (connects), "http://HOST:PORT/PATH" (2xx) or
/// "grpc://HOST:PORT[/SERVICE]" (grpc.health.v1 SERVING). 0 for any number
/// keeps its default: a probe every `interval_ms` 1000, each at most
/// `timeout_ms` 1000, `fails` 3, `passes` 1. Checked now.
///
/// # Safety
/// `service` a live `registry_service`; `url` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn registry_service_set_check(
    service: *mut registry_service,
    url: *const c_char,
    interval_ms: u32,
    timeout_ms: u32,
    fails: u32,
    passes: u32,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let service = unsafe { required_mut(service, "service") }?;
        let url = unsafe { required_str(url, "url") }?;
        let millis = |ms: u32| (ms > 0).then(|| Duration::from_millis(ms.into()));
        let count = |n: u32| (n > 0).then_some(n);
        let check = Check::parse(url)?.tuned(
            millis(interval_ms),
            millis(timeout_ms),
            count(fails),
            count(passes),
        )?;
        service.inner.set_check(check);
        Ok(())
    })
}

/// Frees a service; NULL does nothing. Registrations made from it are unaffected.
///
/// # Safety
/// `service` is NULL or a live `registry_service`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_service_free(service: *mut registry_service) {
    // SAFETY: per the contract above.
    guard_void(|| drop(unsafe { from_handle(service) }));
}
