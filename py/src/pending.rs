//! `Pending`: a call into the core that has not run yet, waited for one of
//! two ways. Every native method that talks to etcd returns one, so each
//! operation is written once for the blocking and the asyncio API:
//!
//! - `wait()`: the calling Python thread drives the call with the GIL
//!   released, in slices of the core's [`libregistry::blocking::poll_for`],
//!   checking for signals (Ctrl-C) between them. An interrupted call either
//!   finishes in the background with its outcome undone (a registration is
//!   deregistered, a client closed) or is dropped (a wait for a change,
//!   which loses nothing), as its maker chose.
//! - `future()`: an asyncio future of the running loop. The call runs on the
//!   library runtime; the dispatcher thread ([`crate::dispatch`], never the
//!   runtime's thread, which must not wait for the GIL) hands the outcome
//!   to the loop with `call_soon_threadsafe`, where it becomes the future's
//!   result, or is undone when the future was cancelled meanwhile. That
//!   thread is Python's and stops before the interpreter finalizes (see
//!   `libregistry::blocking::begin_host_exit` for why).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use crate::dispatch::{self, Item};
use crate::errors;

/// How long the GIL stays released before signals are checked again.
const SIGNAL_CHECK_SLICE: Duration = Duration::from_millis(50);

/// What a finished call gives Python, or undoes when nobody takes it.
pub trait Outcome: Send + 'static {
    /// The Python value of the outcome.
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>>;
    /// Undoes the outcome nobody will see (the caller went away).
    fn abandon(self: Box<Self>) {}
}

impl Outcome for () {
    fn into_py(self: Box<Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(py.None())
    }
}

type Call = Pin<Box<dyn Future<Output = libregistry::Result<Box<dyn Outcome>>> + Send>>;

/// What becomes of a blocking wait interrupted by a signal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// The call goes on in the background; its outcome is abandoned.
    Finish,
    /// The call is dropped (safe for waits that take nothing until they return).
    Drop,
}

/// A call into the core, not started until waited for (once).
#[pyclass(frozen, module = "libregistry._native")]
pub struct Pending {
    call: Mutex<Option<Call>>,
    on_interrupt: OnInterrupt,
}

impl Pending {
    /// A call whose outcome is `fut`'s.
    pub fn new<T, F>(fut: F, on_interrupt: OnInterrupt) -> Pending
    where
        T: Outcome,
        F: Future<Output = libregistry::Result<T>> + Send + 'static,
    {
        let call: Call =
            Box::pin(async move { fut.await.map(|t| Box::new(t) as Box<dyn Outcome>) });
        Pending {
            call: Mutex::new(Some(call)),
            on_interrupt,
        }
    }

    fn take(&self) -> PyResult<Call> {
        self.call
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this call was already waited for"))
    }
}

#[pymethods]
impl Pending {
    /// Runs the call to its end with the GIL released; Ctrl-C raises at once.
    fn wait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut call = self.take()?;
        loop {
            let step = py.detach(|| libregistry::blocking::poll_for(&mut call, SIGNAL_CHECK_SLICE));
            match step {
                Err(e) => return Err(errors::to_py(py, e)),
                Ok(Some(Ok(outcome))) => return outcome.into_py(py),
                Ok(Some(Err(e))) => return Err(errors::to_py(py, e)),
                Ok(None) => {}
            }
            if let Err(signal_raised) = py.check_signals() {
                if self.on_interrupt == OnInterrupt::Finish {
                    let _ = libregistry::spawn(async move {
                        let _undone = call.await.map(|o| Undelivered(Some(o)));
                    });
                }
                return Err(signal_raised);
            }
        }
    }

    /// Starts the call and returns an asyncio future of the running loop
    /// (`RuntimeError` outside one, and then nothing is started). The
    /// dispatcher thread must run (`libregistry._dispatch.ensure_running`).
    fn future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let call = self.take()?;
        let done_loop = event_loop.unbind();
        let done_future = future.clone().unbind();
        libregistry::spawn(async move {
            let outcome = call.await;
            dispatch::send(Item::Call(Box::new(move |py| {
                resolver(py, done_loop, done_future, outcome)
            })));
        })
        .map_err(|e| errors::to_py(py, e))?;
        Ok(future.unbind())
    }
}

/// An outcome not handed to Python yet: undone when dropped undelivered
/// (its future was cancelled, its loop closed).
struct Undelivered(Option<Box<dyn Outcome>>);

impl Drop for Undelivered {
    fn drop(&mut self) {
        if let Some(outcome) = self.0.take() {
            outcome.abandon();
        }
    }
}

/// `(loop.call_soon_threadsafe, resolve, future)` for the dispatcher
/// thread to call: in the loop, `resolve(future)` makes the outcome the
/// future's result or exception, or undoes it when the future is already
/// done (cancelled). A closed loop refuses the call: `resolve` drops, and
/// the outcome is undone with it.
fn resolver(
    py: Python<'_>,
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    outcome: libregistry::Result<Box<dyn Outcome>>,
) -> PyResult<(Py<PyAny>, Py<PyAny>, Py<PyAny>)> {
    let slot = Mutex::new(Some(outcome.map(|o| Undelivered(Some(o)))));
    let resolve = PyCFunction::new_closure(py, None, None, move |args, _kwargs| {
        let future = args.get_item(0)?;
        let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(outcome) = taken else {
            return Ok(());
        };
        if future.call_method0("done")?.is_truthy()? {
            return Ok(()); // cancelled: the outcome is undone as it drops
        }
        let py = future.py();
        let value = outcome
            .map_err(|e| errors::to_py(py, e))
            .and_then(|mut u| u.0.take().map_or_else(|| Ok(py.None()), |o| o.into_py(py)));
        match value {
            Ok(value) => future.call_method1("set_result", (value,))?,
            Err(err) => future.call_method1("set_exception", (err.into_value(py),))?,
        };
        Ok::<(), PyErr>(())
    })?;
    let schedule = event_loop.bind(py).getattr("call_soon_threadsafe")?;
    Ok((schedule.unbind(), resolve.into_any().unbind(), future))
}
