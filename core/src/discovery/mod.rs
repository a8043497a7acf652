//! The consumer side: read the instances of a service once
//! ([`crate::Client::discover`]), or keep them in a cache that follows every
//! change ([`Watcher`]).
//!
//! The parts: `cache` (the instances a watcher holds, and the one-shot
//! read), `follow` (the task that keeps the cache true through every
//! failure) and `changes` (the bounded queue of changes not yet read).

mod cache;
mod changes;
mod follow;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::pick::PickPolicy;
use crate::requests::BoundedEtcd;
use crate::wire::Layout;
pub(crate) use cache::list;
use cache::Shared;
pub use changes::Change;
use changes::{ChangeQueue, Next};
use follow::Follow;

/// A live, cached view of one service's instances.
///
/// [`Watcher::instances`] and [`Watcher::pick`] read the cache and never
/// wait on the network. Changes arrive in order through
/// [`Watcher::next_change`] (the first ones are `Added` for every instance
/// found at start) or a callback ([`Watcher::on_change`]). Changes nobody
/// reads are folded into their net effect, so an unread watcher's memory is
/// bounded by the number of instances, not of changes. Dropping the
/// watcher (or [`Watcher::close`]) stops it.
///
/// After `fork()`, a watcher made in the parent does nothing in the child:
/// [`Watcher::check`] says so, and the cache reads come back empty.
pub struct Watcher {
    name: String,
    /// The process that made it: after `fork()` its task is not there.
    pid: u32,
    closed: AtomicBool,
    /// Whether changes go to a callback (then `next_change` is refused).
    to_callback: AtomicBool,
    /// Taken and leaked, not dropped, in a forked child: their locks and
    /// the task's scheduler may have been held by a thread that does not
    /// exist there. Present until then.
    parts: Option<Parts>,
}

struct Parts {
    shared: Arc<Shared>,
    changes: ChangeQueue,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("name", &self.name)
            .field("instances", &self.instances().len())
            .finish()
    }
}

impl Watcher {
    /// Lists `name` in `layout` under `prefix` (failing within `timeout` if
    /// etcd cannot be read), then keeps following it in the background on
    /// the library runtime.
    pub(crate) async fn start(
        etcd: BoundedEtcd,
        (layout, prefix): (Layout, String),
        name: String,
        policy: PickPolicy,
        timeout: Duration,
    ) -> Result<Watcher> {
        let (initial, revision) = list(&etcd, layout, &prefix, &name, timeout).await?;
        let shared = Arc::new(Shared::new(policy));
        let changes = ChangeQueue::default();
        let mut follow = Follow {
            // Counted from now, not from when its task first runs: the
            // count is right as soon as `watch` returns.
            _counted: etcd.recorder().watcher_running(),
            etcd,
            range: layout.service_prefix(&prefix, &name),
            layout,
            name: name.clone(),
            timeout,
            shared: shared.clone(),
            changes: changes.clone(),
        };
        follow.apply_list(initial);
        let task = crate::runtime::spawn(follow.run(revision))?.abort_handle();
        Ok(Watcher {
            name,
            pid: std::process::id(),
            closed: AtomicBool::new(false),
            to_callback: AtomicBool::new(false),
            parts: Some(Parts {
                shared,
                changes,
                task,
            }),
        })
    }

    /// The service watched.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn parts(&self) -> &Parts {
        self.parts
            .as_ref()
            .expect("present until the watcher is dropped")
    }

    fn forked(&self) -> bool {
        crate::runtime::check_pid(self.pid).is_err()
    }

    /// Whether the watcher still works: [`Error::Closed`] after
    /// [`Watcher::close`], [`Error::Forked`] in a child of the process that
    /// made it.
    pub fn check(&self) -> Result<()> {
        crate::runtime::check_pid(self.pid)?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Whether [`Watcher::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The cached instances, sorted by key. Cheap; never waits on the
    /// network. Empty once closed, and in a forked child.
    pub fn instances(&self) -> Arc<Vec<Instance>> {
        if self.check().is_err() {
            return Arc::new(Vec::new());
        }
        self.parts().shared.instances()
    }

    /// Picks an instance by the watcher's policy; `None` when none
    /// qualifies (or the watcher is closed, or inherited through `fork()`).
    pub fn pick(&self) -> Option<Instance> {
        let snapshot = self.instances();
        let policy = self.policy();
        self.parts().shared.picker.pick(&snapshot, &policy).cloned()
    }

    /// The pick policy in force.
    pub fn policy(&self) -> PickPolicy {
        if self.forked() {
            return PickPolicy::default();
        }
        self.parts().shared.policy()
    }

    /// Replaces the pick policy.
    pub fn set_policy(&self, policy: PickPolicy) {
        if self.forked() {
            return;
        }
        *self
            .parts()
            .shared
            .policy
            .write()
            .unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Changes folded into their net effect because nobody read them in time.
    pub fn squashed(&self) -> u64 {
        if self.forked() {
            return 0;
        }
        self.parts().changes.squashed()
    }

    /// Checks that changes may be read here (not closed, not forked, no callback).
    fn check_readable(&self) -> Result<()> {
        self.check()?;
        if self.to_callback.load(Ordering::SeqCst) {
            return Err(Error::invalid(
                "next_change",
                format!(
                    "the changes of the watcher of {:?} go to its on_change callback",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The next change, waiting up to `timeout` (`None`: no limit):
    /// `Ok(None)` when none came in time. Fails once closed, in a forked
    /// child, or when changes go to a callback. Abandoning the wait (a
    /// dropped future) loses no change.
    pub async fn next_change_within(&self, timeout: Option<Duration>) -> Result<Option<Change>> {
        self.check_readable()?;
        match self.parts().changes.next(timeout).await {
            Next::Change(change) => Ok(Some(change)),
            Next::Timeout => Ok(None),
            Next::Closed => Err(Error::Closed),
        }
    }

    /// The next change; `None` once the watcher stopped or the changes were
    /// handed to a callback.
    pub async fn next_change(&self) -> Option<Change> {
        self.next_change_within(None).await.ok().flatten()
    }

    /// The next change if one is waiting, without blocking.
    pub fn try_next_change(&self) -> Option<Change> {
        self.check_readable().ok()?;
        self.parts().changes.try_next()
    }

    /// Blocks the calling (non-async) thread for the next change, up to
    /// `timeout`; `Ok(None)` when none came.
    pub fn next_change_blocking(&self, timeout: Duration) -> Result<Option<Change>> {
        self.check_readable()?;
        crate::runtime::block_on(self.next_change_within(Some(timeout)))?
    }

    /// Hands every change from now on (starting with any not yet read) to
    /// `callback`, in order, on the library's runtime thread. Keep it short.
    pub fn on_change<F>(&self, callback: F) -> Result<()>
    where
        F: Fn(&Change) + Send + 'static,
    {
        self.check()?;
        if self.to_callback.swap(true, Ordering::SeqCst) {
            return Err(Error::invalid(
                "on_change",
                "changes are already delivered to a callback",
            ));
        }
        let changes = self.parts().changes.clone();
        crate::runtime::spawn(async move {
            while let Next::Change(change) = changes.next(None).await {
                callback(&change);
            }
        })?;
        Ok(())
    }

    /// Stops watching: the cache reads come back empty and waits for
    /// changes end with [`Error::Closed`]. Calling it again does nothing.
    pub fn close(&self) {
        if self.forked() || self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.parts().task.abort();
        self.parts().changes.close();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.forked() {
            std::mem::forget(self.parts.take()); // see `parts`
            return;
        }
        self.close();
    }
}
