//! A hidden helper for `scripts/bench-python.sh`: the Rust core's own
//! blocking client, timed in Rust, so that Python's register latency can be
//! compared with the core's call by call, in the same run against the same etcd.

use std::time::Instant;

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
        let (service, _) = convert::service(py, name, addr, metadata)?;
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
