//! `Instance`: one provider instance found by discovery (the core's
//! `Instance`), an immutable, hashable value. Its metadata comes back as
//! written: JSON numbers as `int` (`port`, `weight`), strings as `str`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyList, PyMapping, PyString, PyType};
use serde_json::{Map, Value};

use crate::convert;
use crate::errors;

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

/// A JSON object as a `dict`, in its order: JSON numbers as `int` or
/// `float`, read by Python's own `json` module.
pub fn map_to_py<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let text =
        serde_json::to_string(map).map_err(|e| errors::invalid(py, "metadata", e.to_string()))?;
    Ok(py
        .import("json")?
        .call_method1("loads", (text,))?
        .cast_into()?)
}

/// Metadata given to `Instance(...)` by hand: a mapping of `str` keys to
/// JSON's values (`str`, `int`, `float`, `bool`, `None`, lists and dicts of
/// them), written by Python's `json` module (integers beyond 64 bits are
/// read back as floats).
fn mapping_to_json(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    let py = obj.py();
    let mapping = obj
        .cast::<PyMapping>()
        .map_err(|_| convert::wrong_type(field, "a mapping of str keys", obj))?;
    let dumps = py.import("json")?.getattr("dumps")?;
    let strict = [("allow_nan", false)].into_py_dict(py)?;
    let mut map = Map::new();
    for item in mapping.items()?.iter() {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let key = convert::str_arg(&format!("each {field} key"), &key)?;
        let entry = format!("{field}[{key:?}]");
        let text: String = match dumps.call((value,), Some(&strict)) {
            Ok(text) => text.extract()?,
            Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                let why = "must be str, int, float, bool, None, or lists and dicts of them";
                return Err(PyTypeError::new_err(format!(
                    "{entry} {why}: {}",
                    e.value(py)
                )));
            }
            Err(e) => return Err(errors::invalid(py, &entry, e.value(py).to_string())),
        };
        let value =
            serde_json::from_str(&text).map_err(|e| errors::invalid(py, &entry, e.to_string()))?;
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
            Some(m) if !m.is_none() => mapping_to_json("metadata", m)?,
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
        self.inner.port()
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
