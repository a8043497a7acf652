//! The exception tree rooted at `RegistryError`, and the mapping of every
//! core error to its class.
//!
//! The classes are made with `type(name, bases, namespace)` so that
//! `InvalidArgumentError` can also be a `ValueError` (PyO3's
//! `create_exception!` takes a single base).

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// Every exception class of the package, created once at module import.
pub struct Classes {
    pub base: Py<PyType>,
    pub invalid_argument: Py<PyType>,
    pub unavailable: Py<PyType>,
    pub timeout: Py<PyType>,
    pub tls: Py<PyType>,
    pub permission_denied: Py<PyType>,
    pub already_registered: Py<PyType>,
    pub not_registered: Py<PyType>,
    pub conflict: Py<PyType>,
    pub closed: Py<PyType>,
    pub forked: Py<PyType>,
    pub etcd: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

/// (attribute name in the module, docstring) of each subclass, in `Classes` order.
const SUBCLASSES: [(&str, &str); 11] = [
    (
        "InvalidArgumentError",
        "Input was refused before anything was sent; `field` names what was wrong, `reason` why.",
    ),
    (
        "UnavailableError",
        "No etcd endpoint could be reached, or the cluster has no leader.",
    ),
    (
        "RequestTimeoutError",
        "etcd did not answer within the deadline; `operation` and `after` (seconds) say which.",
    ),
    (
        "TlsError",
        "The TLS connection to etcd failed (unknown CA, refused client certificate, ...).",
    ),
    (
        "PermissionDeniedError",
        "etcd refused the request for lack of permission, or refused the credentials.",
    ),
    (
        "AlreadyRegisteredError",
        "This Registry already holds a registration under `key`.",
    ),
    (
        "NotRegisteredError",
        "The registration under `key` was deregistered.",
    ),
    (
        "ConflictError",
        "Another process holds `key` under its own lease (`other_lease`); it was left alone.",
    ),
    (
        "ClosedError",
        "The Registry was closed; make a new one.",
    ),
    (
        "ForkedError",
        "The Registry was made in process `created_in` before fork(); make a new one in this process (`now_in`).",
    ),
    ("EtcdError", "Any other error reported by etcd."),
];

fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    doc: &str,
    bases: Bound<'py, PyTuple>,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "libregistry")?;
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

/// Creates the classes and adds them to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let classes = CLASSES.get_or_try_init(py, || -> PyResult<Classes> {
        let base = make_class(
            py,
            "RegistryError",
            "Root of every error libregistry raises.",
            PyTuple::new(py, [py.get_type::<PyException>()])?,
        )?;
        let mut made = Vec::with_capacity(SUBCLASSES.len());
        for (name, doc) in SUBCLASSES {
            let bases = if name == "InvalidArgumentError" {
                PyTuple::new(
                    py,
                    [
                        base.bind(py).clone().into_any(),
                        py.get_type::<PyValueError>().into_any(),
                    ],
                )?
            } else {
                PyTuple::new(py, [base.bind(py).clone()])?
            };
            made.push(make_class(py, name, doc, bases)?);
        }
        let mut made = made.into_iter();
        let mut next = || made.next().expect("one class per SUBCLASSES entry");
        Ok(Classes {
            base,
            invalid_argument: next(),
            unavailable: next(),
            timeout: next(),
            tls: next(),
            permission_denied: next(),
            already_registered: next(),
            not_registered: next(),
            conflict: next(),
            closed: next(),
            forked: next(),
            etcd: next(),
        })
    })?;
    module.add("RegistryError", classes.base.bind(py))?;
    let all = [
        &classes.invalid_argument,
        &classes.unavailable,
        &classes.timeout,
        &classes.tls,
        &classes.permission_denied,
        &classes.already_registered,
        &classes.not_registered,
        &classes.conflict,
        &classes.closed,
        &classes.forked,
        &classes.etcd,
    ];
    for ((name, _), class) in SUBCLASSES.iter().zip(all) {
        module.add(*name, class.bind(py))?;
    }
    Ok(())
}

fn classes(py: Python<'_>) -> &Classes {
    CLASSES
        .get(py)
        .expect("exception classes are created when libregistry._native is imported")
}

/// Builds an instance of `class` with `message` and sets `attrs` on it.
fn raise_with(
    py: Python<'_>,
    class: &Py<PyType>,
    message: String,
    attrs: &[(&str, Bound<'_, PyAny>)],
) -> PyErr {
    let made = class.bind(py).call1((message,)).and_then(|exc| {
        for (name, value) in attrs {
            exc.setattr(*name, value)?;
        }
        Ok(exc)
    });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// The Python exception for a core error.
pub fn to_py(py: Python<'_>, err: libregistry::Error) -> PyErr {
    use libregistry::Error as E;
    let c = classes(py);
    let message = err.to_string();
    let text = |s: &str| s.into_pyobject(py).map(|o| o.into_any());
    let int = |n: i64| n.into_pyobject(py).map(|o| o.into_any());
    let built: PyResult<PyErr> = (|| {
        Ok(match err {
            E::InvalidArgument { field, reason } => raise_with(
                py,
                &c.invalid_argument,
                message,
                &[("field", text(&field)?), ("reason", text(&reason)?)],
            ),
            E::Unavailable(_) => raise_with(py, &c.unavailable, message, &[]),
            E::Timeout { operation, after } => raise_with(
                py,
                &c.timeout,
                message,
                &[
                    ("operation", text(operation)?),
                    ("after", after.as_secs_f64().into_pyobject(py)?.into_any()),
                ],
            ),
            E::Tls(_) => raise_with(py, &c.tls, message, &[]),
            E::PermissionDenied(_) => raise_with(py, &c.permission_denied, message, &[]),
            E::AlreadyRegistered { key } => {
                raise_with(py, &c.already_registered, message, &[("key", text(&key)?)])
            }
            E::NotRegistered { key } => {
                raise_with(py, &c.not_registered, message, &[("key", text(&key)?)])
            }
            E::Conflict { key, other_lease } => raise_with(
                py,
                &c.conflict,
                message,
                &[("key", text(&key)?), ("other_lease", int(other_lease)?)],
            ),
            E::Closed => raise_with(py, &c.closed, message, &[]),
            E::Forked { created_in, now_in } => raise_with(
                py,
                &c.forked,
                message,
                &[
                    ("created_in", int(created_in.into())?),
                    ("now_in", int(now_in.into())?),
                ],
            ),
            E::Etcd(_) => raise_with(py, &c.etcd, message, &[]),
            // InsideRuntime cannot happen here (calls never run on a runtime
            // thread); it and any variant added later stay a RegistryError.
            _ => raise_with(py, &c.base, message, &[]),
        })
    })();
    built.unwrap_or_else(|e| e)
}

/// An `InvalidArgumentError` raised by the binding itself (a value of the right type but out of range).
pub fn invalid(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    to_py(
        py,
        libregistry::Error::InvalidArgument {
            field: field.to_string(),
            reason: reason.into(),
        },
    )
}

/// A `ClosedError` with its own message (for handles other than the Registry).
pub fn closed(py: Python<'_>, message: String) -> PyErr {
    raise_with(py, &classes(py).closed, message, &[])
}
