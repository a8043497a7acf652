//! The background half of a watcher: lists, then watches from the listed
//! revision + 1. Whenever the watch breaks (connection lost, etcd restarted
//! or wiped, compacted past our revision, no leader) it lists again and
//! reports the true difference against its cache, so a consumer never keeps
//! a stale or duplicate instance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use super::cache::{decode, Cached, Shared};
use super::changes::{Change, ChangeQueue};
use crate::error::{Error, Result};
use crate::jitter::jitter;
use crate::metrics::{Recorder, WatcherRunning};
use crate::requests::BoundedEtcd;
use crate::wire::Layout;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Short enough that a watcher lists again within about a quarter of a
/// second of an outage's end (the soak saw watchers 0.5-0.8 s late with
/// 500 ms); each watcher then lists about four times a second meanwhile,
/// a few hundred reads a second for a fleet's hundred watchers.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

pub(crate) struct Follow {
    /// Counts this watcher among the running ones until the task ends.
    pub _counted: WatcherRunning, // held, never read
    pub etcd: BoundedEtcd,
    pub range: String,
    pub layout: Layout,
    pub name: String,
    pub timeout: Duration,
    pub shared: Arc<Shared>,
    pub changes: ChangeQueue,
}

impl Follow {
    pub async fn run(mut self, mut revision: i64) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            if let Err(e) = self.follow_from(revision + 1).await {
                tracing::debug!(service = %self.name, error = %e, "watch interrupted; listing again");
            }
            Recorder::add(&self.etcd.recorder().watch_restarts, 1);
            if started.elapsed() > Duration::from_secs(5) {
                backoff = FIRST_BACKOFF; // it had been healthy: come back quickly
            }
            // List again and report the true difference: the only way back
            // after a break, a wiped etcd or a compaction.
            loop {
                // Jittered, so a fleet's watchers do not list in step.
                tokio::time::sleep(jitter(backoff)).await;
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
            .filter_map(|kv| decode(self.layout, &self.name, kv.key(), kv.value()))
            .collect();
        self.apply_list(found);
        Ok(revision)
    }

    /// Replaces the cache with a fresh list, reporting removals, additions and updates.
    pub fn apply_list(&mut self, found: Vec<Cached>) {
        let fresh: BTreeMap<String, Cached> = found
            .into_iter()
            .map(|c| (c.instance.key.clone(), c))
            .collect();
        let mut cache = self.shared.cache();
        let old = std::mem::replace(&mut *cache, fresh);
        for (key, gone) in &old {
            if !cache.contains_key(key) {
                self.changes.push(Change::Removed(gone.instance.clone()));
            }
        }
        for (key, now) in cache.iter() {
            let change = match old.get(key) {
                None => Change::Added(now.instance.clone()),
                Some(before) if before.raw != now.raw => Change::Updated(now.instance.clone()),
                Some(_) => continue,
            };
            self.changes.push(change);
        }
        self.shared.bump();
    }

    /// Follows the watch from `start`; returns when it breaks.
    async fn follow_from(&mut self, start: i64) -> Result<()> {
        if start <= 0 {
            return Err(Error::unavailable("no revision to watch from"));
        }
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = self
            .etcd
            .watch("opening watch", self.timeout, &self.range, options)
            .await?;
        loop {
            let Some(resp) = stream.message().await? else {
                return Err(Error::unavailable("watch closed by etcd"));
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
                    EventType::Put => match decode(self.layout, &self.name, kv.key(), kv.value()) {
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
                    self.shared.bump();
                    self.changes.push(change);
                }
            }
        }
    }
}
