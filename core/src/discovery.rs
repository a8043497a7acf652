//! The consumer side: read the instances of a service once (`list`), or
//! keep them in a cache that follows every change ([`Watcher`]).
//!
//! A watcher lists, then watches from the listed revision + 1. Whenever the
//! watch breaks (connection lost, etcd restarted or wiped, compacted past
//! our revision, no leader) it lists again and reports the true difference
//! against its cache, so a consumer never keeps a stale or duplicate instance.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::pick::{PickPolicy, Picker};
use crate::requests::Etcd;
use crate::wire;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Short enough that recovery follows the end of an outage within about
/// half a second; each client then retries about twice a second meanwhile.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A change in a watched service, in the order etcd made them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new instance.
    Added(Instance),
    /// An instance whose value changed (metadata, weight...).
    Updated(Instance),
    /// An instance that is gone (deregistered, lease expired, deleted).
    Removed(Instance),
}

impl Change {
    /// The instance concerned.
    pub fn instance(&self) -> &Instance {
        match self {
            Change::Added(i) | Change::Updated(i) | Change::Removed(i) => i,
        }
    }
}

/// Reads every instance of `name` under `prefix`, sorted by key, with the revision read.
pub(crate) async fn list(
    etcd: &Etcd,
    prefix: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Vec<Cached>, i64)> {
    crate::service::validate_name(name)?;
    let range = wire::service_prefix(prefix, name);
    let resp = etcd.get_prefix("discover", timeout, &range).await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    let found = resp
        .kvs()
        .iter()
        .filter_map(|kv| decode(name, kv.key(), kv.value()))
        .collect();
    Ok((found, revision))
}

/// An instance with the raw value it came from, to tell real updates from rewrites.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub instance: Instance,
    raw: Vec<u8>,
}

fn decode(name: &str, key: &[u8], value: &[u8]) -> Option<Cached> {
    let key = String::from_utf8_lossy(key);
    match Instance::decode(name, &key, value) {
        Ok(instance) => Some(Cached {
            instance,
            raw: value.to_vec(),
        }),
        Err(reason) => {
            tracing::warn!(key = %key, %reason, "skipping a value that is not an instance");
            None
        }
    }
}

/// What the watcher task shares with its handle.
struct Shared {
    /// The instances by key, as the task keeps them.
    cache: Mutex<BTreeMap<String, Cached>>,
    /// Bumped on every change of `cache`.
    version: AtomicU64,
    /// The last snapshot handed out and the version it reflects: rebuilt
    /// only when read after a change, so a busy service costs the task
    /// nothing per change beyond the change itself.
    snapshot: RwLock<(u64, Arc<Vec<Instance>>)>,
    policy: RwLock<PickPolicy>,
    picker: Picker,
}

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn instances(&self) -> Arc<Vec<Instance>> {
        let wanted = self.version.load(Ordering::Acquire);
        {
            let snapshot = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
            if snapshot.0 == wanted {
                return snapshot.1.clone();
            }
        }
        let (version, fresh) = {
            let cache = self.cache();
            // Read under the cache lock: the version matches what we copy.
            let version = self.version.load(Ordering::Acquire);
            let fresh: Vec<Instance> = cache.values().map(|c| c.instance.clone()).collect();
            (version, Arc::new(fresh))
        };
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = (version, fresh.clone());
        fresh
    }
}

/// A live, cached view of one service's instances.
///
/// [`Watcher::instances`] and [`Watcher::pick`] read the cache and never
/// wait on the network. Changes arrive in order through
/// [`Watcher::next_change`] (the first ones are `Added` for every instance
/// found at start) or a callback ([`Watcher::on_change`]). Dropping the
/// watcher stops it.
pub struct Watcher {
    name: String,
    shared: Arc<Shared>,
    /// Locked across a wait, so a wait that is cancelled (a timeout) loses nothing.
    changes: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
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
    /// Lists `name` (failing within `timeout` if etcd cannot be read), then
    /// keeps following it in the background on the library runtime.
    pub(crate) async fn start(
        etcd: Etcd,
        prefix: String,
        name: String,
        policy: PickPolicy,
        timeout: Duration,
    ) -> Result<Watcher> {
        let (initial, revision) = list(&etcd, &prefix, &name, timeout).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            cache: Mutex::new(BTreeMap::new()),
            version: AtomicU64::new(1),
            snapshot: RwLock::new((0, Arc::new(Vec::new()))),
            policy: RwLock::new(policy),
            picker: Picker::new(),
        });
        let mut follow = Follow {
            etcd,
            range: wire::service_prefix(&prefix, &name),
            name: name.clone(),
            timeout,
            shared: shared.clone(),
            changes: tx,
        };
        follow.apply_list(initial);
        let task = crate::runtime::spawn(follow.run(revision))?.abort_handle();
        Ok(Watcher {
            name,
            shared,
            changes: tokio::sync::Mutex::new(Some(rx)),
            task,
        })
    }

    /// The service watched.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cached instances, sorted by key. Cheap; never waits on the network.
    pub fn instances(&self) -> Arc<Vec<Instance>> {
        self.shared.instances()
    }

    /// Picks an instance by the watcher's policy; `None` when none qualifies.
    pub fn pick(&self) -> Option<Instance> {
        let snapshot = self.instances();
        let policy = self.policy();
        self.shared.picker.pick(&snapshot, &policy).cloned()
    }

    /// The pick policy in force.
    pub fn policy(&self) -> PickPolicy {
        self.shared
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the pick policy.
    pub fn set_policy(&self, policy: PickPolicy) {
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// The next change; `None` once the watcher stopped or the changes were
    /// handed to a callback.
    pub async fn next_change(&self) -> Option<Change> {
        let mut changes = self.changes.lock().await;
        changes.as_mut()?.recv().await
    }

    /// The next change if one is waiting, without blocking.
    pub fn try_next_change(&self) -> Option<Change> {
        let mut changes = self.changes.try_lock().ok()?;
        changes.as_mut()?.try_recv().ok()
    }

    /// Blocks the calling (non-async) thread for the next change, up to `timeout`.
    pub fn next_change_blocking(&self, timeout: Duration) -> Result<Option<Change>> {
        crate::runtime::block_on(async {
            tokio::time::timeout(timeout, self.next_change())
                .await
                .unwrap_or(None)
        })
    }

    /// Hands every change from now on (starting with any not yet read) to
    /// `callback`, in order, on the library's runtime thread. Keep it short.
    pub fn on_change<F>(&self, callback: F) -> Result<()>
    where
        F: Fn(&Change) + Send + 'static,
    {
        let taken = self.changes.try_lock().ok().and_then(|mut c| c.take());
        let Some(mut rx) = taken else {
            return Err(Error::invalid(
                "on_change",
                "changes are already delivered to a callback (or being waited for)",
            ));
        };
        crate::runtime::spawn(async move {
            while let Some(change) = rx.recv().await {
                callback(&change);
            }
        })?;
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The background half of a watcher.
struct Follow {
    etcd: Etcd,
    range: String,
    name: String,
    timeout: Duration,
    shared: Arc<Shared>,
    changes: mpsc::UnboundedSender<Change>,
}

impl Follow {
    async fn run(mut self, mut revision: i64) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            if let Err(e) = self.follow_from(revision + 1).await {
                tracing::debug!(service = %self.name, error = %e, "watch interrupted; listing again");
            }
            if started.elapsed() > Duration::from_secs(5) {
                backoff = FIRST_BACKOFF; // it had been healthy: come back quickly
            }
            // List again and report the true difference: the only way back
            // after a break, a wiped etcd or a compaction.
            loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match self.relist().await {
                    Ok(r) => {
                        revision = r;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(service = %self.name, error = %e, "listing failed; retrying")
                    }
                }
            }
        }
    }

    async fn relist(&mut self) -> Result<i64> {
        let resp = self
            .etcd
            .get_prefix("listing instances", self.timeout, &self.range)
            .await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let found = resp
            .kvs()
            .iter()
            .filter_map(|kv| decode(&self.name, kv.key(), kv.value()))
            .collect();
        self.apply_list(found);
        Ok(revision)
    }

    /// Replaces the cache with a fresh list, reporting removals, additions and updates.
    fn apply_list(&mut self, found: Vec<Cached>) {
        let fresh: BTreeMap<String, Cached> = found
            .into_iter()
            .map(|c| (c.instance.key.clone(), c))
            .collect();
        let mut cache = self.shared.cache();
        let old = std::mem::replace(&mut *cache, fresh);
        for (key, gone) in &old {
            if !cache.contains_key(key) {
                let _ = self.changes.send(Change::Removed(gone.instance.clone()));
            }
        }
        for (key, now) in cache.iter() {
            let change = match old.get(key) {
                None => Change::Added(now.instance.clone()),
                Some(before) if before.raw != now.raw => Change::Updated(now.instance.clone()),
                Some(_) => continue,
            };
            let _ = self.changes.send(change);
        }
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Follows the watch from `start`; returns when it breaks.
    async fn follow_from(&mut self, start: i64) -> Result<()> {
        if start <= 0 {
            return Err(Error::Unavailable("no revision to watch from".into()));
        }
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = self
            .etcd
            .watch("opening watch", self.timeout, &self.range, options)
            .await?;
        loop {
            let Some(resp) = stream.message().await? else {
                return Err(Error::Unavailable("watch closed by etcd".into()));
            };
            if resp.canceled() {
                return Err(Error::Etcd(format!(
                    "watch canceled (compacted at {}): {}",
                    resp.compact_revision(),
                    resp.cancel_reason()
                )));
            }
            let mut cache = self.shared.cache();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let change = match event.event_type() {
                    EventType::Put => match decode(&self.name, kv.key(), kv.value()) {
                        // Overwritten by something unreadable: it is no instance any more.
                        None => cache
                            .remove(&key)
                            .map(|gone| Change::Removed(gone.instance)),
                        Some(now) => {
                            let change = match cache.get(&key) {
                                None => Some(Change::Added(now.instance.clone())),
                                Some(before) if before.raw != now.raw => {
                                    Some(Change::Updated(now.instance.clone()))
                                }
                                Some(_) => None, // rewritten unchanged (e.g. moved to a new lease)
                            };
                            cache.insert(key, now);
                            change
                        }
                    },
                    EventType::Delete => cache
                        .remove(&key)
                        .map(|gone| Change::Removed(gone.instance)),
                };
                if let Some(change) = change {
                    self.shared.version.fetch_add(1, Ordering::AcqRel);
                    let _ = self.changes.send(change);
                }
            }
        }
    }
}
