//! Waiting for work done on the library runtime, two ways:
//!
//! - [`block`]: the calling Python thread drives the call with the GIL
//!   released, in short slices, checking for signals (Ctrl-C) between them.
//!   An interrupted call leaves nothing behind: its result is undone when it
//!   arrives (a registration is deregistered, a client closed).
//! - [`start_async`]: returns an asyncio future; a completer thread of ours
//!   (never the library runtime's thread, which must not wait for the GIL)
//!   resolves it through `loop.call_soon_threadsafe`.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyList};
use tokio::runtime::Handle;

use crate::errors;

/// How long the GIL stays released before signals are checked again.
const SIGNAL_CHECK_SLICE: Duration = Duration::from_millis(50);

/// What to do with a result nobody waits for any more.
pub type Undo<T> = fn(T) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The library runtime's handle and the process it belongs to; fetched again
/// in a forked child, where the core builds a new runtime.
static HANDLE: Mutex<Option<(u32, Handle)>> = Mutex::new(None);

fn runtime_handle() -> libregistry::Result<Handle> {
    let pid = std::process::id();
    let mut slot = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, handle)) = slot.as_ref() {
        if *owner == pid {
            return Ok(handle.clone());
        }
    }
    let (tx, rx) = mpsc::sync_channel(1);
    libregistry::spawn(async move {
        let _ = tx.send(Handle::current());
    })?;
    let handle = rx
        .recv()
        .map_err(|_| libregistry::Error::Etcd("the libregistry runtime is gone".into()))?;
    if let Some(inherited) = slot.replace((pid, handle.clone())) {
        std::mem::forget(inherited); // the parent's runtime: nothing to release here
    }
    Ok(handle)
}

/// Runs `fut` to completion with the GIL released and maps its error. Like
/// the core's blocking API, the future is driven on the calling thread (the
/// engine itself runs on the library runtime), in slices between which
/// signals are checked: Ctrl-C raises at once, and the call goes on in the
/// background, where a success is passed to `undo`.
pub fn block<T, F>(py: Python<'_>, fut: F, undo: Option<Undo<T>>) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = libregistry::Result<T>> + Send + 'static,
{
    drive(py, Box::pin(fut), move |rest| {
        let _ = libregistry::spawn(async move {
            if let (Ok(value), Some(undo)) = (rest.await, undo) {
                undo(value).await;
            }
        });
    })
}

/// [`block`] for a wait that is safe to abandon (receiving from a channel):
/// on Ctrl-C the future is dropped, so nothing it would have received is lost.
pub fn block_or_drop<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = libregistry::Result<T>> + Send + 'static,
{
    drive(py, Box::pin(fut), drop)
}

/// Polls `fut` in slices with the GIL released; when a signal handler raises
/// between two slices, hands the unfinished future to `interrupted`.
fn drive<T, F>(
    py: Python<'_>,
    mut fut: Pin<Box<F>>,
    interrupted: impl FnOnce(Pin<Box<F>>),
) -> PyResult<T>
where
    T: Send,
    F: Future<Output = libregistry::Result<T>> + Send,
{
    loop {
        let step = py.detach(|| {
            if Handle::try_current().is_ok() {
                // A thread inside another tokio runtime: blocking here would deadlock it.
                return Err(libregistry::Error::InsideRuntime);
            }
            let handle = runtime_handle()?;
            Ok::<_, libregistry::Error>(handle.block_on(async {
                tokio::time::timeout(SIGNAL_CHECK_SLICE, &mut fut)
                    .await
                    .ok()
            }))
        });
        match step {
            Err(e) => return Err(errors::to_py(py, e)),
            Ok(Some(outcome)) => return outcome.map_err(|e| errors::to_py(py, e)),
            Ok(None) => {}
        }
        if let Err(signal_raised) = py.check_signals() {
            interrupted(fut);
            return Err(signal_raised);
        }
    }
}

/// The `finish` of [`start_async`] for calls that return nothing.
pub fn to_none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// Turns a finished result into the Python value of the future (or its exception).
type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A result to hand to an asyncio future.
struct Completion {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    finish: Finish,
}

/// The completer thread's queue; rebuilt in a forked child, where the
/// parent's thread does not exist.
static COMPLETER: Mutex<Option<(u32, mpsc::Sender<Completion>)>> = Mutex::new(None);

fn completer() -> PyResult<mpsc::Sender<Completion>> {
    let pid = std::process::id();
    let mut slot = COMPLETER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, tx)) = slot.as_ref() {
        if *owner == pid {
            return Ok(tx.clone());
        }
    }
    let (tx, rx) = mpsc::channel::<Completion>();
    std::thread::Builder::new()
        .name("libregistry-asyncio".into())
        .spawn(move || {
            for done in rx {
                // Not once the interpreter is shutting down: nobody awaits then.
                if Python::try_attach(|py| deliver(py, done)).is_none() {
                    break;
                }
            }
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the asyncio completer: {e}")))?;
    if let Some(old) = slot.replace((pid, tx.clone())) {
        // A parent's sender: its thread is gone, leave it alone.
        std::mem::forget(old);
    }
    Ok(tx)
}

static RESOLVE: PyOnceLock<Py<PyCFunction>> = PyOnceLock::new();

fn deliver(py: Python<'_>, done: Completion) {
    let (ok, value) = match (done.finish)(py) {
        Ok(value) => (true, value),
        Err(err) => (false, err.into_value(py).into_any()),
    };
    let resolve = match RESOLVE.get_or_try_init(py, || {
        PyCFunction::new_closure(py, None, None, |args, _kwargs| resolve(args)).map(Bound::unbind)
    }) {
        Ok(f) => f.bind(py),
        Err(err) => return err.print(py),
    };
    let scheduled = done.event_loop.bind(py).call_method1(
        "call_soon_threadsafe",
        (resolve, done.future.bind(py), ok, value.bind(py)),
    );
    if scheduled.is_err() {
        // The loop is closed: nobody will ever read this result.
        if ok {
            abandon(value.bind(py));
        }
    }
}

/// Runs in the event loop: sets the future's result unless it was cancelled,
/// in which case the result is undone.
fn resolve(args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
    let (future, ok, value): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = args.extract()?;
    if future.call_method0("done")?.is_truthy()? {
        if ok {
            abandon(&value);
        }
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Undoes a result nobody will see: deregisters registrations, closes
/// clients, stops watchers.
fn abandon(value: &Bound<'_, PyAny>) {
    if let Ok(list) = value.cast::<PyList>() {
        for item in list.iter() {
            abandon(&item);
        }
        return;
    }
    if let Ok(reg) = value.cast::<crate::registry::Registration>() {
        reg.get().abandon();
    } else if let Ok(client) = value.cast::<crate::registry::Client>() {
        client.get().abandon();
    } else if let Ok(watcher) = value.cast::<crate::discovery::Watcher>() {
        watcher.get().stop();
    }
}

/// Runs `fut` on the library runtime and returns an asyncio future of the
/// running loop, resolved with `finish(result)` or the mapped error.
pub fn start_async<T, F, C>(py: Python<'_>, fut: F, finish: C) -> PyResult<Py<PyAny>>
where
    T: Send + 'static,
    F: Future<Output = libregistry::Result<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let tx = completer()?;
    let done_loop = event_loop.unbind();
    let done_future = future.clone().unbind();
    libregistry::spawn(async move {
        let outcome = fut.await;
        let finish: Finish = Box::new(move |py| match outcome {
            Ok(value) => finish(py, value),
            Err(err) => Err(errors::to_py(py, err)),
        });
        // A failed send means the process is going away; nothing to resolve.
        let _ = tx.send(Completion {
            event_loop: done_loop,
            future: done_future,
            finish,
        });
    })
    .map_err(|e| errors::to_py(py, e))?;
    Ok(future.unbind())
}
