//! Core errors as Python exceptions. The classes are defined in Python
//! (`libregistry._errors`); this maps each [`libregistry::ErrorKind`] to its
//! class exhaustively, so a new kind fails to compile until it has one.

use libregistry::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// The class a kind of core error raises.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::Unavailable => "UnavailableError",
        ErrorKind::Timeout => "RequestTimeoutError",
        ErrorKind::Tls => "TlsError",
        ErrorKind::PermissionDenied => "PermissionDeniedError",
        ErrorKind::AlreadyRegistered => "AlreadyRegisteredError",
        ErrorKind::NotRegistered => "NotRegisteredError",
        ErrorKind::Conflict => "ConflictError",
        ErrorKind::Closed => "ClosedError",
        ErrorKind::Forked => "ForkedError",
        ErrorKind::Etcd => "EtcdError",
        // Only a call made on a runtime thread sees it; Python's never are.
        ErrorKind::InsideRuntime => "RegistryError",
    }
}

static CLASSES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Builds an instance of class `name` with `message` and sets `attrs` on it.
fn raise_with(
    py: Python<'_>,
    name: &str,
    message: String,
    attrs: &[(&str, Bound<'_, PyAny>)],
) -> PyErr {
    let made = CLASSES
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("libregistry._errors")?.unbind())
        })
        .and_then(|module| module.bind(py).getattr(name))
        .and_then(|class| class.call1((message,)))
        .and_then(|exc| {
            for (attr, value) in attrs {
                exc.setattr(*attr, value)?;
            }
            Ok(exc)
        });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// The details of an error callers read as attributes.
fn attributes<'py>(
    py: Python<'py>,
    err: &Error,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    let text = |s: &str| s.into_pyobject(py).map(|o| o.into_any());
    let int = |n: i64| n.into_pyobject(py).map(|o| o.into_any());
    Ok(match err {
        Error::InvalidArgument { field, reason } => {
            vec![("field", text(field)?), ("reason", text(reason)?)]
        }
        Error::Timeout { operation, after } => vec![
            ("operation", text(operation)?),
            ("after", after.as_secs_f64().into_pyobject(py)?.into_any()),
        ],
        Error::AlreadyRegistered { key } | Error::NotRegistered { key } => {
            vec![("key", text(key)?)]
        }
        Error::Conflict { key, other_lease } => {
            let lease = py.import("libregistry._events")?.getattr("LeaseId")?;
            vec![
                ("key", text(key)?),
                ("other_lease", lease.call1((*other_lease,))?),
            ]
        }
        Error::Forked { created_in, now_in } => vec![
            ("created_in", int((*created_in).into())?),
            ("now_in", int((*now_in).into())?),
        ],
        _ => Vec::new(), // the message says it all
    })
}

/// The Python exception for a core error.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    match attributes(py, &err) {
        Ok(attrs) => raise_with(py, class_name(err.kind()), err.to_string(), &attrs),
        Err(failed) => failed,
    }
}

/// An `InvalidArgumentError` raised by the binding itself (a value of the right type but out of range).
pub fn invalid(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    let err = Error::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    };
    to_py(py, err)
}

/// A `ClosedError` with its own message (for handles other than the Registry).
pub fn closed(py: Python<'_>, message: String) -> PyErr {
    raise_with(py, "ClosedError", message, &[])
}
