//! A hidden helper for `scripts/bench-python.sh`: times registrations made
//! by the Rust core's blocking API, so Python's figures can be compared
//! with the core's in the same run against the same etcd.

use std::time::Instant;

use pyo3::prelude::*;

use crate::convert;
use crate::errors;

/// Registers `count` services `name` at `127.0.0.1:{first_port + i}` with the
/// core's blocking client (GIL released throughout) and returns each
/// register's latency in nanoseconds. The client is closed afterwards.
#[pyfunction]
#[pyo3(signature = (endpoints, name, first_port, count, metadata=None))]
pub fn bench_core_register(
    py: Python<'_>,
    endpoints: Vec<String>,
    name: String,
    first_port: u16,
    count: u16,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u64>> {
    let pairs = match metadata {
        Some(m) if !m.is_none() => convert::metadata_arg("metadata", m)?,
        _ => Vec::new(),
    };
    let result = py.detach(move || -> libregistry::Result<Vec<u64>> {
        let client = libregistry::blocking::Client::connect(
            libregistry::Options::new().endpoints(endpoints),
        )?;
        let mut took = Vec::with_capacity(count.into());
        for i in 0..count {
            let mut service = libregistry::Service::new(
                name.clone(),
                format!("127.0.0.1:{}", first_port.saturating_add(i)),
            );
            for (key, value) in &pairs {
                service.set(key, value.as_str())?;
            }
            let start = Instant::now();
            client.register(&service)?;
            took.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        client.close()?;
        Ok(took)
    });
    result.map_err(|e| errors::to_py(py, e))
}
