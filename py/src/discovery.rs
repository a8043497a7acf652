//! `Watcher`: a live, cached view of one service (the core's `Watcher`):
//! `instances`, `pick` and ordered changes.
//!
//! The core keeps the cache and the bounded queue of unread changes, and
//! knows when it is closed or inherited through `fork()`; this handle
//! translates. A watcher's changes go either to `next_change` (a
//! [`Pending`]: a wait that can be abandoned without losing a change) or,
//! when the user gave `on_change`, through the dispatcher queue to a Python
//! thread that calls it ([`crate::dispatch`]): the runtime thread never
//! waits for the GIL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert;
use crate::dispatch::{self, ChangeSink};
use crate::errors;
use crate::instance::{self, Instance};
use crate::pending::{OnInterrupt, Outcome, Pending};

/// A snapshot of the core's cache and the Python list made of it.
type Listed = (Arc<Vec<libregistry::Instance>>, Py<PyList>);

/// A pick policy as Python sees it: `(zone, region, env, deployment, round_robin)`.
type PolicyTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The checked arguments of `watch`.
pub struct WatchArgs {
    pub name: String,
    pub policy: libregistry::PickPolicy,
    pub on_change: Option<Py<PyAny>>,
}

/// Starts a watcher; done once its first list is read.
pub fn watch(client: &libregistry::Client, args: WatchArgs) -> Pending {
    let client = client.clone();
    let WatchArgs {
        name,
        policy,
        on_change,
    } = args;
    let start = async move {
        let core = client.watch_with(&name, policy).await?;
        Ok(Started { core, on_change })
    };
    // Interrupted: the watcher made meanwhile is dropped, which stops it.
    Pending::new(start, OnInterrupt::Finish)
}

/// A started core watcher, handed to Python with its `on_change` in place.
struct Started {
    core: libregistry::Watcher,
    on_change: Option<Py<PyAny>>,
}

impl Outcome for Started {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let sink = match self.on_change {
            Some(callback) => {
                let sink = Arc::new(ChangeSink {
                    callback,
                    closed: AtomicBool::new(false),
                });
                let (queue, forwarded) = (dispatch::sender(), sink.clone());
                self.core
                    .on_change(move |change| {
                        let _ =
                            queue.send(dispatch::Item::Change(forwarded.clone(), change.clone()));
                    })
                    .map_err(|e| errors::to_py(py, e))?;
                Some(sink)
            }
            None => None,
        };
        let watcher = Watcher {
            name: self.core.name().to_string(),
            core: Arc::new(self.core),
            sink,
            listed: Mutex::new(None),
        };
        Ok(Py::new(py, watcher)?.into_any())
    }
}

/// What a wait for a change ended with.
enum NextChange {
    /// `(kind, Instance)`, or `None` when none came in time.
    Came(Option<libregistry::Change>),
    /// The watcher (of this name) was closed meanwhile.
    Closed(String),
}

impl Outcome for NextChange {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match *self {
            NextChange::Came(Some(change)) => Ok(instance::change_to_py(change)
                .into_pyobject(py)?
                .into_any()
                .unbind()),
            NextChange::Came(None) => Ok(py.None()),
            NextChange::Closed(name) => {
                Err(errors::closed(py, format!("watcher of {name:?} is closed")))
            }
        }
    }
}

/// A live, cached view of one service (the core's `Watcher`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Watcher {
    name: String,
    core: Arc<libregistry::Watcher>,
    /// Where changes go when the user gave `on_change`.
    sink: Option<Arc<ChangeSink>>,
    /// The last snapshot and the list made of it: `instances()` copies the
    /// list (not the instances) until the cache changes.
    listed: Mutex<Option<Listed>>,
}

impl Watcher {
    /// The core watcher, once it is known to be usable (not closed, not forked).
    fn usable(&self, py: Python<'_>) -> PyResult<&libregistry::Watcher> {
        match self.core.check() {
            Ok(()) => Ok(&self.core),
            Err(libregistry::Error::Closed) => Err(self.closed_error(py)),
            Err(e) => Err(errors::to_py(py, e)),
        }
    }

    fn closed_error(&self, py: Python<'_>) -> PyErr {
        errors::closed(py, format!("watcher of {:?} is closed", self.name))
    }
}

#[pymethods]
impl Watcher {
    /// The service watched.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Unread changes folded into their net effect so far.
    #[getter]
    fn squashed(&self) -> u64 {
        self.core.squashed()
    }

    /// The cached instances, sorted by key. Never waits on the network.
    fn instances<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snapshot = self.usable(py)?.instances();
        let cached = match lock(&self.listed).as_ref() {
            Some((seen, list)) if Arc::ptr_eq(seen, &snapshot) => Some(list.clone_ref(py)),
            _ => None,
        };
        let list = match cached {
            Some(list) => list.into_bound(py),
            None => {
                let list = instance::to_list(py, snapshot.iter().cloned())?;
                let replaced = lock(&self.listed).replace((snapshot, list.clone().unbind()));
                drop(replaced); // outside the lock
                list
            }
        };
        // A copy: the caller may change their list, never our cache.
        Ok(list.get_slice(0, list.len()))
    }

    /// An instance chosen by the policy; `None` when none qualifies.
    fn pick(&self, py: Python<'_>) -> PyResult<Option<Instance>> {
        Ok(self.usable(py)?.pick().map(Instance::from))
    }

    /// `(zone, region, env, deployment, round_robin)` in force.
    fn policy(&self, py: Python<'_>) -> PyResult<PolicyTuple> {
        let p = self.usable(py)?.policy();
        let round_robin = p.balance == libregistry::Balance::RoundRobin;
        Ok((p.zone, p.region, p.env, p.deployment, round_robin))
    }

    /// Replaces the pick policy (the keywords of `watch`).
    #[pyo3(signature = (*, zone=None, region=None, env=None, deployment=None, round_robin=None))]
    fn set_policy(
        &self,
        py: Python<'_>,
        zone: Option<&Bound<'_, PyAny>>,
        region: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
        round_robin: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let policy = convert::pick_policy(py, zone, region, env, deployment, round_robin)?;
        self.usable(py)?.set_policy(policy);
        Ok(())
    }

    /// The next change as `(kind, Instance)`, waiting up to `timeout`
    /// seconds (`None`: no limit); `None` on timeout; `ClosedError` once
    /// closed. An abandoned wait (Ctrl-C, a cancelled future) loses no change.
    #[pyo3(signature = (timeout=None))]
    fn next_change(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Pending> {
        let timeout = convert::optional_seconds("timeout", timeout)?;
        self.usable(py)?;
        if self.sink.is_some() {
            return Err(PyRuntimeError::new_err(format!(
                "the changes of this watcher of {:?} go to its on_change callback",
                self.name
            )));
        }
        let (core, name) = (self.core.clone(), self.name.clone());
        let next = async move {
            match core.next_change_within(timeout).await {
                Err(libregistry::Error::Closed) => Ok(NextChange::Closed(name)),
                other => other.map(NextChange::Came),
            }
        };
        Ok(Pending::new(next, OnInterrupt::Drop))
    }

    /// Stops watching; `instances`, `pick` and `next_change` raise
    /// `ClosedError` from now on. Calling it again does nothing.
    fn close(&self) {
        if let Some(sink) = &self.sink {
            sink.closed.store(true, Ordering::SeqCst);
        }
        self.core.close();
        let listed = lock(&self.listed).take();
        drop(listed);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(sink) = &self.sink {
            sink.closed.store(true, Ordering::SeqCst);
        }
    }
}

/// What a one-shot read found: a `list[Instance]`.
pub struct Found(pub Vec<libregistry::Instance>);

impl Outcome for Found {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(instance::to_list(py, self.0)?.into_any().unbind())
    }
}
