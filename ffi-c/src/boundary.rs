//! The boundary between C and Rust: panics stop here, errors become a
//! status plus a thread-local message, and C pointers are checked once, here.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::registry_status;

thread_local! {
    /// Message of the last failed call on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure on its way to C: the status and the message `registry_last_error` returns.
pub(crate) struct Failure {
    pub status: registry_status,
    pub message: String,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: registry_status::REGISTRY_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
}

impl From<libregistry::Error> for Failure {
    fn from(err: libregistry::Error) -> Self {
        Failure {
            status: registry_status::from_error(&err),
            message: err.to_string(),
        }
    }
}

pub(crate) type Outcome<T = ()> = Result<T, Failure>;

fn remember(message: &str) {
    // Interior NULs cannot cross into C; replace rather than lose the message.
    let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The pointer `registry_last_error` hands out: valid until this thread's
/// next failed call replaces it.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// Runs one exported call: catches panics, records the message of a failure.
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> registry_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => registry_status::REGISTRY_OK,
        Ok(Err(failure)) => {
            remember(&failure.message);
            failure.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            remember(&format!("internal error (panic) in libregistry: {what}"));
            registry_status::REGISTRY_PANIC
        }
    }
}

/// Runs a call that returns no status (the `_free` functions): panics are swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Borrows a required C string as UTF-8, naming the parameter when it is NULL or not UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, param: &str) -> Outcome<&'a str> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{param} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{param} is not valid UTF-8")))
}

/// Borrows a required object handle, naming the parameter when it is NULL.
///
/// # Safety
/// `ptr` is NULL or points to a live object of type `T` made by this library.
pub(crate) unsafe fn required_ref<'a, T>(ptr: *const T, param: &str) -> Outcome<&'a T> {
    // SAFETY: per the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{param} is NULL")))
}

/// Mutable twin of [`required_ref`].
///
/// # Safety
/// As [`required_ref`], and no other reference to `*ptr` is in use.
pub(crate) unsafe fn required_mut<'a, T>(ptr: *mut T, param: &str) -> Outcome<&'a mut T> {
    // SAFETY: per the caller's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{param} is NULL")))
}

/// Checks an out-parameter is not NULL.
pub(crate) fn required_out<T>(ptr: *mut T, param: &str) -> Outcome<()> {
    if ptr.is_null() {
        Err(Failure::invalid(format!("{param} is NULL")))
    } else {
        Ok(())
    }
}

/// Moves `value` to the heap and hands C the pointer; freed by the matching `_free`.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back a handle made by [`into_handle`]; NULL gives `None`.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] for the same `T` and was not freed.
pub(crate) unsafe fn from_handle<T>(ptr: *mut T) -> Option<Box<T>> {
    // SAFETY: per the caller's contract.
    (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
}

/// Copies `text` and a NUL into the caller's buffer; reports the size needed.
///
/// # Safety
/// `buf` has `buf_len` writable bytes (or is NULL with `buf_len` 0);
/// `needed_out` is NULL or writable.
pub(crate) unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    buf_len: usize,
    needed_out: *mut usize,
) -> Outcome {
    let needed = text.len() + 1;
    if !needed_out.is_null() {
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *needed_out = needed };
    }
    if buf.is_null() || buf_len < needed {
        return Err(Failure::invalid(format!(
            "buffer of {buf_len} bytes is too small: {needed} needed"
        )));
    }
    // SAFETY: `buf` has at least `needed` bytes per the check above.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}
