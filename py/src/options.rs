//! The keyword options of `Registry(...)` / `AsyncRegistry(...)` to the core's
//! `Options`. `None` (or leaving one out) means: the `REGISTRY_*` variable,
//! else the default.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::convert;
use crate::errors;

/// Every keyword a Registry takes.
const KEYWORDS: [&str; 11] = [
    "endpoints",
    "ttl",
    "prefix",
    "request_timeout",
    "heal_deleted_keys",
    "on_event",
    "ca_file",
    "cert_file",
    "key_file",
    "user",
    "password",
];

/// What connecting needs: the core's options and the event callback.
pub struct ConnectArgs {
    pub options: libregistry::Options,
    pub on_event: Option<Py<PyAny>>,
}

fn type_error(field: &str, expected: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let got = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyTypeError::new_err(format!("{field} must be {expected}, not {got}"))
}

/// A file path: `str` or `os.PathLike`.
fn path_arg(field: &str, value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    value
        .extract::<PathBuf>()
        .map_err(|_| type_error(field, "a str or os.PathLike path", value))
}

/// Reads the keyword arguments (unknown ones are a `TypeError`).
pub fn from_kwargs(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ConnectArgs> {
    let mut options = libregistry::Options::new();
    let mut on_event = None;
    let mut tls = libregistry::TlsFiles::default();
    let mut user = None;
    let mut password = None;
    let Some(kwargs) = kwargs else {
        return Ok(ConnectArgs { options, on_event });
    };
    for (key, value) in kwargs.iter() {
        let key = convert::str_arg("option name", &key)?;
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "unexpected keyword argument {key:?}"
            )));
        }
        if value.is_none() {
            continue;
        }
        match key.as_str() {
            "endpoints" => options = convert::endpoints_arg(options, &value)?,
            "ttl" => options = options.ttl_secs(convert::u32_arg("ttl", &value)?),
            "prefix" => options = options.prefix(convert::str_arg("prefix", &value)?),
            "request_timeout" => {
                options = options.request_timeout(convert::seconds_arg("request_timeout", &value)?)
            }
            "heal_deleted_keys" => {
                let heal = value
                    .cast::<PyBool>()
                    .map_err(|_| type_error("heal_deleted_keys", "bool", &value))?;
                options = options.heal_deleted_keys(heal.is_true());
            }
            "on_event" if value.is_callable() => on_event = Some(value.clone().unbind()),
            "on_event" => return Err(type_error("on_event", "callable or None", &value)),
            "ca_file" => tls.ca_file = Some(path_arg("ca_file", &value)?),
            "cert_file" => tls.cert_file = Some(path_arg("cert_file", &value)?),
            "key_file" => tls.key_file = Some(path_arg("key_file", &value)?),
            "user" => user = Some(convert::str_arg("user", &value)?),
            _ => password = Some(convert::str_arg("password", &value)?),
        }
    }
    if tls != libregistry::TlsFiles::default() {
        options = options.tls(tls);
    }
    options = match (user, password) {
        (Some(user), Some(password)) => options.credentials(user, password),
        (None, None) => options,
        (Some(_), None) => return Err(errors::invalid(py, "password", "user is given without it")),
        (None, Some(_)) => return Err(errors::invalid(py, "user", "password is given without it")),
    };
    Ok(ConnectArgs { options, on_event })
}
