//! `Client` and `Registration`: thin handles over the core's async client
//! (its discovery calls return the handles of [`crate::discovery`]). Each
//! call that talks to etcd returns a [`Pending`], waited for by the blocking
//! API (`wait()`) or the asyncio one (`future()`). The pure-Python classes
//! in `libregistry` (`Registry`, `AsyncRegistry`, ...) are built on these.
//! The options of `connect` are declared here once, and converted below.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyTuple};

use crate::convert;
use crate::discovery::{self, Found, WatchArgs};
use crate::dispatch;
use crate::errors;
use crate::pending::{OnInterrupt, Outcome, Pending};

/// A connection to etcd; its lease comes with the first registration (the core's `Client`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Client {
    inner: libregistry::Client,
}

/// A connected client, handed to Python with its event callback in place,
/// or closed when nobody takes it.
struct Connected {
    inner: libregistry::Client,
    on_event: Option<Py<PyAny>>,
}

impl Outcome for Connected {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(callback) = self.on_event {
            dispatch::forward_events(&self.inner, callback).map_err(|e| errors::to_py(py, e))?;
        }
        Ok(Py::new(py, Client { inner: self.inner })?.into_any())
    }

    fn abandon(self: Box<Self>) {
        let client = self.inner;
        let _ = libregistry::spawn(async move {
            let _ = client.close().await;
        });
    }
}

/// New registrations: one `Registration`, or a list of them; deregistered
/// when nobody takes them.
struct Registered {
    regs: Vec<libregistry::Registration>,
    one: bool,
}

impl Outcome for Registered {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut made = Vec::with_capacity(self.regs.len());
        for inner in self.regs.into_iter().map(Arc::new) {
            made.push(Py::new(py, Registration { inner })?);
        }
        if self.one {
            if let Some(reg) = made.pop() {
                return Ok(reg.into_any());
            }
        }
        Ok(PyList::new(py, made)?.into_any().unbind())
    }

    fn abandon(self: Box<Self>) {
        let _ = libregistry::spawn(async move {
            for reg in self.regs {
                let _ = reg.deregister().await;
            }
        });
    }
}

#[pymethods]
impl Client {
    /// Connects (within the request timeout). Keywords as `Registry(...)`;
    /// each one's type is checked here, its value by the core when connecting.
    #[staticmethod]
    #[pyo3(signature = (*, endpoints=None, ttl=None, prefix=None, layout=None, request_timeout=None,
        close_timeout=None, heal_deleted_keys=None, on_event=None, ca_file=None, cert_file=None, key_file=None,
        user=None, password=None))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        endpoints: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        prefix: Option<&Bound<'_, PyAny>>,
        layout: Option<&Bound<'_, PyAny>>,
        request_timeout: Option<&Bound<'_, PyAny>>,
        close_timeout: Option<&Bound<'_, PyAny>>,
        heal_deleted_keys: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
        ca_file: Option<&Bound<'_, PyAny>>,
        cert_file: Option<&Bound<'_, PyAny>>,
        key_file: Option<&Bound<'_, PyAny>>,
        user: Option<&Bound<'_, PyAny>>,
        password: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Pending> {
        let (given, seconds) = (convert::given, convert::optional_seconds);
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
        if let Some(v) = given(layout) {
            let layout = convert::str_arg("layout", v)?.parse();
            options =
                options.layout(layout.map_err(|why: String| errors::invalid(py, "layout", why))?);
        }
        if let Some(t) = seconds("request_timeout", request_timeout)? {
            options = options.request_timeout(t);
        }
        if let Some(t) = seconds("close_timeout", close_timeout)? {
            options = options.close_timeout(t);
        }
        if let Some(v) = given(heal_deleted_keys) {
            let heal = v
                .cast::<PyBool>()
                .map_err(|_| convert::wrong_type("heal_deleted_keys", "bool", v))?;
            options = options.heal_deleted_keys(heal.is_true());
        }
        let path = |field, v| given(v).map(|v| path_arg(field, v)).transpose();
        let tls = libregistry::TlsFiles {
            ca_file: path("ca_file", ca_file)?,
            cert_file: path("cert_file", cert_file)?,
            key_file: path("key_file", key_file)?,
        };
        if tls != libregistry::TlsFiles::default() {
            options = options.tls(tls);
        }
        let text = |field, v| given(v).map(|v| convert::str_arg(field, v)).transpose();
        options = match (text("user", user)?, text("password", password)?) {
            (Some(user), Some(password)) => options.credentials(user, password),
            (None, None) => options,
            (Some(_), None) => {
                return Err(errors::invalid(py, "password", "user is given without it"))
            }
            (None, Some(_)) => {
                return Err(errors::invalid(py, "user", "password is given without it"))
            }
        };
        let on_event = convert::callback_arg("on_event", on_event)?;
        let connect = async move {
            let inner = libregistry::Client::connect(options).await?;
            Ok(Connected { inner, on_event })
        };
        Ok(Pending::new(connect, OnInterrupt::Finish))
    }

    /// Registers one service (once its health check passes, with `check`:
    /// `(url, interval, timeout, fails, passes)`); done once etcd confirmed it.
    #[pyo3(signature = (name, addr, metadata=None, check=None))]
    fn register(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        check: Option<&Bound<'_, PyTuple>>,
    ) -> PyResult<Pending> {
        let mut service = convert::service(py, name, addr, metadata)?;
        if let Some(check) = check.map(convert::check).transpose()?.flatten() {
            service.set_check(check);
        }
        Ok(self.register_services(vec![service], true))
    }

    /// Registers many services at once, all or nothing.
    fn register_many(&self, py: Python<'_>, services: &Bound<'_, PyAny>) -> PyResult<Pending> {
        let services = convert::services(py, services)?;
        Ok(self.register_services(services, false))
    }

    /// Reads every instance of service `name` once (`list[Instance]`, sorted by key).
    fn discover(&self, name: &Bound<'_, PyAny>) -> PyResult<Pending> {
        let name = convert::str_arg("name", name)?;
        let client = self.inner.clone();
        let read = async move { client.discover(&name).await.map(Found) };
        Ok(Pending::new(read, OnInterrupt::Drop))
    }

    /// Starts a watcher on service `name`; done once its first list is read.
    #[pyo3(signature = (name, *, zone=None, region=None, env=None, deployment=None, round_robin=None, on_change=None))]
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        zone: Option<&Bound<'_, PyAny>>,
        region: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
        round_robin: Option<&Bound<'_, PyAny>>,
        on_change: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Pending> {
        let args = WatchArgs {
            name: convert::str_arg("name", name)?,
            policy: convert::pick_policy(py, zone, region, env, deployment, round_robin)?,
            on_change: convert::callback_arg("on_change", on_change)?,
        };
        Ok(discovery::watch(&self.inner, args))
    }

    /// Revokes the lease: every registration of this client vanishes at once.
    fn close(&self) -> Pending {
        let client = self.inner.clone();
        Pending::new(async move { client.close().await }, OnInterrupt::Finish)
    }

    /// The lease currently held (`None` before the first registration, while healing or after close).
    #[getter]
    fn lease_id(&self) -> Option<i64> {
        self.inner.lease_id()
    }

    /// The lease TTL in seconds: as etcd granted it, or as asked for until the first registration.
    #[getter]
    fn ttl(&self) -> u32 {
        self.inner.ttl_secs()
    }

    /// The options in force: endpoints, prefix, layout, request timeout (seconds).
    fn settings(&self) -> (Vec<String>, String, &'static str, f64) {
        let o = self.inner.options();
        let timeout = o.request_timeout.as_secs_f64();
        let (endpoints, prefix, layout) = (o.endpoints.clone(), o.prefix.clone(), o.layout.name());
        (endpoints, prefix, layout, timeout)
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Every metric sample, named as the Prometheus text names it, and its value.
    fn metrics(&self) -> Vec<(String, f64)> {
        self.inner
            .metrics()
            .samples()
            .map(|s| (s.id(), s.value))
            .collect()
    }

    /// The metrics in Prometheus's text format.
    fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// The key `name` at `addr` is (or would be) registered under.
    fn key_of(&self, name: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<String> {
        let service = libregistry::Service::new(
            convert::str_arg("name", name)?,
            convert::str_arg("addr", addr)?,
        );
        Ok(self.inner.key_of(&service))
    }
}

impl Client {
    fn register_services(&self, services: Vec<libregistry::Service>, one: bool) -> Pending {
        let client = self.inner.clone();
        let register = async move {
            let regs = client.register_many(&services).await?;
            Ok(Registered { regs, one })
        };
        Pending::new(register, OnInterrupt::Finish)
    }
}

/// One registered service (the core's `Registration`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Registration {
    inner: Arc<libregistry::Registration>,
}

#[pymethods]
impl Registration {
    /// The etcd key, e.g. `/micro/127.0.0.1:4000`.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// The service name.
    #[getter]
    fn name(&self) -> String {
        self.inner.service().name().to_string()
    }

    /// The address, `host:port`.
    #[getter]
    fn addr(&self) -> String {
        self.inner.service().addr().to_string()
    }

    /// The metadata given to `register` and `update` (as text).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in self.inner.service().metadata() {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    /// False once `deregister` was called or the client closed.
    #[getter]
    fn registered(&self) -> bool {
        self.inner.is_registered()
    }

    /// Changes metadata and rewrites the value in place.
    fn update(&self, changes: &Bound<'_, PyAny>) -> PyResult<Pending> {
        let pairs = convert::metadata_arg("changes", changes)?;
        let reg = self.inner.clone();
        Ok(Pending::new(
            async move { reg.update(pairs).await },
            OnInterrupt::Finish,
        ))
    }

    /// Whether it is withdrawn (by `withdraw` or a failing health check).
    #[getter]
    fn withdrawn(&self) -> bool {
        self.inner.is_withdrawn()
    }

    /// Takes the key out of etcd, keeping the registration, until `restore`.
    fn withdraw(&self) -> Pending {
        let reg = self.inner.clone();
        Pending::new(async move { reg.withdraw().await }, OnInterrupt::Finish)
    }

    /// Writes a withdrawn registration back.
    fn restore(&self) -> Pending {
        let reg = self.inner.clone();
        Pending::new(async move { reg.restore().await }, OnInterrupt::Finish)
    }

    /// Deletes the key; calling it again does nothing.
    fn deregister(&self) -> Pending {
        let reg = self.inner.clone();
        Pending::new(async move { reg.deregister().await }, OnInterrupt::Finish)
    }
}

/// A file path: `str` or `os.PathLike`.
fn path_arg(field: &str, value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    value
        .extract::<PathBuf>()
        .map_err(|_| convert::wrong_type(field, "a str or os.PathLike path", value))
}
