//! The keyword options of `Client.connect` (those of `Registry(...)` and
//! `AsyncRegistry(...)`) to the core's `Options`. `None` (or leaving one
//! out) means: the `REGISTRY_*` variable, else the default.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::convert;
use crate::errors;

/// A file path: `str` or `os.PathLike`.
fn path_arg(field: &str, value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    value
        .extract::<PathBuf>()
        .map_err(|_| convert::wrong_type(field, "a str or os.PathLike path", value))
}

/// `Some(value)` unless absent or `None`.
fn given<'a, 'py>(value: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    value.filter(|v| !v.is_none())
}

/// Checks each option's type and builds the core's options (whose values
/// the core checks when connecting).
#[allow(clippy::too_many_arguments)]
pub fn to_options(
    py: Python<'_>,
    endpoints: Option<&Bound<'_, PyAny>>,
    ttl: Option<&Bound<'_, PyAny>>,
    prefix: Option<&Bound<'_, PyAny>>,
    request_timeout: Option<&Bound<'_, PyAny>>,
    heal_deleted_keys: Option<&Bound<'_, PyAny>>,
    ca_file: Option<&Bound<'_, PyAny>>,
    cert_file: Option<&Bound<'_, PyAny>>,
    key_file: Option<&Bound<'_, PyAny>>,
    user: Option<&Bound<'_, PyAny>>,
    password: Option<&Bound<'_, PyAny>>,
) -> PyResult<libregistry::Options> {
    let mut options = libregistry::Options::new();
    if let Some(v) = given(endpoints) {
        options = convert::endpoints_arg(options, v)?;
    }
    if let Some(v) = given(ttl) {
        options = options.ttl_secs(convert::u32_arg("ttl", v)?);
    }
    if let Some(v) = given(prefix) {
        options = options.prefix(convert::str_arg("prefix", v)?);
    }
    if let Some(v) = given(request_timeout) {
        options = options.request_timeout(convert::seconds_arg("request_timeout", v)?);
    }
    if let Some(v) = given(heal_deleted_keys) {
        let heal = v
            .cast::<PyBool>()
            .map_err(|_| convert::wrong_type("heal_deleted_keys", "bool", v))?;
        options = options.heal_deleted_keys(heal.is_true());
    }
    let path = |field: &str, v: Option<&Bound<'_, PyAny>>| {
        given(v).map(|v| path_arg(field, v)).transpose()
    };
    let tls = libregistry::TlsFiles {
        ca_file: path("ca_file", ca_file)?,
        cert_file: path("cert_file", cert_file)?,
        key_file: path("key_file", key_file)?,
    };
    if tls != libregistry::TlsFiles::default() {
        options = options.tls(tls);
    }
    let text = |field: &str, v: Option<&Bound<'_, PyAny>>| {
        given(v).map(|v| convert::str_arg(field, v)).transpose()
    };
    match (text("user", user)?, text("password", password)?) {
        (Some(user), Some(password)) => Ok(options.credentials(user, password)),
        (None, None) => Ok(options),
        (Some(_), None) => Err(errors::invalid(py, "password", "user is given without it")),
        (None, Some(_)) => Err(errors::invalid(py, "user", "password is given without it")),
    }
}
