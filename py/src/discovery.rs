//! The consumer side over the core's discovery: `discover` (one read) and
//! `Watcher` (a live cache with `instances`, `pick` and ordered changes).
//!
//! The core hands a watcher's changes to a callback on its runtime thread,
//! which must never wait for the GIL. That callback only queues: into the
//! watcher's own [`Queue`], read by `next_change` with the GIL released (or
//! by an asyncio future), or, when the user gave `on_change`, into the
//! dispatcher queue, whose Python thread calls it ([`crate::dispatch`]).
//! Waiting on the queue can be abandoned at any point (timeout, Ctrl-C, a
//! cancelled task) without losing a change, unlike the core's
//! `next_change`, whose receiver is lost when its future is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::changes::{Next, Queue};
use crate::convert;
use crate::dispatch::{self, Item};
use crate::errors;
use crate::instance::{self, Instance};
use crate::wait;

/// An `on_change` callback and its watcher's closed flag, for the dispatcher.
pub struct ChangeSink {
    pub callback: Py<PyAny>,
    pub closed: Arc<AtomicBool>,
}

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

/// `(kind, instance)` of a change, for `libregistry._discovery` to build its class.
pub fn change_to_py<'py>(
    py: Python<'py>,
    change: libregistry::Change,
) -> PyResult<Bound<'py, PyTuple>> {
    use libregistry::Change as C;
    let (kind, instance) = match change {
        C::Added(i) => ("added", i),
        C::Updated(i) => ("updated", i),
        C::Removed(i) => ("removed", i),
    };
    PyTuple::new(
        py,
        [
            kind.into_pyobject(py)?.into_any(),
            Py::new(py, Instance::from(instance))?
                .into_bound(py)
                .into_any(),
        ],
    )
}

/// Reads every instance of `name` once, blocking with the GIL released.
pub fn discover<'py>(
    py: Python<'py>,
    client: &libregistry::Client,
    name: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let name = convert::str_arg("name", name)?;
    let client = client.clone();
    let found = wait::block(py, async move { client.discover(&name).await }, None)?;
    instance::to_list(py, found)
}

/// `discover` as an asyncio future of a `list[Instance]`.
pub fn discover_async(
    py: Python<'_>,
    client: &libregistry::Client,
    name: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let name = convert::str_arg("name", name)?;
    let client = client.clone();
    wait::start_async(
        py,
        async move { client.discover(&name).await },
        |py, found| Ok(instance::to_list(py, found)?.into_any().unbind()),
    )
}

/// The checked arguments of `watch`.
pub struct WatchArgs {
    name: String,
    policy: libregistry::PickPolicy,
    on_change: Option<Py<PyAny>>,
}

impl WatchArgs {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        zone: Option<&Bound<'_, PyAny>>,
        region: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
        round_robin: Option<&Bound<'_, PyAny>>,
        on_change: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WatchArgs> {
        Ok(WatchArgs {
            name: convert::str_arg("name", name)?,
            policy: convert::pick_policy(py, zone, region, env, deployment, round_robin)?,
            on_change: convert::callback_arg("on_change", on_change)?,
        })
    }
}

/// Starts a watcher, blocking (GIL released) until its first list is read.
pub fn watch(py: Python<'_>, client: &libregistry::Client, args: WatchArgs) -> PyResult<Watcher> {
    let client = client.clone();
    let WatchArgs {
        name,
        policy,
        on_change,
    } = args;
    // Interrupted: the watcher made meanwhile is dropped, which stops it.
    let core = wait::block(
        py,
        async move { client.watch_with(&name, policy).await },
        None,
    )?;
    Watcher::new(py, core, on_change)
}

/// `watch` as an asyncio future of a `Watcher`.
pub fn watch_async(
    py: Python<'_>,
    client: &libregistry::Client,
    args: WatchArgs,
) -> PyResult<Py<PyAny>> {
    let client = client.clone();
    let WatchArgs {
        name,
        policy,
        on_change,
    } = args;
    wait::start_async(
        py,
        async move { client.watch_with(&name, policy).await },
        move |py, core| Ok(Py::new(py, Watcher::new(py, core, on_change)?)?.into_any()),
    )
}

/// A live, cached view of one service (the core's `Watcher`).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Watcher {
    name: String,
    /// The process that made it: after `fork()` the core's task is not there.
    pid: u32,
    /// `None` once closed (dropping the core's watcher stops it).
    core: Mutex<Option<libregistry::Watcher>>,
    /// Where `next_change` reads; `None` when changes go to `on_change`.
    changes: Option<Queue>,
    closed: Arc<AtomicBool>,
    /// The last snapshot and the list made of it: `instances()` copies the
    /// list (not the instances) until the cache changes.
    listed: Mutex<Option<Listed>>,
}

impl Watcher {
    fn new(
        py: Python<'_>,
        core: libregistry::Watcher,
        on_change: Option<Py<PyAny>>,
    ) -> PyResult<Watcher> {
        let closed = Arc::new(AtomicBool::new(false));
        let changes = match on_change {
            Some(callback) => {
                let sink = Arc::new(ChangeSink {
                    callback,
                    closed: closed.clone(),
                });
                let queue = dispatch::sender();
                core.on_change(move |change| {
                    let _ = queue.send(Item::Change(sink.clone(), change.clone()));
                })
                .map_err(|e| errors::to_py(py, e))?;
                None
            }
            None => {
                let queue = Queue::default();
                let forward = queue.clone();
                core.on_change(move |change| forward.push(change))
                    .map_err(|e| errors::to_py(py, e))?;
                Some(queue)
            }
        };
        Ok(Watcher {
            name: core.name().to_string(),
            pid: std::process::id(),
            core: Mutex::new(Some(core)),
            changes,
            closed,
            listed: Mutex::new(None),
        })
    }

    fn forked(&self) -> bool {
        self.pid != std::process::id()
    }

    fn check_pid(&self, py: Python<'_>) -> PyResult<()> {
        if self.forked() {
            return Err(errors::to_py(
                py,
                libregistry::Error::Forked {
                    created_in: self.pid,
                    now_in: std::process::id(),
                },
            ));
        }
        Ok(())
    }

    fn closed_error(&self, py: Python<'_>) -> PyErr {
        errors::closed(py, format!("watcher of {:?} is closed", self.name))
    }

    /// Runs `f` on the core's watcher; `ClosedError` / `ForkedError` when it is gone.
    fn with_core<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&libregistry::Watcher) -> R,
    ) -> PyResult<R> {
        self.check_pid(py)?;
        match lock(&self.core).as_ref() {
            Some(core) => Ok(f(core)),
            None => Err(self.closed_error(py)),
        }
    }

    /// The queue `next_change` reads, or why there is none.
    fn changes(&self, py: Python<'_>) -> PyResult<Queue> {
        self.check_pid(py)?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.closed_error(py));
        }
        self.changes.clone().ok_or_else(|| {
            PyRuntimeError::new_err(format!(
                "the changes of this watcher of {:?} go to its on_change callback",
                self.name
            ))
        })
    }

    /// Stops watching; wakes a `next_change` waiting meanwhile. Idempotent.
    pub fn stop(&self) {
        if self.closed.swap(true, Ordering::SeqCst) || self.forked() {
            return; // in a forked child, Drop leaves the parent's state alone
        }
        let core = lock(&self.core).take();
        drop(core);
        if let Some(changes) = &self.changes {
            changes.close();
        }
        let listed = lock(&self.listed).take();
        drop(listed);
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
        self.closed.load(Ordering::SeqCst)
    }

    /// Unread changes folded into others so far (see [`crate::changes`]).
    #[getter]
    fn squashed(&self) -> u64 {
        self.changes.as_ref().map_or(0, Queue::squashed)
    }

    /// Whether changes go to an `on_change` callback (not to `next_change`).
    #[getter]
    fn has_callback(&self) -> bool {
        self.changes.is_none()
    }

    /// The cached instances, sorted by key. Never waits on the network.
    fn instances<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snapshot = self.with_core(py, |core| core.instances())?;
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
        Ok(self.with_core(py, |core| core.pick())?.map(Instance::from))
    }

    /// `(zone, region, env, deployment, round_robin)` in force.
    fn policy(&self, py: Python<'_>) -> PyResult<PolicyTuple> {
        let p = self.with_core(py, |core| core.policy())?;
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
        self.with_core(py, |core| core.set_policy(policy))
    }

    /// The next change as `(kind, Instance)`, waiting (GIL released, Ctrl-C
    /// honoured) up to `timeout` seconds (`None`: no limit); `None` on
    /// timeout; `ClosedError` once closed.
    #[pyo3(signature = (timeout=None))]
    fn next_change<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let timeout = convert::optional_seconds("timeout", timeout)?;
        let changes = self.changes(py)?;
        let next = wait::block_or_drop(py, async move { Ok(changes.next(timeout).await) })?;
        match next {
            Next::Change(change) => Ok(Some(change_to_py(py, change)?)),
            Next::Timeout => Ok(None),
            Next::Closed => Err(self.closed_error(py)),
        }
    }

    /// The next change as an asyncio future of `(kind, Instance)`
    /// (`ClosedError` once closed). Cancelling the future drops the change
    /// it would have carried: await it through `asyncio.shield`.
    fn next_change_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let changes = self.changes(py)?;
        let closed_message = format!("watcher of {:?} is closed", self.name);
        wait::start_async(
            py,
            async move { Ok(changes.next(None).await) },
            move |py, next| match next {
                Next::Change(change) => Ok(change_to_py(py, change)?.into_any().unbind()),
                Next::Timeout | Next::Closed => Err(errors::closed(py, closed_message)),
            },
        )
    }

    /// Stops watching; `instances`, `pick` and `next_change` raise
    /// `ClosedError` from now on. Calling it again does nothing.
    fn close(&self) {
        self.stop();
    }

    fn __repr__(&self) -> String {
        let state = match lock(&self.core).as_ref() {
            Some(core) if !self.forked() => format!("instances={}", core.instances().len()),
            _ => "closed".to_string(),
        };
        format!("Watcher(name={:?}, {state})", self.name)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        if self.forked() {
            // The parent's runtime and its tasks do not exist here: touch nothing.
            let core = self.core.get_mut().unwrap_or_else(|p| p.into_inner());
            std::mem::forget(core.take());
            std::mem::forget(self.changes.take());
        }
    }
}
