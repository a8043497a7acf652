//! `registry_options`: how a client reaches etcd. Unset fields fall back to
//! the `REGISTRY_*` environment variables, then defaults.

use std::ffi::c_char;
use std::time::Duration;

use std::path::PathBuf;

use libregistry::{Layout, Options, TlsFiles};

use crate::boundary::{
    from_handle, guard, guard_void, into_handle, required_mut, required_str, Failure,
};
use crate::status::registry_status;

/// Client options (opaque). Not thread-safe: use one from one thread at a time.
pub struct registry_options {
    pub(crate) inner: Options,
}

/// A new set of options with nothing set. Free it with
/// `registry_options_free` (a client does not take it over). NULL only if
/// memory ran out.
#[no_mangle]
pub extern "C" fn registry_options_new() -> *mut registry_options {
    std::panic::catch_unwind(|| {
        into_handle(registry_options {
            inner: Options::new(),
        })
    })
    .unwrap_or(std::ptr::null_mut())
}

/// Frees options made by `registry_options_new`; NULL does nothing.
///
/// # Safety
/// `opts` is NULL or a live `registry_options`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_options_free(opts: *mut registry_options) {
    // SAFETY: per the contract above.
    guard_void(|| drop(unsafe { from_handle(opts) }));
}

/// Sets the etcd endpoints: comma-separated `http://` or `https://` URLs
/// (borrowed for the call). Checked when the client is created.
///
/// # Safety
/// `opts` is a live `registry_options`; `endpoints` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_endpoints(
    opts: *mut registry_options,
    endpoints: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        let endpoints = unsafe { required_str(endpoints, "endpoints") }?;
        if endpoints.trim().is_empty() {
            return Err(Failure::invalid("endpoints is empty"));
        }
        opts.inner = std::mem::take(&mut opts.inner).endpoints_csv(endpoints);
        Ok(())
    })
}

/// Sets the lease TTL in seconds; at least 2 (etcd's floor), checked when the client is created.
///
/// # Safety
/// `opts` is a live `registry_options`.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_ttl(
    opts: *mut registry_options,
    ttl_secs: u32,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        if ttl_secs < 2 {
            return Err(Failure::invalid(format!(
                "ttl_secs {ttl_secs} is below etcd's minimum lease TTL of 2 s"
            )));
        }
        opts.inner = std::mem::take(&mut opts.inner).ttl_secs(ttl_secs);
        Ok(())
    })
}

/// Sets the key prefix: "" or "/a/b" (leading '/', no trailing '/'); borrowed for the call.
///
/// # Safety
/// `opts` is a live `registry_options`; `prefix` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_prefix(
    opts: *mut registry_options,
    prefix: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        let prefix = unsafe { required_str(prefix, "prefix") }?;
        opts.inner = std::mem::take(&mut opts.inner).prefix(prefix);
        Ok(())
    })
}

/// Sets the key layout and value format, by name: "seed" (the default:
/// gRPC-go's etcd resolver reads it), "go-zero" (go-zero's `zrpc` clients
/// with an `EtcdConf`) or "kratos" (kratos's etcd registry; the prefix is
/// its namespace, "/microservices" unless set). Overrides `REGISTRY_LAYOUT`.
/// Any other name: REGISTRY_INVALID_ARGUMENT, naming it. Borrowed for the call.
///
/// # Safety
/// `opts` is a live `registry_options`; `layout` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_layout(
    opts: *mut registry_options,
    layout: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        let layout = unsafe { required_str(layout, "layout") }?;
        let layout: Layout = layout
            .parse()
            .map_err(|reason: String| Failure::invalid(format!("invalid layout: {reason}")))?;
        opts.inner = std::mem::take(&mut opts.inner).layout(layout);
        Ok(())
    })
}

/// Sets the deadline of every request to etcd, in milliseconds (default 5000; at least 10).
///
/// # Safety
/// `opts` is a live `registry_options`.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_request_timeout_ms(
    opts: *mut registry_options,
    timeout_ms: u32,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        if timeout_ms < 10 {
            return Err(Failure::invalid(format!(
                "timeout_ms {timeout_ms} is too short (at least 10)"
            )));
        }
        opts.inner = std::mem::take(&mut opts.inner)
            .request_timeout(Duration::from_millis(u64::from(timeout_ms)));
        Ok(())
    })
}

/// Sets how long closing (`registry_client_close` / `_free`: the lease
/// revoke) may take, in milliseconds (default: 2000 plus 1000 per 10,000
/// registrations held; at least 10, checked by `registry_client_new`).
/// When it passes, the keys still go: etcd removes them when the lease
/// expires, within its TTL.
///
/// # Safety
/// `opts` is a live `registry_options`.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_close_timeout_ms(
    opts: *mut registry_options,
    timeout_ms: u32,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        opts.inner = std::mem::take(&mut opts.inner)
            .close_timeout(Duration::from_millis(u64::from(timeout_ms)));
        Ok(())
    })
}

/// Whether keys deleted by someone else while the lease lives are put back
/// (non-zero: yes, the default; 0: no).
///
/// # Safety
/// `opts` is a live `registry_options`.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_heal_deleted_keys(
    opts: *mut registry_options,
    heal: bool,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        opts.inner = std::mem::take(&mut opts.inner).heal_deleted_keys(heal);
        Ok(())
    })
}

/// TLS for `https://` endpoints: `ca_file` is the PEM CA that signed etcd's
/// certificate (required); `cert_file` and `key_file` are a PEM client
/// certificate and key for mutual TLS (both NULL, or both set). Paths are
/// copied; the files are read when the client is created, and a file that
/// cannot be used is named in the error.
///
/// # Safety
/// `opts` is a live `registry_options`; each path NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_tls(
    opts: *mut registry_options,
    ca_file: *const c_char,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        let ca = unsafe { required_str(ca_file, "ca_file") }?;
        let optional = |ptr: *const c_char, param: &str| -> Result<Option<PathBuf>, Failure> {
            if ptr.is_null() {
                return Ok(None);
            }
            // SAFETY: non-NULL and NUL-terminated per the contract.
            unsafe { required_str(ptr, param) }.map(|s| Some(PathBuf::from(s)))
        };
        let files = TlsFiles {
            ca_file: Some(PathBuf::from(ca)),
            cert_file: optional(cert_file, "cert_file")?,
            key_file: optional(key_file, "key_file")?,
        };
        if files.cert_file.is_some() != files.key_file.is_some() {
            return Err(Failure::invalid(
                "cert_file and key_file go together: give both for mutual TLS, or neither",
            ));
        }
        opts.inner = std::mem::take(&mut opts.inner).tls(files);
        Ok(())
    })
}

/// etcd username and password (both copied). The client re-authenticates by
/// itself when etcd's token expires. The password never appears in
/// messages or logs.
///
/// # Safety
/// `opts` is a live `registry_options`; `user`, `password` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn registry_options_set_auth(
    opts: *mut registry_options,
    user: *const c_char,
    password: *const c_char,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let opts = unsafe { required_mut(opts, "opts") }?;
        let user = unsafe { required_str(user, "user") }?;
        let password = unsafe { required_str(password, "password") }?;
        if user.is_empty() {
            return Err(Failure::invalid("user is empty"));
        }
        opts.inner = std::mem::take(&mut opts.inner).credentials(user, password);
        Ok(())
    })
}
