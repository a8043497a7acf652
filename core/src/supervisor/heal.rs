//! Healing: a new lease when ours is lost, keys deregistered meanwhile
//! removed, our keys read back and put right (a transaction per 128 keys),
//! late writes of ours removed, former leases revoked. A failed step is
//! retried after a jittered backoff.

use std::collections::HashMap;

use etcd_client::{Compare, CompareOp, KeyValue, TxnOp, TxnOpResponse};
use tokio::time::Instant;

use super::ledger::Found;
use super::{remaining, Supervisor, FIRST_BACKOFF, MAX_BACKOFF, MAX_TXN_OPS};
use crate::error::{Error, Result};
use crate::events::{Event, LostReason};
use crate::jitter::jitter;
use crate::metrics::Recorder;
use crate::requests::is_lease_missing;

/// What etcd holds for each key: `(mod revision, lease, value)`, `None` when missing.
type KeyStates = HashMap<String, Option<(i64, i64, Vec<u8>)>>;

/// Keys per page when reading a service name's keys (with values: ~400
/// bytes each, so a page is about 400 KB).
const SWEEP_PAGE: i64 = 1_000;
/// Up to this many dirty keys in a chunk are read one by one; more, by name.
const MAX_SINGLE_READS: usize = 16;

impl Supervisor {
    /// One healing step: lease, then dirty keys, orphans and the watch. On
    /// failure, retries after a jittered exponential backoff capped at ~0.6 s.
    pub(super) async fn heal(&mut self) {
        Recorder::add(&self.etcd.recorder().heal_attempts, 1);
        match self.heal_once().await {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                if !self.needs_healing() {
                    if let Some(since) = self.outage_since.take() {
                        self.etcd.recorder().outage_ended();
                        let lease_id = self.lease_id();
                        let outage = since.elapsed();
                        tracing::info!(
                            lease = format_args!("{lease_id:x}"),
                            ?outage,
                            "registrations restored"
                        );
                        self.events.emit(Event::Restored {
                            lease_id,
                            registrations: self.ledger.live_count(),
                            outage,
                        });
                    }
                }
            }
            Err(e) => {
                Recorder::add(&self.etcd.recorder().heal_failures, 1);
                tracing::debug!(error = %e, "healing step failed; retrying");
                self.retry_at = Instant::now() + jitter(self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn heal_once(&mut self) -> Result<()> {
        let until = Instant::now() + self.opts.request_timeout;
        if let (None, Some(lease)) = (&self.watch, self.lease) {
            // The watch broke: etcd may have lost the lease with its data.
            // Asked first, a lost lease is found before its keys are read
            // (keepalive may take a third of the TTL to notice).
            if !self.etcd.lease_alive(remaining(until), lease.id).await? {
                self.on_lease_lost(lease.id, LostReason::NotFound);
            }
        }
        if self.lease.is_none() && self.ledger.needs_lease() {
            self.grant(until).await?;
        }
        if self.watch.is_none() && self.ledger.has_names_to_watch() {
            // Watch first, then check once everything written before the
            // watch began: nothing can slip between the two.
            self.open_watch().await?;
            self.ledger.recheck_everything(!self.lease_clean);
        }
        // Keys deregistered during the outage go first: rewriting every live
        // key takes a while, and consumers should not see the dead meanwhile.
        if !self.ledger.orphans.is_empty() {
            self.delete_orphans().await?;
        }
        if !self.ledger.dirty.is_empty() || !self.ledger.sweep.is_empty() {
            if let Err(e) = self.reconcile_dirty().await {
                // Our lease vanished (revoked, or etcd wiped) before keepalive noticed.
                if let (Error::Etcd(m), Some(lease)) = (&e, self.lease) {
                    if is_lease_missing(m) {
                        self.on_lease_lost(lease.id, LostReason::NotFound);
                    }
                }
                return Err(e);
            }
        }
        if !self.ledger.orphans.is_empty() {
            self.delete_orphans().await?; // late writes the sweep found
        }
        self.revoke_former_leases().await
    }

    /// Reads the dirty keys and puts right what is wrong, a transaction per
    /// 128 keys. Names to sweep are read first, one ranged read each.
    pub(super) async fn reconcile_dirty(&mut self) -> Result<()> {
        let Some(lease) = self.lease else {
            return Err(Error::unavailable("no lease"));
        };
        loop {
            while let Some(name) = self.ledger.sweep.first().cloned() {
                self.sweep_name(&name, lease.id).await?;
                self.ledger.sweep.remove(&name);
            }
            // Each finished chunk stays done: a preempted step resumes where it was.
            let Some(chunk) = self.ledger.next_dirty_chunk(MAX_TXN_OPS) else {
                return Ok(());
            };
            // A key last written under a lease now lost is most likely gone
            // with it (expired, revoked, etcd wiped): written on that
            // assumption, checked by the transaction's compare. With no
            // write of unknown outcome under the current lease, nothing else
            // needs reading: no whole-name reads after a wipe, where every
            // process of a fleet would read every name's keys.
            let (absent, to_read): (Vec<String>, Vec<String>) = self
                .ledger
                .unseen(&chunk)
                .into_iter()
                .partition(|k| self.lease_clean && !self.ledger.written_under(k, lease.id));
            if to_read.len() > MAX_SINGLE_READS {
                // Many keys to read (a revoked lease's keys, all deleted at
                // once): a ranged read per name is cheaper than a get per key.
                let names = self.ledger.names_of(&to_read);
                self.ledger.sweep.extend(names);
                continue;
            }
            self.reconcile_chunk(lease.id, &chunk, absent, to_read)
                .await?;
        }
    }

    /// Reads every key of service `name` and hands what it found to the ledger.
    async fn sweep_name(&mut self, name: &str, lease: i64) -> Result<()> {
        let range = self.opts.layout.service_prefix(&self.opts.prefix, name);
        let found = self
            .etcd
            .list_keys(
                "reading registrations",
                self.opts.request_timeout,
                &range,
                SWEEP_PAGE,
            )
            .await?;
        let found: Vec<(String, Found)> = found
            .iter()
            .filter_map(|kv| {
                let key = kv.key_str().ok()?.to_string();
                let at = Found {
                    mod_rev: kv.mod_revision(),
                    lease: kv.lease(),
                };
                Some((key, at))
            })
            .collect();
        self.ledger.apply_sweep(name, &found, lease);
        Ok(())
    }

    /// Puts `keys` right; of those the sweep did not see, `absent` are
    /// assumed missing and `to_read` are read first. When the write's
    /// compare fails, it is planned again from what etcd holds (read in the
    /// same transaction), once.
    async fn reconcile_chunk(
        &mut self,
        lease: i64,
        keys: &[String],
        absent: Vec<String>,
        to_read: Vec<String>,
    ) -> Result<()> {
        // Plain gets, not a read-only transaction: etcd 3.5.0-3.5.4 panics
        // when a client cancels one (etcd-io/etcd#14110).
        let mut read: KeyStates = absent.into_iter().map(|k| (k, None)).collect();
        if !to_read.is_empty() {
            let found = self
                .etcd
                .get_keys("reading registrations", self.opts.request_timeout, &to_read)
                .await?;
            read.extend(to_read.into_iter().zip(found.into_iter().map(key_state)));
        }
        let Some(held) = self.write_chunk(lease, keys, read).await? else {
            return Ok(());
        };
        let keys: Vec<String> = held.keys().cloned().collect();
        match self.write_chunk(lease, &keys, held).await? {
            None => Ok(()),
            // Something changed between our read and write: read again next round.
            Some(_) => Err(Error::Etcd("registrations changed while healing".into())),
        }
    }

    /// Plans `keys` from the sweep and `read`, and writes what needs it;
    /// `Some(what etcd holds)` of the keys to write when the compare failed.
    async fn write_chunk(
        &mut self,
        lease: i64,
        keys: &[String],
        read: KeyStates,
    ) -> Result<Option<KeyStates>> {
        let plan = self
            .ledger
            .plan_chunk(keys, read, lease, self.opts.heal_deleted_keys);
        Recorder::add(&self.etcd.recorder().conflicts, plan.conflicts.len() as u64);
        for (key, other_lease) in plan.conflicts {
            tracing::warn!(
                key,
                other_lease = format_args!("{other_lease:x}"),
                "key held by another process; leaving it"
            );
            self.events.emit(Event::Conflict { key, other_lease });
        }
        if plan.rewrites.is_empty() {
            return Ok(None);
        }
        let mut compares = Vec::with_capacity(plan.rewrites.len());
        let mut puts = Vec::with_capacity(plan.rewrites.len());
        let mut gets = Vec::with_capacity(plan.rewrites.len());
        for (key, value, expect_mod_rev, _) in &plan.rewrites {
            compares.push(Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                *expect_mod_rev,
            ));
            puts.push(TxnOp::put(
                key.as_str(),
                value.as_str(),
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            ));
            gets.push(TxnOp::get(key.as_str(), None));
        }
        let write = etcd_client::Txn::new()
            .when(compares)
            .and_then(puts)
            .or_else(gets);
        let written = self
            .etcd
            .txn("restoring registrations", self.opts.request_timeout, write)
            .await?;
        if !written.succeeded() {
            let held = written.op_responses().into_iter().map(|op| match op {
                TxnOpResponse::Get(mut got) => key_state(got.take_kvs().into_iter().next()),
                _ => None,
            });
            let keys = plan.rewrites.into_iter().map(|(key, ..)| key);
            return Ok(Some(keys.zip(held).collect()));
        }
        let rev = written.header().map(|h| h.revision()).unwrap_or(0);
        let restored = plan.rewrites.len() as u64;
        Recorder::add(&self.etcd.recorder().keys_restored, restored);
        self.ledger
            .record_written(plan.rewrites.iter().map(|(k, ..)| k.as_str()), rev, lease);
        for (key, _, _, was_missing) in plan.rewrites {
            if was_missing && self.outage_since.is_none() {
                tracing::info!(key, "key deleted from outside; put back");
                self.events.emit(Event::KeyRestored { key });
            }
        }
        Ok(None)
    }

    /// Deletes keys we may have left behind, each only while it is still
    /// under a lease of ours (the current one or one lost but not yet
    /// revoked): never another process's.
    async fn delete_orphans(&mut self) -> Result<()> {
        let timeout = self.opts.request_timeout;
        let mut ours: Vec<i64> = self.lease.map(|l| l.id).into_iter().collect();
        ours.extend(&self.leases_to_revoke);
        while let Some(key) = self.ledger.orphans.first().cloned() {
            if self.ledger.holds(&key) || ours.is_empty() {
                self.ledger.orphans.remove(&key);
                continue; // registered (or restored) again meanwhile, or no lease of ours lives
            }
            let txn = delete_if_under_any(&key, &ours);
            let done = self
                .etcd
                .txn("removing a leftover key", timeout, txn)
                .await?;
            if deleted_any(&done) {
                Recorder::add(&self.etcd.recorder().orphans_removed, 1);
            }
            self.ledger.orphans.remove(&key);
        }
        Ok(())
    }
}

/// A transaction deleting `key` if it is under one of `leases` (not empty):
/// one comparison per level, the next lease tried in the else branch
/// (etcd has nested transactions since 3.3).
fn delete_if_under_any(key: &str, leases: &[i64]) -> etcd_client::Txn {
    let delete_under = |lease: i64| {
        etcd_client::Txn::new()
            .when([Compare::lease(key, CompareOp::Equal, lease)])
            .and_then([TxnOp::delete(key, None)])
    };
    let (&last, others) = leases.split_last().expect("at least one lease");
    others
        .iter()
        .rev()
        .fold(delete_under(last), |inner, &lease| {
            delete_under(lease).or_else([TxnOp::txn(inner)])
        })
}

/// Whether a [`delete_if_under_any`] transaction deleted its key (at any
/// level of its nesting).
fn deleted_any(resp: &etcd_client::TxnResponse) -> bool {
    resp.op_responses().iter().any(|op| match op {
        etcd_client::TxnOpResponse::Delete(d) => d.deleted() > 0,
        etcd_client::TxnOpResponse::Txn(inner) => deleted_any(inner),
        _ => false,
    })
}

/// What a read found for one key, as `KeyStates` holds it.
fn key_state(kv: Option<KeyValue>) -> Option<(i64, i64, Vec<u8>)> {
    kv.map(|kv| (kv.mod_revision(), kv.lease(), kv.value().to_vec()))
}
