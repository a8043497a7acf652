//! The one tokio runtime of the process, created lazily, rebuilt after `fork()`.
//!
//! C and Python callers never see async: blocking entry points go through
//! [`block_on`], which refuses to run inside another runtime instead of deadlocking.

use std::future::Future;
use std::sync::Mutex;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

/// Worker threads of the runtime: the engine is I/O bound, one is plenty.
const WORKER_THREADS: usize = 1;
/// Threads tokio may add for blocking work (DNS lookups of endpoint host names).
const MAX_BLOCKING_THREADS: usize = 1;

/// The runtime and the PID that built it. A runtime inherited through `fork()`
/// has no threads in the child, so it is leaked and a new one is built.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// Runtimes inherited through `fork()` from a parent: never used again.
static INHERITED: Mutex<Vec<&'static Runtime>> = Mutex::new(Vec::new());

/// The process's runtime handle, building the runtime on first use.
pub(crate) fn handle() -> Result<Handle> {
    let pid = std::process::id();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt.handle().clone());
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("libregistry")
        .on_thread_start(ignore_broken_pipes)
        .enable_all()
        .build()
        .map_err(|e| Error::Etcd(format!("cannot start the libregistry runtime: {e}")))?;
    // Leaked on purpose: it lives as long as the process, and dropping an
    // inherited one in a forked child would wait for threads that do not exist.
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    if let Some((_, inherited)) = slot.replace((pid, rt)) {
        // Kept reachable rather than forgotten: it is abandoned, not lost.
        INHERITED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(inherited);
    }
    Ok(rt.handle().clone())
}

/// Blocks SIGPIPE in the calling (runtime) thread. The runtime's threads
/// write to etcd's sockets; a write to a connection etcd closed (a member
/// refusing a TLS client, say) raises SIGPIPE, whose default action kills
/// the process. Rust and Python ignore it; a C program usually does not.
/// Blocked, the write fails with EPIPE instead, which the connection
/// handles like any broken connection.
fn ignore_broken_pipes() {
    #[cfg(unix)]
    // SAFETY: only this thread's signal mask changes; the set is initialised
    // by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs `fut` to completion on the library runtime from a plain (non-async) thread.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    if Handle::try_current().is_ok() {
        return Err(Error::InsideRuntime);
    }
    Ok(handle()?.block_on(fut))
}

/// Fails with [`Error::Forked`] when called in a child of the process that made `created_in`.
pub(crate) fn check_pid(created_in: u32) -> Result<()> {
    let now_in = std::process::id();
    if now_in == created_in {
        Ok(())
    } else {
        Err(Error::Forked { created_in, now_in })
    }
}

/// Runs `fut` on the library runtime and returns its join handle, for
/// bindings that wait in their own way (polling for Ctrl-C, asyncio).
pub fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(handle()?.spawn(fut))
}
