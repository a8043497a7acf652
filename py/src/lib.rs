//! `libregistry._native`: the Python binding of the libregistry core.
//!
//! Thin by design: convert arguments ([`convert`], [`options`]), call the
//! core, convert results ([`instance`]) and errors ([`errors`]). Providers
//! register through [`registry`]; consumers read and watch through
//! [`discovery`]. Every call to etcd is a [`pending::Pending`], waited for
//! with the GIL released or as an asyncio future; events and logs reach
//! Python through a queue drained by a Python thread ([`dispatch`],
//! [`logs`]), never on the library runtime. The public API is the
//! pure-Python package around this module.

mod convert;
mod discovery;
mod dispatch;
mod errors;
mod instance;
mod logs;
mod pending;
mod registry;

use pyo3::prelude::*;

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<registry::Client>()?;
    module.add_class::<registry::Registration>()?;
    module.add_class::<instance::Instance>()?;
    module.add_class::<discovery::Watcher>()?;
    module.add_class::<pending::Pending>()?;
    module.add_function(wrap_pyfunction!(dispatch::dispatch_next, module)?)?;
    module.add_function(wrap_pyfunction!(dispatch::dispatch_stop, module)?)?;
    module.add_function(wrap_pyfunction!(dispatch::prepare_exit, module)?)?;
    module.add("CORE_VERSION", libregistry::VERSION)?;
    logs::install();
    Ok(())
}
