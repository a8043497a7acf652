//! What the handles ask for: register (batched, all or nothing), update in
//! place, deregister, close. Each answers once etcd confirmed it or the
//! caller's deadline passed; what is left unsure is finished by healing.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use etcd_client::{Compare, CompareOp, TxnOp};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ledger::Holder;
use super::{remaining, NewEntry, Supervisor, MAX_TXN_OPS};
use crate::error::{Error, Result};
use crate::events::{Event, LostReason};
use crate::requests::is_lease_missing;

/// Registers waiting for one transaction: (entries, deadline, reply) each.
pub(super) type Batch = Vec<(Vec<NewEntry>, Instant, oneshot::Sender<Result<()>>)>;

impl Supervisor {
    /// Registers a batch of commands in shared transactions; each command
    /// gets its own answer.
    pub(super) async fn register(&mut self, batch: Batch) {
        // Refuse duplicates per command; the rest are written together.
        let mut seen = BTreeSet::new();
        let mut accepted = Vec::new();
        for (entries, until, reply) in batch {
            if reply.is_closed() {
                continue; // the caller gave up: write nothing for it
            }
            if Instant::now() >= until {
                // Waited in line past its deadline: say so, and write nothing.
                let _ = reply.send(Err(Error::Timeout {
                    operation: "register (waiting for earlier requests)",
                    after: self.opts.request_timeout,
                }));
                continue;
            }
            let dup = entries
                .iter()
                .find(|e| self.ledger.get(&e.key).is_some() || seen.contains(&e.key))
                .map(|e| e.key.clone());
            if let Some(key) = dup {
                let _ = reply.send(Err(Error::AlreadyRegistered { key }));
                continue;
            }
            let mut own = BTreeSet::new();
            if let Some(e) = entries.iter().find(|e| !own.insert(e.key.clone())) {
                let _ = reply.send(Err(Error::AlreadyRegistered { key: e.key.clone() }));
                continue;
            }
            seen.extend(own);
            accepted.push((entries, until, reply));
        }
        if accepted.is_empty() {
            return;
        }
        let until = accepted
            .iter()
            .map(|(_, d, _)| *d)
            .min()
            .unwrap_or_else(Instant::now);
        let result = self
            .write_new(accepted.iter().flat_map(|(e, _, _)| e), until)
            .await;
        for (entries, _, reply) in accepted {
            if result.is_ok() {
                for e in &entries {
                    self.events.emit(Event::Registered { key: e.key.clone() });
                }
            }
            let _ = reply.send(result.clone());
        }
    }

    /// Writes new registrations, all or nothing: on failure, what was written is removed.
    async fn write_new<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a NewEntry>,
        until: Instant,
    ) -> Result<()> {
        if self.lease.is_none() {
            self.grant(until).await?;
        }
        let entries: Vec<&NewEntry> = entries.collect();
        let mut written: Vec<&NewEntry> = Vec::new();
        for chunk in entries.chunks(MAX_TXN_OPS) {
            let mut attempt = 0;
            let (rev, lease_used, taken) = loop {
                let lease = self.lease_id();
                match self.put_chunk(chunk, lease, until).await {
                    Ok((rev, taken)) => break (rev, lease, taken),
                    // The lease vanished under us (etcd wiped, revoked): take a new one, once.
                    Err(Error::Etcd(m)) if attempt == 0 && is_lease_missing(&m) => {
                        attempt += 1;
                        self.on_lease_lost(lease, LostReason::NotFound);
                        if let Err(e) = self.grant(until).await {
                            return Err(self.undo(&written, e));
                        }
                    }
                    Err(e) => {
                        if e.is_transient() {
                            // The write may have landed after all, even after our
                            // clean-up: remove it, and watch its name to catch it.
                            self.lease_clean = false;
                            self.ledger
                                .orphans
                                .extend(chunk.iter().map(|e| e.key.clone()));
                            self.suspect(chunk.iter().map(|e| e.name.as_str()));
                        }
                        let e = name_refused_keys(e, chunk);
                        return Err(self.undo(&written, e));
                    }
                }
            };
            for e in chunk {
                self.ledger
                    .insert(&e.key, &e.name, &e.value, rev, lease_used);
                self.watch_new_name(&e.name, rev).await;
            }
            for (key, from_lease) in taken {
                tracing::info!(
                    key,
                    from_lease = format_args!("{from_lease:x}"),
                    "registered a key another process held; it is ours now (the newest registration wins)"
                );
                self.events.emit(Event::TookOver { key, from_lease });
            }
            written.extend(chunk);
        }
        self.publish_registrations();
        Ok(())
    }

    /// Puts a chunk under `lease`; returns the revision written and the keys
    /// that another process's lease held until then (taken over).
    async fn put_chunk(
        &self,
        chunk: &[&NewEntry],
        lease: i64,
        until: Instant,
    ) -> Result<(i64, Vec<(String, i64)>)> {
        let options = etcd_client::PutOptions::new()
            .with_lease(lease)
            .with_prev_key();
        let puts: Vec<TxnOp> = chunk
            .iter()
            .map(|e| TxnOp::put(e.key.as_str(), e.value.as_str(), Some(options.clone())))
            .collect();
        let txn = etcd_client::Txn::new().and_then(puts);
        let resp = self.etcd.txn("register", remaining(until), txn).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let former = self.ledger.former_leases_of(lease);
        let taken = resp
            .op_responses()
            .iter()
            .zip(chunk)
            .filter_map(|(op, entry)| match op {
                etcd_client::TxnOpResponse::Put(put) => {
                    let prev = put.prev_key()?.lease();
                    let theirs = prev != 0 && prev != lease && !former.contains(&prev);
                    theirs.then(|| (entry.key.clone(), prev))
                }
                _ => None,
            })
            .collect();
        Ok((rev, taken))
    }

    /// Forgets registrations written earlier in a failed call and queues their deletion.
    fn undo(&mut self, written: &[&NewEntry], err: Error) -> Error {
        for e in written {
            self.ledger.forget(&e.key);
            self.ledger.orphans.insert(e.key.clone());
        }
        if !written.is_empty() {
            self.publish_registrations();
            self.heal_soon();
        }
        err
    }

    pub(super) async fn update(
        &mut self,
        key: String,
        value: String,
        until: Instant,
    ) -> Result<()> {
        let lease = self.lease;
        match self.ledger.set_value(&key, &value) {
            None | Some(Holder::Removed) => return Err(Error::NotRegistered { key }),
            Some(Holder::Other(other_lease)) => return Err(Error::Conflict { key, other_lease }),
            Some(Holder::Withdrawn) => return Ok(()), // written when restored
            Some(Holder::Us) => {}
        }
        let Some(lease) = lease else {
            self.ledger.dirty.insert(key);
            return Err(Error::unavailable(
                "lease lost; the new value is written once etcd is back",
            ));
        };
        // Rewrite in place, only while the key is still under our lease: no window without it.
        let txn = etcd_client::Txn::new()
            .when([Compare::lease(key.as_str(), CompareOp::Equal, lease.id)])
            .and_then([TxnOp::put(
                key.as_str(),
                value.as_str(),
                Some(etcd_client::PutOptions::new().with_lease(lease.id)),
            )]);
        match self.etcd.txn("update", remaining(until), txn).await {
            Ok(resp) if resp.succeeded() => {
                let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                self.ledger.record_written([key.as_str()], rev, lease.id);
                Ok(())
            }
            Ok(_) => {
                // Not under our lease any more: heal it now and report what we found.
                self.ledger.dirty.insert(key.clone());
                self.reconcile_dirty().await?;
                match self.ledger.get(&key).map(|e| e.holder) {
                    Some(Holder::Other(other_lease)) => Err(Error::Conflict { key, other_lease }),
                    _ => Ok(()),
                }
            }
            Err(e) => {
                self.ledger.dirty.insert(key);
                self.heal_soon();
                Err(e)
            }
        }
    }

    pub(super) async fn deregister(&mut self, key: String, until: Instant) -> Result<()> {
        let Some(entry) = self.ledger.forget(&key) else {
            return Ok(()); // already gone: deregistering twice is harmless
        };
        self.publish_registrations();
        if let Holder::Other(_) = entry.holder {
            self.events.emit(Event::Deregistered { key });
            return Ok(()); // the key is another process's now: not ours to delete
        }
        let txn = match self.lease {
            Some(lease) => etcd_client::Txn::new()
                .when([Compare::lease(key.as_str(), CompareOp::Equal, lease.id)])
                .and_then([TxnOp::delete(key.as_str(), None)]),
            None => etcd_client::Txn::new().and_then([TxnOp::delete(key.as_str(), None)]),
        };
        match self.etcd.txn("deregister", remaining(until), txn).await {
            Ok(_) => {
                self.events.emit(Event::Deregistered { key });
                Ok(())
            }
            Err(e) => {
                // Not confirmed: keep trying in the background (the lease bounds it anyway).
                self.ledger.orphans.insert(key);
                self.heal_soon();
                Err(e)
            }
        }
    }

    /// Takes a registration's key out of etcd, keeping the registration:
    /// healing leaves it out until [`Supervisor::restore`].
    pub(super) async fn withdraw(
        &mut self,
        key: String,
        reason: String,
        until: Instant,
    ) -> Result<()> {
        match self.ledger.set_withdrawn(&key, true) {
            None | Some(Holder::Removed) => return Err(Error::NotRegistered { key }),
            Some(Holder::Withdrawn) => return Ok(()),
            Some(Holder::Other(_)) => {} // not ours in etcd: nothing to delete
            Some(Holder::Us) => {
                let lease = self.lease_id();
                let txn = etcd_client::Txn::new()
                    .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
                    .and_then([TxnOp::delete(key.as_str(), None)]);
                if let Err(e) = self.etcd.txn("withdraw", remaining(until), txn).await {
                    // Healing deletes it, the lease bounding it meanwhile.
                    self.ledger.orphans.insert(key.clone());
                    self.heal_soon();
                    self.events.emit(Event::Withdrawn { key, reason });
                    return Err(e);
                }
            }
        }
        tracing::info!(key, %reason, "registration withdrawn");
        self.events.emit(Event::Withdrawn { key, reason });
        Ok(())
    }

    /// Writes a withdrawn registration back, as a new registration of its
    /// key (the newest wins); healing finishes it when etcd cannot be
    /// reached now.
    pub(super) async fn restore(
        &mut self,
        key: String,
        reason: String,
        until: Instant,
    ) -> Result<()> {
        match self.ledger.set_withdrawn(&key, false) {
            None | Some(Holder::Removed) => return Err(Error::NotRegistered { key }),
            Some(Holder::Withdrawn) => {}
            Some(_) => return Ok(()), // not withdrawn
        }
        self.ledger.orphans.remove(&key);
        // The event follows the write, so a consumer that reads etcd on it
        // finds the key (or healing has it, when the write failed).
        let written = self.write_back(&key, until).await;
        tracing::info!(key, %reason, "registration reinstated");
        self.events.emit(Event::Reinstated { key, reason });
        written
    }

    /// Writes a reinstated key back under our lease (granting one first if
    /// needed); on failure the key stays dirty and healing writes it.
    async fn write_back(&mut self, key: &str, until: Instant) -> Result<()> {
        let Some(entry) = self.ledger.get(key) else {
            return Ok(());
        };
        let entry = NewEntry {
            key: key.to_string(),
            name: entry.name.clone(),
            value: entry.value.clone(),
        };
        if self.lease.is_none() {
            if let Err(e) = self.grant(until).await {
                self.heal_soon();
                return Err(e);
            }
        }
        let lease = self.lease_id();
        match self.put_chunk(&[&entry], lease, until).await {
            Ok((rev, taken)) => {
                self.ledger.record_written([key], rev, lease);
                for (key, from_lease) in taken {
                    self.events.emit(Event::TookOver { key, from_lease });
                }
                Ok(())
            }
            Err(e) => {
                self.heal_soon(); // the key stays dirty: healing writes it
                Err(e)
            }
        }
    }

    /// Revokes the lease (if one was ever granted): every key of ours goes at once.
    pub(super) async fn close(&mut self, until: Instant) -> Result<()> {
        let _ = self.lease_tx.send(None);
        self.watch = None;
        let result = match self.lease.take() {
            Some(lease) => {
                let what = "closing (lease revoke; the keys expire with the lease within its TTL)";
                self.etcd.revoke(what, remaining(until), lease.id).await
            }
            None => Ok(()),
        };
        self.status.lease_id.store(0, Ordering::Relaxed);
        self.ledger.clear();
        self.publish_registrations();
        self.events.emit(Event::Closed);
        result
    }
}

/// Names what was refused: the caller's role may not write it.
fn name_refused_keys(err: Error, chunk: &[&NewEntry]) -> Error {
    let Error::PermissionDenied(why) = err else {
        return err;
    };
    Error::PermissionDenied(match chunk {
        [one] => format!("{why} (writing {})", one.key),
        [first, ..] => format!("{why} (writing {} keys from {})", chunk.len(), first.key),
        [] => why,
    })
}
