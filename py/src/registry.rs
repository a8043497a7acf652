//! `Client` and `Registration`: thin handles over the core's async client
//! (its discovery calls are in [`crate::discovery`]).
//! Blocking methods wait with the GIL released (see [`crate::wait`]); the
//! `*_async` twins return asyncio futures. The pure-Python classes in
//! `libregistry` (`Registry`, `AsyncRegistry`, ...) are built on these.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{self, Pairs};
use crate::discovery::{self, WatchArgs};
use crate::dispatch;
use crate::errors;
use crate::options;
use crate::wait::{self, Undo};

/// Undo of an interrupted connect: close the client nobody holds.
fn close_unwanted(client: libregistry::Client) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _ = client.close().await;
    })
}

/// Undo of an interrupted register: deregister what nobody holds.
fn deregister_unwanted(
    regs: Vec<libregistry::Registration>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        for reg in regs {
            let _ = reg.deregister().await;
        }
    })
}

/// A connection to etcd holding one lease (the core's `Client`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Client {
    inner: libregistry::Client,
    closed: AtomicBool,
}

impl Client {
    fn wrap(
        py: Python<'_>,
        inner: libregistry::Client,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Client> {
        if let Some(callback) = on_event {
            dispatch::forward_events(&inner, callback).map_err(|e| errors::to_py(py, e))?;
        }
        Ok(Client {
            inner,
            closed: AtomicBool::new(false),
        })
    }

    /// The core client.
    pub fn core(&self) -> &libregistry::Client {
        &self.inner
    }

    /// Closes in the background (a connect whose caller went away).
    pub fn abandon(&self) {
        let client = self.inner.clone();
        let _ = libregistry::spawn(async move {
            let _ = client.close().await;
        });
    }

    fn registrations(
        py: Python<'_>,
        regs: Vec<libregistry::Registration>,
        given: Vec<Pairs>,
    ) -> PyResult<Py<PyAny>> {
        let list = PyList::empty(py);
        for (reg, pairs) in regs.into_iter().zip(given) {
            list.append(Registration::new(reg, pairs))?;
        }
        Ok(list.into_any().unbind())
    }
}

#[pymethods]
impl Client {
    /// Connects and grants the lease, blocking (GIL released) up to the
    /// request timeout. Keywords: see `crate::options`.
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Client> {
        let args = options::from_kwargs(py, kwargs)?;
        let undo: Undo<libregistry::Client> = close_unwanted;
        let inner = wait::block(py, libregistry::Client::connect(args.options), Some(undo))?;
        Client::wrap(py, inner, args.on_event)
    }

    /// Connects without blocking: an asyncio future of a `Client`.
    #[staticmethod]
    #[pyo3(signature = (**kwargs))]
    fn connect_async(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        let args = options::from_kwargs(py, kwargs)?;
        let on_event = args.on_event;
        wait::start_async(
            py,
            libregistry::Client::connect(args.options),
            move |py, inner| Ok(Py::new(py, Client::wrap(py, inner, on_event)?)?.into_any()),
        )
    }

    /// Registers one service; returns once etcd confirmed it.
    #[pyo3(signature = (name, addr, metadata=None))]
    fn register(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Registration> {
        let (service, pairs) = convert::service(py, name, addr, metadata)?;
        let client = self.inner.clone();
        let undo: Undo<Vec<libregistry::Registration>> = deregister_unwanted;
        let mut regs = wait::block(
            py,
            async move { client.register_many(std::slice::from_ref(&service)).await },
            Some(undo),
        )?;
        let reg = regs.pop().ok_or_else(|| {
            errors::to_py(
                py,
                libregistry::Error::Etcd("no registration returned".into()),
            )
        })?;
        Ok(Registration::new(reg, pairs))
    }

    /// `register` as an asyncio future.
    #[pyo3(signature = (name, addr, metadata=None))]
    fn register_async(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (service, pairs) = convert::service(py, name, addr, metadata)?;
        let client = self.inner.clone();
        wait::start_async(
            py,
            async move { client.register(&service).await },
            move |py, reg| Ok(Py::new(py, Registration::new(reg, pairs))?.into_any()),
        )
    }

    /// Registers many services at once, all or nothing.
    fn register_many(&self, py: Python<'_>, services: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (services, given): (Vec<_>, Vec<_>) =
            convert::services(py, services)?.into_iter().unzip();
        let client = self.inner.clone();
        let undo: Undo<Vec<libregistry::Registration>> = deregister_unwanted;
        let regs = wait::block(
            py,
            async move { client.register_many(&services).await },
            Some(undo),
        )?;
        Client::registrations(py, regs, given)
    }

    /// `register_many` as an asyncio future.
    fn register_many_async(
        &self,
        py: Python<'_>,
        services: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (services, given): (Vec<_>, Vec<_>) =
            convert::services(py, services)?.into_iter().unzip();
        let client = self.inner.clone();
        wait::start_async(
            py,
            async move { client.register_many(&services).await },
            move |py, regs| Client::registrations(py, regs, given),
        )
    }

    /// Reads every instance of service `name` once (`list[Instance]`, sorted by key).
    fn discover<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        discovery::discover(py, &self.inner, name)
    }

    /// `discover` as an asyncio future.
    fn discover_async(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        discovery::discover_async(py, &self.inner, name)
    }

    /// Starts a watcher on service `name`; returns once its first list is read.
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
    ) -> PyResult<discovery::Watcher> {
        let args = WatchArgs::new(
            py,
            name,
            zone,
            region,
            env,
            deployment,
            round_robin,
            on_change,
        )?;
        discovery::watch(py, &self.inner, args)
    }

    /// `watch` as an asyncio future of a `Watcher`.
    #[pyo3(signature = (name, *, zone=None, region=None, env=None, deployment=None, round_robin=None, on_change=None))]
    #[allow(clippy::too_many_arguments)]
    fn watch_async(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        zone: Option<&Bound<'_, PyAny>>,
        region: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
        round_robin: Option<&Bound<'_, PyAny>>,
        on_change: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let args = WatchArgs::new(
            py,
            name,
            zone,
            region,
            env,
            deployment,
            round_robin,
            on_change,
        )?;
        discovery::watch_async(py, &self.inner, args)
    }

    /// Revokes the lease: every registration of this client vanishes at once.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.store(true, Ordering::SeqCst);
        let client = self.inner.clone();
        wait::block(py, async move { client.close().await }, None)
    }

    /// `close` as an asyncio future.
    fn close_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.closed.store(true, Ordering::SeqCst);
        let client = self.inner.clone();
        wait::start_async(py, async move { client.close().await }, wait::to_none)
    }

    /// The lease currently held (`None` while healing or after close).
    #[getter]
    fn lease_id(&self) -> Option<i64> {
        self.inner.lease_id()
    }

    /// The TTL etcd granted, in seconds.
    #[getter]
    fn granted_ttl(&self) -> u32 {
        self.inner.granted_ttl_secs()
    }

    /// The TTL asked for, in seconds.
    #[getter]
    fn ttl(&self) -> u32 {
        self.inner.options().ttl_secs
    }

    /// The etcd endpoints in use.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.options().endpoints.clone()
    }

    /// The key prefix (empty or `/...`).
    #[getter]
    fn prefix(&self) -> String {
        self.inner.options().prefix.clone()
    }

    /// The deadline of each request to etcd, in seconds.
    #[getter]
    fn request_timeout(&self) -> f64 {
        self.inner.options().request_timeout.as_secs_f64()
    }

    /// Whether keys deleted by someone else are put back.
    #[getter]
    fn heal_deleted_keys(&self) -> bool {
        self.inner.options().heal_deleted_keys
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The key `name` at `addr` is (or would be) registered under.
    fn key_of(&self, name: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<String> {
        let service = libregistry::Service::new(
            convert::str_arg("name", name)?,
            convert::str_arg("addr", addr)?,
        );
        Ok(self.inner.key_of(&service))
    }

    fn __repr__(&self) -> String {
        format!(
            "Client(endpoints={:?}, prefix={:?}, lease_id={})",
            self.inner.options().endpoints,
            self.inner.options().prefix,
            self.inner
                .lease_id()
                .map(|id| format!("{id:#x}"))
                .unwrap_or_else(|| "None".into()),
        )
    }
}

/// One registered service (the core's `Registration`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Registration {
    inner: Arc<libregistry::Registration>,
    metadata: Mutex<Pairs>,
    deregistered: AtomicBool,
}

impl Registration {
    fn new(inner: libregistry::Registration, metadata: Pairs) -> Registration {
        Registration {
            inner: Arc::new(inner),
            metadata: Mutex::new(metadata),
            deregistered: AtomicBool::new(false),
        }
    }

    /// Deregisters in the background (a register whose caller went away).
    pub fn abandon(&self) {
        self.deregistered.store(true, Ordering::SeqCst);
        let reg = self.inner.clone();
        let _ = libregistry::spawn(async move {
            let _ = reg.deregister().await;
        });
    }

    fn merge(&self, changes: Pairs) {
        let mut metadata = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        for (key, value) in changes {
            match metadata.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => metadata.push((key, value)),
            }
        }
    }
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
        for (key, value) in self
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    /// False once `deregister` was called.
    #[getter]
    fn registered(&self) -> bool {
        !self.deregistered.load(Ordering::SeqCst)
    }

    /// Changes metadata and rewrites the value in place.
    fn update(&self, py: Python<'_>, changes: &Bound<'_, PyAny>) -> PyResult<()> {
        let pairs = convert::metadata_arg("changes", changes)?;
        let reg = self.inner.clone();
        let sent = pairs.clone();
        wait::block(py, async move { reg.update(sent).await }, None)?;
        self.merge(pairs);
        Ok(())
    }

    /// `update` as an asyncio future.
    fn update_async(slf: &Bound<'_, Self>, changes: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let pairs = convert::metadata_arg("changes", changes)?;
        let reg = slf.get().inner.clone();
        let sent = pairs.clone();
        let this = slf.clone().unbind();
        wait::start_async(py, async move { reg.update(sent).await }, move |py, ()| {
            this.get().merge(pairs);
            Ok(py.None())
        })
    }

    /// Deletes the key; calling it again does nothing.
    fn deregister(&self, py: Python<'_>) -> PyResult<()> {
        self.deregistered.store(true, Ordering::SeqCst);
        let reg = self.inner.clone();
        wait::block(py, async move { reg.deregister().await }, None)
    }

    /// `deregister` as an asyncio future.
    fn deregister_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.deregistered.store(true, Ordering::SeqCst);
        let reg = self.inner.clone();
        wait::start_async(py, async move { reg.deregister().await }, wait::to_none)
    }

    fn __repr__(&self) -> String {
        format!("Registration(key={:?})", self.inner.key())
    }
}
