//! `Instance`: one provider instance found by discovery (the core's
//! `Instance`), an immutable, hashable value. Its metadata comes back as
//! written: JSON numbers as `int` (`port`, `weight`), strings as `str`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType};
use serde_json::{Map, Value};

use crate::convert;
use crate::errors;
use crate::pending::Outcome;

/// How deep `Instance(...)` metadata given from Python may nest.
const MAX_JSON_DEPTH: usize = 32;

/// One provider instance: its etcd key, service name, address and metadata.
#[pyclass(frozen, eq, module = "libregistry", name = "Instance")]
#[derive(PartialEq)]
pub struct Instance {
    inner: libregistry::Instance,
}

impl From<libregistry::Instance> for Instance {
    fn from(inner: libregistry::Instance) -> Instance {
        Instance { inner }
    }
}

/// A JSON value as the Python value it reads as.
fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => map_to_py(py, map)?.into_any(),
    })
}

/// A JSON object as a `dict`, in its order.
pub fn map_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in map {
        dict.set_item(key, json_to_py(py, value)?)?;
    }
    Ok(dict)
}

/// A Python value (`str`, `int`, `float`, `bool`, `None`, lists and dicts of
/// them) as JSON, for `Instance(...)` built by hand.
fn py_to_json(field: &str, obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    let py = obj.py();
    if depth > MAX_JSON_DEPTH {
        return Err(errors::invalid(
            py,
            field,
            format!("nests deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(errors::invalid(
            py,
            field,
            "is an integer outside the 64-bit range",
        ));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| errors::invalid(py, field, format!("{f} is not a finite number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(list) = obj.cast::<PyList>() {
        Some(list.iter().collect())
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        Some(tuple.iter().collect())
    } else {
        None
    };
    if let Some(items) = items {
        return items
            .iter()
            .map(|item| py_to_json(field, item, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if obj.cast::<PyMapping>().is_ok() {
        return mapping_to_json(field, obj, depth + 1).map(Value::Object);
    }
    Err(PyTypeError::new_err(format!(
        "{field} must be str, int, float, bool, None, or a list or dict of them, not {}",
        convert::type_name(obj)
    )))
}

fn mapping_to_json(
    field: &str,
    obj: &Bound<'_, PyAny>,
    depth: usize,
) -> PyResult<Map<String, Value>> {
    let mapping = obj.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field} must be a mapping of str keys, not {}",
            convert::type_name(obj)
        ))
    })?;
    let mut map = Map::new();
    for item in mapping.items()?.iter() {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let key = convert::str_arg(&format!("each {field} key"), &key)?;
        let value = py_to_json(&format!("{field}[{key:?}]"), &value, depth)?;
        map.insert(key, value);
    }
    Ok(map)
}

#[pymethods]
impl Instance {
    /// Builds an instance by hand (tests, fakes); discovery makes them for you.
    #[new]
    #[pyo3(signature = (key, name, addr, metadata=None))]
    fn new(
        key: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Instance> {
        let key = convert::str_arg("key", key)?;
        let name = convert::str_arg("name", name)?;
        let addr = convert::str_arg("addr", addr)?;
        let metadata = match metadata {
            Some(m) if !m.is_none() => mapping_to_json("metadata", m, 1)?,
            _ => Map::new(),
        };
        Ok(Instance {
            inner: libregistry::Instance {
                key,
                name,
                addr,
                metadata,
            },
        })
    }

    /// The etcd key, e.g. `/micro/127.0.0.1:4000`.
    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }

    /// The service name it was found under.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// `host:port` to connect to.
    #[getter]
    fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The metadata as written, in order (a new dict on each access).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, &self.inner.metadata)
    }

    /// A metadata entry as text (numbers written out); `None` when absent.
    fn meta(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        Ok(self.inner.meta(&convert::str_arg("key", key)?))
    }

    /// `weight`: 0..=10000, 100 when absent or unreadable (0 = no traffic).
    #[getter]
    fn weight(&self) -> u32 {
        self.inner.weight()
    }

    /// `port` from the metadata, when it holds a port number.
    #[getter]
    fn port(&self) -> Option<u16> {
        match self.inner.metadata.get("port")? {
            Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// `env`, e.g. `dev`.
    #[getter]
    fn env(&self) -> Option<String> {
        self.inner.meta("env")
    }

    /// `region`, e.g. `beijing`.
    #[getter]
    fn region(&self) -> Option<String> {
        self.inner.meta("region")
    }

    /// `zone`, e.g. `zone1`.
    #[getter]
    fn zone(&self) -> Option<String> {
        self.inner.meta("zone")
    }

    /// `ip`: the host part of the registered address.
    #[getter]
    fn ip(&self) -> Option<String> {
        self.inner.meta("ip")
    }

    /// `scheme`, e.g. `grpc`.
    #[getter]
    fn scheme(&self) -> Option<String> {
        self.inner.meta("scheme")
    }

    /// `deployment`, e.g. `red`.
    #[getter]
    fn deployment(&self) -> Option<String> {
        self.inner.meta("deployment")
    }

    /// `frameVersion`: the libregistry version that registered it.
    #[getter]
    fn frame_version(&self) -> Option<String> {
        self.inner.meta("frameVersion")
    }

    /// `appVersion`.
    #[getter]
    fn app_version(&self) -> Option<String> {
        self.inner.meta("appVersion")
    }

    /// `buildTime` (RFC 3339).
    #[getter]
    fn build_time(&self) -> Option<String> {
        self.inner.meta("buildTime")
    }

    /// `startTime` (RFC 3339): when the provider process started.
    #[getter]
    fn start_time(&self) -> Option<String> {
        self.inner.meta("startTime")
    }

    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str, &'static str) {
        ("key", "name", "addr", "metadata")
    }

    fn __hash__(&self) -> u64 {
        // Equal instances have equal identities; metadata is left out (JSON has no hash).
        let mut h = DefaultHasher::new();
        (&self.inner.key, &self.inner.name, &self.inner.addr).hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, Reduced<'py>)> {
        let (py, i) = (slf.py(), &slf.get().inner);
        let args = (
            i.key.clone(),
            i.name.clone(),
            i.addr.clone(),
            map_to_py(py, &i.metadata)?,
        );
        Ok((py.get_type::<Instance>(), args))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = |s: &str| -> PyResult<String> {
            Ok(PyString::new(py, s).repr()?.to_cow()?.into_owned())
        };
        Ok(format!(
            "Instance(key={}, name={}, addr={}, metadata={})",
            r(&self.inner.key)?,
            r(&self.inner.name)?,
            r(&self.inner.addr)?,
            self.metadata(py)?.repr()?.to_cow()?,
        ))
    }
}

/// What `Instance(...)` is rebuilt from when unpickled.
type Reduced<'py> = (String, String, String, Bound<'py, PyDict>);

/// `(kind, Instance)` of a change, for `libregistry._discovery` to build its class.
pub fn change_to_py(change: libregistry::Change) -> (&'static str, Instance) {
    use libregistry::Change as C;
    let (kind, instance) = match change {
        C::Added(i) => ("added", i),
        C::Updated(i) => ("updated", i),
        C::Removed(i) => ("removed", i),
    };
    (kind, Instance::from(instance))
}

/// What a one-shot read found: a `list[Instance]`.
pub struct Found(pub Vec<libregistry::Instance>);

impl Outcome for Found {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(to_list(py, self.0)?.into_any().unbind())
    }
}

/// The core's instances as a `list[Instance]`.
pub fn to_list<'py, I>(py: Python<'py>, instances: I) -> PyResult<Bound<'py, PyList>>
where
    I: IntoIterator<Item = libregistry::Instance>,
{
    let list = PyList::empty(py);
    for instance in instances {
        list.append(Py::new(py, Instance::from(instance))?)?;
    }
    Ok(list)
}
