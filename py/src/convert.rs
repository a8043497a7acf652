//! Python arguments to core types, with `TypeError` for a wrong type and
//! `InvalidArgumentError` (naming the field) for a right type with a bad value.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};

use crate::errors;

/// The Python type name of `obj`, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

pub fn wrong_type(field: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{field} must be {expected}, not {}",
        type_name(obj)
    ))
}

/// An `int` (never a `bool`) that fits in `u32`.
pub fn u32_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<u32> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(wrong_type(field, "int", obj));
    }
    let out_of_range = |why: String| errors::invalid(obj.py(), field, why);
    let value: i128 = obj
        .extract()
        .map_err(|_| out_of_range("is out of range".into()))?;
    u32::try_from(value).map_err(|_| out_of_range(format!("{value} is outside 0..={}", u32::MAX)))
}

/// A duration in seconds given as `int` or `float` (never a `bool`).
pub fn seconds_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let number_type = obj.is_instance_of::<PyFloat>()
        || (obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>());
    if !number_type {
        return Err(wrong_type(field, "a number of seconds (int or float)", obj));
    }
    let secs: f64 = obj.extract()?;
    let why = format!("{secs} is not a positive, finite number of seconds");
    Duration::try_from_secs_f64(secs).map_err(|_| errors::invalid(obj.py(), field, why))
}

/// A `str`.
pub fn str_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(wrong_type(field, "str", obj)),
    }
}

/// Endpoints: one `str` (comma-separated, as `REGISTRY_ENDPOINTS`) or a list/tuple of `str`.
pub fn endpoints_arg(
    options: libregistry::Options,
    obj: &Bound<'_, PyAny>,
) -> PyResult<libregistry::Options> {
    if let Ok(csv) = obj.cast::<PyString>() {
        return Ok(options.endpoints_csv(&csv.to_cow()?));
    }
    let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = obj.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Err(wrong_type("endpoints", "a str, a list of str or None", obj));
    };
    let endpoints = items
        .iter()
        .map(|item| str_arg("each endpoint", item))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(options.endpoints(endpoints))
}

/// Metadata pairs from a mapping of `str` to `str` (or `int` for `weight`),
/// in the mapping's order, as `Service::set` takes them.
pub fn metadata_arg(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Pairs> {
    let mapping = obj
        .cast::<PyMapping>()
        .map_err(|_| wrong_type(field, "a mapping of str to str", obj))?;
    let items = mapping.items()?;
    let mut pairs = Vec::with_capacity(items.len());
    for item in items.iter() {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let key = str_arg(&format!("each {field} key"), &key)?;
        let value = metadata_value(&key, &value)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// A metadata value as text: `str`, or `int` for `weight`.
fn metadata_value(key: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if key == "weight" && value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>() {
        // Any int: the range (0..=10000) is checked by the core, naming `weight`.
        return Ok(value.str()?.to_cow()?.into_owned());
    }
    let expected = if key == "weight" { "int or str" } else { "str" };
    Err(wrong_type(&format!("metadata {key:?}"), expected, value))
}

/// Metadata pairs `(key, value)` as given, in order.
pub type Pairs = Vec<(String, String)>;

/// A core service from a name, an address and optional metadata.
pub fn service(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    addr: &Bound<'_, PyAny>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<libregistry::Service> {
    let name = str_arg("name", name)?;
    let addr = str_arg("addr", addr)?;
    let pairs = match metadata {
        Some(m) if !m.is_none() => metadata_arg("metadata", m)?,
        _ => Vec::new(),
    };
    let mut service = libregistry::Service::new(name, addr);
    for (key, value) in &pairs {
        service
            .set(key, value.as_str())
            .map_err(|e| errors::to_py(py, e))?;
    }
    Ok(service)
}

/// `(name, addr)` or `(name, addr, metadata)` entries of `register_many`.
pub fn services(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<libregistry::Service>> {
    let expected = "an iterable of (name, addr) or (name, addr, metadata) tuples";
    if obj.is_instance_of::<PyString>() || obj.cast::<PyMapping>().is_ok() {
        return Err(wrong_type("services", expected, obj));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| wrong_type("services", expected, obj))?;
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry?;
        let fields: Vec<Bound<'_, PyAny>> = if let Ok(t) = entry.cast::<PyTuple>() {
            t.iter().collect()
        } else if let Ok(l) = entry.cast::<PyList>() {
            l.iter().collect()
        } else {
            return Err(wrong_type(
                "each service",
                "a (name, addr) or (name, addr, metadata) tuple",
                &entry,
            ));
        };
        let made = match fields.as_slice() {
            [name, addr] => service(py, name, addr, None)?,
            [name, addr, metadata] => service(py, name, addr, Some(metadata))?,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "each service must be (name, addr) or (name, addr, metadata), not {} items",
                    fields.len()
                )))
            }
        };
        out.push(made);
    }
    Ok(out)
}

/// `register`'s `(check, check_interval, check_timeout, check_fails,
/// check_passes)` as a core health check; `None` without a check URL.
pub fn check<'py>(args: &Bound<'py, PyTuple>) -> PyResult<Option<libregistry::health::Check>> {
    let py = args.py();
    let [url, interval, timeout, fails, passes]: [Bound<'py, PyAny>; 5] = args.extract()?;
    let given = |o: Bound<'py, PyAny>| (!o.is_none()).then_some(o);
    let count = |field, o| given(o).map(|o| u32_arg(field, &o)).transpose();
    let Some(url) = given(url) else {
        let tuning = [
            (&interval, "check_interval"),
            (&timeout, "check_timeout"),
            (&fails, "check_fails"),
            (&passes, "check_passes"),
        ];
        return match tuning.iter().find(|(o, _)| !o.is_none()) {
            Some((_, field)) => Err(errors::invalid(py, field, "is given without a check")),
            None => Ok(None),
        };
    };
    let url = str_arg("check", &url)?;
    let secs = |field, o| given(o).map(|o| seconds_arg(field, &o)).transpose();
    let interval = secs("check_interval", interval)?;
    let timeout = secs("check_timeout", timeout)?;
    let (fails, passes) = (count("check_fails", fails)?, count("check_passes", passes)?);
    let check = libregistry::health::Check::parse(&url)
        .and_then(|c| c.tuned(interval, timeout, fails, passes));
    check.map(Some).map_err(|e| errors::to_py(py, e))
}

/// `None` (absent) or a value to check.
pub fn given<'a, 'py>(obj: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    obj.filter(|o| !o.is_none())
}

/// A `timeout` in seconds, or `None` for no limit.
pub fn optional_seconds(field: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    given(obj).map(|o| seconds_arg(field, o)).transpose()
}

/// The keywords of `watch` and `set_policy` as a core `PickPolicy`: `zone`
/// and `region` are preferences (`None`: `REGISTRY_ZONE` / `REGISTRY_REGION`,
/// `""`: none); `env` and `deployment` are filters (`None`: none; `""` is
/// refused, as a filter nothing legitimate matches); `round_robin` a `bool`.
pub fn pick_policy(
    py: Python<'_>,
    zone: Option<&Bound<'_, PyAny>>,
    region: Option<&Bound<'_, PyAny>>,
    env: Option<&Bound<'_, PyAny>>,
    deployment: Option<&Bound<'_, PyAny>>,
    round_robin: Option<&Bound<'_, PyAny>>,
) -> PyResult<libregistry::PickPolicy> {
    let from_env = libregistry::PickPolicy::from_env();
    let preference = |field: &str, obj, fallback: Option<String>| -> PyResult<Option<String>> {
        match given(obj) {
            None => Ok(fallback),
            Some(o) => Ok(Some(str_arg(field, o)?).filter(|s| !s.is_empty())),
        }
    };
    let filter = |field: &str, obj| -> PyResult<Option<String>> {
        let value = given(obj).map(|o| str_arg(field, o)).transpose()?;
        match value {
            Some(v) if v.is_empty() => Err(errors::invalid(
                py,
                field,
                "is empty (None means no filter)",
            )),
            v => Ok(v),
        }
    };
    let round_robin = match given(round_robin) {
        None => false,
        Some(o) => o
            .cast::<PyBool>()
            .map_err(|_| wrong_type("round_robin", "bool", o))?
            .is_true(),
    };
    Ok(libregistry::PickPolicy {
        zone: preference("zone", zone, from_env.zone)?,
        region: preference("region", region, from_env.region)?,
        env: filter("env", env)?,
        deployment: filter("deployment", deployment)?,
        balance: if round_robin {
            libregistry::Balance::RoundRobin
        } else {
            libregistry::Balance::WeightedRandom
        },
    })
}

/// A callback argument: callable or `None`.
pub fn callback_arg(field: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match given(obj) {
        None => Ok(None),
        Some(o) if o.is_callable() => Ok(Some(o.clone().unbind())),
        Some(o) => Err(wrong_type(field, "callable or None", o)),
    }
}
