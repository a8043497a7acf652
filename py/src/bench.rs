//! Hidden helpers for `scripts/bench-python.sh`: the Rust core's own
//! blocking client, timed in Rust, so that Python's register latency can be
//! compared with the core's call by call, in the same run against the same
//! etcd; and a core watcher whose callback is timed in Rust, next to which
//! Python's watchers are timed.

use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::convert;
use crate::errors;

/// A core `blocking::Client` whose registrations are timed in Rust.
#[pyclass(frozen, module = "libregistry._native")]
pub struct BenchCore {
    client: libregistry::blocking::Client,
}

#[pymethods]
impl BenchCore {
    /// Connects with the core's blocking API (GIL released).
    #[new]
    fn new(py: Python<'_>, endpoints: Vec<String>) -> PyResult<BenchCore> {
        py.detach(|| {
            libregistry::blocking::Client::connect(libregistry::Options::new().endpoints(endpoints))
        })
        .map(|client| BenchCore { client })
        .map_err(|e| errors::to_py(py, e))
    }

    /// Registers like `blocking::Client::register` and returns how long that
    /// call took, in nanoseconds. The service is built before the clock starts.
    #[pyo3(signature = (name, addr, metadata=None))]
    fn register(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let service = convert::service(py, name, addr, metadata)?;
        let took = py.detach(|| {
            let start = Instant::now();
            self.client
                .register(&service)
                .map(|_| u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
        });
        took.map_err(|e| errors::to_py(py, e))
    }

    /// Revokes the lease.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.client.close())
            .map_err(|e| errors::to_py(py, e))
    }
}

/// A core watcher (on a `Client`'s connection) that notes when its callback,
/// on the library runtime, saw each instance added.
#[pyclass(frozen, module = "libregistry._native")]
pub struct BenchWatch {
    _watcher: libregistry::Watcher,
    added: Mutex<mpsc::Receiver<(String, Instant)>>,
    /// An instant and Python's `time.perf_counter_ns()` read together, to
    /// give Rust instants on Python's clock.
    base: (Instant, i128),
}

#[pymethods]
impl BenchWatch {
    /// Watches `name` through `client`'s connection with the core's own API.
    #[new]
    fn new(py: Python<'_>, client: &crate::registry::Client, name: String) -> PyResult<BenchWatch> {
        let core = client.core().clone();
        let started = py.detach(|| {
            let mut watch = Box::pin(core.watch_with(&name, libregistry::PickPolicy::default()));
            libregistry::blocking::poll_for(&mut watch, Duration::from_secs(60))
        });
        let watcher = match started {
            Ok(Some(Ok(watcher))) => watcher,
            Ok(Some(Err(e))) | Err(e) => return Err(errors::to_py(py, e)),
            Ok(None) => return Err(PyRuntimeError::new_err("watch took over 60 s")),
        };
        let (tx, rx) = mpsc::channel();
        watcher
            .on_change(move |change| {
                if let libregistry::Change::Added(i) = change {
                    let _ = tx.send((i.addr.clone(), Instant::now()));
                }
            })
            .map_err(|e| errors::to_py(py, e))?;
        let perf_counter_ns = py.import("time")?.getattr("perf_counter_ns")?;
        let before = Instant::now();
        let ns: i128 = perf_counter_ns.call0()?.extract()?;
        let after = Instant::now();
        Ok(BenchWatch {
            _watcher: watcher,
            added: Mutex::new(rx),
            base: (before + (after - before) / 2, ns),
        })
    }

    /// The next address added and when the core's callback saw it, on
    /// `time.perf_counter_ns()`'s clock; `None` after `timeout_secs`.
    fn next(&self, py: Python<'_>, timeout_secs: f64) -> Option<(String, i128)> {
        let (base, base_ns) = self.base;
        py.detach(|| {
            let rx = self.added.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(Duration::from_secs_f64(timeout_secs)).ok()
        })
        .map(|(addr, at)| {
            let ns = if at >= base {
                base_ns + (at - base).as_nanos() as i128
            } else {
                base_ns - (base - at).as_nanos() as i128
            };
            (addr, ns)
        })
    }
}
