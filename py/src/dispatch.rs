//! One queue per process carrying events (for `on_event` callbacks),
//! watcher changes (for `on_change` callbacks), asyncio outcomes and
//! library logs to Python.
//! The library runtime only pushes into it, never touching the GIL; a Python daemon thread (`libregistry._dispatch`) pops
//! from it with the GIL released and calls the callbacks and `logging`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::instance;

/// An `on_change` callback and whether its watcher was closed (then its
/// changes still queued are dropped).
pub struct ChangeSink {
    pub callback: Py<PyAny>,
    pub closed: AtomicBool,
}

/// Builds, with the GIL, the `(f, a, b)` of a call `f(a, b)`.
pub type MakeCall =
    Box<dyn FnOnce(Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>, Py<PyAny>)> + Send>;

/// What the dispatcher thread receives.
pub enum Item {
    /// An event of a client and the callback that wants it.
    Event(Arc<Py<PyAny>>, libregistry::Event),
    /// A change seen by a watcher with an `on_change` callback.
    Change(Arc<ChangeSink>, libregistry::Change),
    /// A log record: Python level number, tracing target, text.
    Log(u8, String, String),
    /// A call to make in Python, `f(a, b)`: an asyncio outcome scheduled
    /// into its loop (see `pending`).
    Call(MakeCall),
    /// Asks the dispatcher thread to stop (at interpreter exit).
    Stop,
}

struct Queue {
    pid: u32,
    tx: mpsc::Sender<Item>,
    rx: Arc<Mutex<mpsc::Receiver<Item>>>,
}

/// The queue of this process; a forked child makes its own (the parent's
/// dispatcher thread, which may hold the receiver's lock, is not there).
static QUEUE: Mutex<Option<Queue>> = Mutex::new(None);

fn with_queue<R>(f: impl FnOnce(&Queue) -> R) -> R {
    let pid = std::process::id();
    let mut slot = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_none_or(|q| q.pid != pid) {
        let (tx, rx) = mpsc::channel();
        let fresh = Queue {
            pid,
            tx,
            rx: Arc::new(Mutex::new(rx)),
        };
        if let Some(inherited) = slot.replace(fresh) {
            std::mem::forget(inherited);
        }
    }
    f(slot.as_ref().expect("queue was just made"))
}

/// A sender into this process's queue.
pub fn sender() -> mpsc::Sender<Item> {
    with_queue(|q| q.tx.clone())
}

/// Queues an item; never blocks.
pub fn send(item: Item) {
    let _ = sender().send(item);
}

/// Delivers `client`'s events to `callback` through the dispatcher thread.
pub fn forward_events(
    client: &libregistry::Client,
    callback: Py<PyAny>,
) -> libregistry::Result<()> {
    let callback = Arc::new(callback);
    let tx = sender();
    client.on_event(move |event| {
        let _ = tx.send(Item::Event(callback.clone(), event.clone()));
    })
}

/// `(kind, fields)` of an event (its serde form, see `libregistry::Event`),
/// for `libregistry._events` to build its class.
fn event_to_py<'py>(
    py: Python<'py>,
    event: &libregistry::Event,
) -> PyResult<(String, Bound<'py, PyDict>)> {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::to_value(event) else {
        return Err(PyRuntimeError::new_err(format!(
            "{event:?} has no JSON form"
        )));
    };
    let kind = match fields.remove("kind") {
        Some(serde_json::Value::String(kind)) => kind,
        _ => "unknown".into(),
    };
    Ok((kind, instance::map_to_py(py, &fields)?))
}

/// The next item for the dispatcher thread, waiting up to `timeout` seconds
/// with the GIL released: `("event", callback, kind, fields)`,
/// `("change", callback, kind, instance)`, `("log", levelno, target,
/// message)`, `("call", f, a, b)`, `("stop",)`, or `None` (also for a change of a watcher closed
/// meanwhile, which is dropped).
#[pyfunction]
pub fn dispatch_next<'py>(
    py: Python<'py>,
    timeout: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let timeout = convert::seconds_arg("timeout", timeout)?;
    let rx = with_queue(|q| q.rx.clone());
    let item = py.detach(move || {
        let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
        let item = rx.recv_timeout(timeout.max(Duration::from_millis(1))).ok();
        libregistry::blocking::park_if_host_exiting();
        item
    });
    let tuple = match item {
        None => return Ok(None),
        Some(Item::Event(callback, event)) => {
            let (kind, fields) = event_to_py(py, &event)?;
            ("event", callback.clone_ref(py), kind, fields).into_pyobject(py)?
        }
        Some(Item::Change(sink, _)) if sink.closed.load(Ordering::SeqCst) => return Ok(None),
        Some(Item::Change(sink, change)) => {
            let (kind, instance) = instance::change_to_py(change);
            ("change", sink.callback.clone_ref(py), kind, instance).into_pyobject(py)?
        }
        Some(Item::Log(level, target, message)) => {
            ("log", level, target, message).into_pyobject(py)?
        }
        Some(Item::Call(make)) => match make(py) {
            Ok((f, a, b)) => ("call", f, a, b).into_pyobject(py)?,
            Err(_) => return Ok(None), // nothing to schedule: the outcome is undone as it drops
        },
        Some(Item::Stop) => ("stop",).into_pyobject(py)?,
    };
    Ok(Some(tuple.into_any()))
}

/// Makes the dispatcher thread's current or next `dispatch_next` return `("stop",)`.
#[pyfunction]
pub fn dispatch_stop() {
    send(Item::Stop);
}

/// At interpreter exit, before finalization: waits in other threads park for good
/// (`libregistry::blocking::begin_host_exit`); one that ended just before gets
/// 20 ms of GIL to run on into Python code, which finalization ends safely.
#[pyfunction]
pub fn prepare_exit(py: Python<'_>) {
    libregistry::blocking::begin_host_exit();
    py.detach(|| std::thread::sleep(Duration::from_millis(20)));
}
