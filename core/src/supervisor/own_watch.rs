//! The watch on our own keys: one stream with a watch per service name (or
//! one over the whole prefix beyond 64 names), so that a key deleted or
//! taken over by someone else is seen within a round trip. A broken watch
//! is reopened by healing, followed by a sweep of every name.

use std::collections::BTreeSet;

use etcd_client::{EventType, WatchOptions, WatchResponse};
use tokio::time::Instant;

use super::ledger::{Seen, WatchVerdict};
use super::{remaining, Supervisor};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::metrics::Recorder;
use crate::requests::bounded;

/// Up to this many service names get a watch each; beyond, one watch covers
/// the whole prefix (where the layout has one: go-zero without a prefix
/// keeps a watch per name).
const MAX_NAME_WATCHES: usize = 64;

impl Supervisor {
    /// Opens the watch on our own keys from now on, and waits until etcd
    /// has created every part of it.
    pub(super) async fn open_watch(&mut self) -> Result<()> {
        let names = self.ledger.names_to_watch();
        let (layout, prefix) = (self.opts.layout, &self.opts.prefix);
        let whole = layout
            .whole_range(prefix)
            .filter(|_| names.len() > MAX_NAME_WATCHES);
        let covers_prefix = whole.is_some();
        let ranges: Vec<String> = match whole {
            Some(range) => vec![range],
            None => names
                .iter()
                .map(|n| layout.service_prefix(prefix, n))
                .collect(),
        };
        let options = || WatchOptions::new().with_prefix();
        let timeout = self.opts.request_timeout;
        let until = Instant::now() + timeout;
        let mut stream = self
            .etcd
            .watch("opening watch", timeout, &ranges[0], options())
            .await?;
        for range in &ranges[1..] {
            bounded(
                "opening watch",
                remaining(until),
                stream.watch(range.as_str(), Some(options())),
            )
            .await?;
        }
        let mut created = 0;
        while created < ranges.len() {
            match bounded("opening watch", remaining(until), stream.message()).await? {
                Some(resp) if resp.created() && !resp.canceled() => created += 1,
                Some(resp) if resp.canceled() => {
                    return Err(Error::unavailable(format!(
                        "watch refused: {}",
                        resp.cancel_reason()
                    )))
                }
                Some(resp) => self.on_watch(Ok(Some(resp))),
                None => return Err(Error::unavailable("watch closed by etcd")),
            }
        }
        self.watch = Some(stream);
        self.watch_covers_prefix = covers_prefix;
        self.watched_names = if covers_prefix {
            BTreeSet::new()
        } else {
            names
        };
        Ok(())
    }

    /// Adds a watch for a newly registered service name, from just after its
    /// write, and reads the name once: a write under our lease that landed
    /// there before the watch began is found like after any opened watch.
    pub(super) async fn watch_new_name(&mut self, name: &str, written_rev: i64) {
        if self.watch_covers_prefix || self.watched_names.contains(name) {
            return;
        }
        let (layout, prefix) = (self.opts.layout, &self.opts.prefix);
        if self.watched_names.len() >= MAX_NAME_WATCHES && layout.whole_range(prefix).is_some() {
            self.watch = None; // reopened over the whole prefix by the next healing step
            self.heal_soon();
            return;
        }
        let Some(stream) = self.watch.as_mut() else {
            self.heal_soon();
            return;
        };
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(written_rev + 1);
        let range = layout.service_prefix(prefix, name);
        if stream.watch(range, Some(options)).await.is_err() {
            self.watch = None;
        } else {
            self.watched_names.insert(name.to_string());
            self.ledger.sweep.insert(name.to_string());
        }
        self.heal_soon();
    }

    /// Watches (from a fresh watch and sweep) the names no open watch
    /// covers: where a write of ours whose outcome we do not know may land.
    pub(super) fn suspect<'n>(&mut self, names: impl Iterator<Item = &'n str>) {
        for name in names {
            let watched = self.watch.is_some()
                && (self.watch_covers_prefix || self.watched_names.contains(name));
            if !watched && self.ledger.former_names.insert(name.to_string()) {
                self.watch = None;
            }
        }
        self.heal_soon();
    }

    /// Judges each event on our keys (see `ledger::watch_verdict`) and reports it.
    pub(super) fn on_watch(
        &mut self,
        msg: std::result::Result<Option<WatchResponse>, etcd_client::Error>,
    ) {
        let response = match msg {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                tracing::debug!("watch on own keys broken; re-reading and re-watching");
                self.drop_watch();
                return;
            }
        };
        if response.canceled() {
            // Compacted past our start, or no leader: read everything again.
            tracing::debug!(
                reason = response.cancel_reason(),
                compact = response.compact_revision(),
                "watch canceled"
            );
            self.drop_watch();
            return;
        }
        let lease = self.lease_id();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            let seen = Seen {
                deleted: event.event_type() == EventType::Delete,
                lease: kv.lease(),
                mod_rev: kv.mod_revision(),
            };
            let verdict = self
                .ledger
                .on_watch_event(key, seen, lease, self.opts.heal_deleted_keys);
            match verdict {
                WatchVerdict::Ignore | WatchVerdict::OtherNow(_) => {}
                WatchVerdict::RemoveLateWrite => {
                    tracing::debug!(key, "a late write of a key we do not hold; removing it");
                    self.heal_soon();
                }
                WatchVerdict::Heal | WatchVerdict::OursAgain => self.heal_soon(),
                WatchVerdict::LeaveDeleted => {
                    tracing::info!(
                        key,
                        "key deleted from outside; left deleted (healing of deleted keys is off)"
                    );
                }
                WatchVerdict::Conflict(other) => {
                    tracing::warn!(
                        key,
                        other_lease = format_args!("{other:x}"),
                        "key overwritten by another process; leaving it"
                    );
                    Recorder::add(&self.etcd.recorder().conflicts, 1);
                    self.events.emit(Event::Conflict {
                        key: key.to_string(),
                        other_lease: other,
                    });
                }
            }
        }
    }

    pub(super) fn drop_watch(&mut self) {
        Recorder::add(&self.etcd.recorder().watch_restarts, 1);
        self.watch = None;
        self.start_outage();
        self.heal_soon();
    }
}
