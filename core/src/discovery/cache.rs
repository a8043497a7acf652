//! What a watcher's task shares with its handle: the instances by key (with
//! the raw value each came from, to tell real updates from rewrites), a
//! snapshot rebuilt lazily after a change, the pick policy and picker. And
//! the one-shot read of a service that fills it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use crate::error::Result;
use crate::instance::Instance;
use crate::pick::{PickPolicy, Picker};
use crate::requests::BoundedEtcd;
use crate::wire::Layout;

/// An instance with the raw value it came from.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub instance: Instance,
    pub raw: Vec<u8>,
}

/// Decodes one key and value of service `name` in `layout`; a value that
/// is no instance of it (another layout's, say) is skipped with a log line.
pub(crate) fn decode(layout: Layout, name: &str, key: &[u8], value: &[u8]) -> Option<Cached> {
    let key = String::from_utf8_lossy(key);
    match layout.decode(name, &key, value) {
        Ok(instance) => Some(Cached {
            instance,
            raw: value.to_vec(),
        }),
        Err(reason) => {
            tracing::warn!(key = %key, %layout, %reason, "skipping a value that is not an instance");
            None
        }
    }
}

/// Reads every instance of `name` under `prefix` in `layout`, sorted by
/// key, with the revision read.
pub(crate) async fn list(
    etcd: &BoundedEtcd,
    layout: Layout,
    prefix: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Vec<Cached>, i64)> {
    crate::names::validate_name(name)?;
    let range = layout.service_prefix(prefix, name);
    let resp = etcd.get_prefix("discover", timeout, &range).await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    let found = resp
        .kvs()
        .iter()
        .filter_map(|kv| decode(layout, name, kv.key(), kv.value()))
        .collect();
    Ok((found, revision))
}

/// The cache of one watcher, shared by its task and its handle.
pub(crate) struct Shared {
    /// The instances by key, as the task keeps them.
    cache: Mutex<BTreeMap<String, Cached>>,
    /// Bumped on every change of `cache`.
    version: AtomicU64,
    /// The last snapshot handed out and the version it reflects: rebuilt
    /// only when read after a change, so a busy service costs the task
    /// nothing per change beyond the change itself.
    snapshot: RwLock<(u64, Arc<Vec<Instance>>)>,
    pub policy: RwLock<PickPolicy>,
    pub picker: Picker,
}

impl Shared {
    pub fn new(policy: PickPolicy) -> Shared {
        Shared {
            cache: Mutex::new(BTreeMap::new()),
            version: AtomicU64::new(1),
            snapshot: RwLock::new((0, Arc::new(Vec::new()))),
            policy: RwLock::new(policy),
            picker: Picker::new(),
        }
    }

    pub fn cache(&self) -> MutexGuard<'_, BTreeMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the cache changed (call with the cache lock held).
    pub fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The instances sorted by key, shared until the cache changes.
    pub fn instances(&self) -> Arc<Vec<Instance>> {
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

    pub fn policy(&self) -> PickPolicy {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
