//! The supervisor: one task per client that owns the lease and every
//! registration, writes them, and heals them until the client is closed.
//!
//! Everything that changes what this client holds in etcd goes through this
//! task, one step at a time, so the order of our writes and of the watch
//! events about them is never in doubt. Keepalive runs beside it
//! ([`crate::keepalive`]) so a slow write never delays a keepalive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, TxnOp, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::events::{Event, EventBus, LostReason};
use crate::keepalive::LeaseToKeep;
use crate::options::Resolved;
use crate::requests::{bounded, is_lease_missing, BoundedEtcd};
use crate::wire;

/// etcd's default `--max-txn-ops`: the most operations in one transaction.
pub(crate) const MAX_TXN_OPS: usize = 128;
/// Up to this many service names get a watch each; beyond, one watch covers the whole prefix.
const MAX_NAME_WATCHES: usize = 64;
/// Keys per page when reading a service name's keys (keys only: ~100 bytes each).
const SWEEP_PAGE: i64 = 5_000;
/// Up to this many dirty keys in a chunk are read one by one; more, by name.
const MAX_SINGLE_READS: usize = 16;
/// A healing step runs at least this long before a caller's command may preempt it.
const PREEMPT_HEALING_AFTER: Duration = Duration::from_millis(50);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Short enough that recovery follows the end of an outage within about
/// half a second; each client then retries about twice a second meanwhile.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A registration to write.
#[derive(Debug)]
pub(crate) struct NewEntry {
    pub key: String,
    pub name: String,
    pub value: String,
}

/// Requests from the client handles.
pub(crate) enum Command {
    Register {
        entries: Vec<NewEntry>,
        deadline: Instant,
        reply: oneshot::Sender<Result<()>>,
    },
    Update {
        key: String,
        value: String,
        deadline: Instant,
        reply: oneshot::Sender<Result<()>>,
    },
    Deregister {
        key: String,
        deadline: Instant,
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        deadline: Instant,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What the handles may read without asking the supervisor.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Current lease, 0 while none is held.
    pub lease_id: AtomicI64,
    /// TTL etcd granted for the current lease.
    pub granted_ttl_secs: AtomicU32,
    /// Keepalive requests sent so far.
    pub keepalives_sent: Arc<AtomicU64>,
    /// Registrations currently held.
    pub registrations: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// Ours: kept alive and healed.
    Us,
    /// Overwritten by another process under this lease: reported and left alone.
    Other(i64),
    /// Deleted from outside while healing of deleted keys is off: left alone.
    Removed,
}

struct Entry {
    name: String,
    value: String,
    holder: Holder,
    /// Revision of our last write of this key; older watch events are stale.
    written_rev: i64,
    /// The lease of that write: a key missing while it still lives was deleted from outside.
    written_lease: i64,
    /// Whether that write carried `value` (false while an update is not yet written).
    value_written: bool,
}

pub(crate) struct Supervisor {
    etcd: BoundedEtcd,
    opts: Resolved,
    events: EventBus,
    status: Arc<Status>,
    lease: Option<LeaseToKeep>,
    lease_tx: watch::Sender<Option<LeaseToKeep>>,
    lost_rx: mpsc::UnboundedReceiver<(i64, LostReason)>,
    entries: HashMap<String, Entry>,
    /// Service name -> how many of our entries carry it (decides what we watch).
    names: BTreeMap<String, usize>,
    /// Keys whose state in etcd must be checked and put right.
    dirty: BTreeSet<String>,
    /// Keys we may have left behind (a failed register or deregister) and must delete.
    orphans: BTreeSet<String>,
    /// Names we hold no key of now but where a late write of ours may still
    /// land: every name we held, and names of registers that failed unsure
    /// whether their write landed. Watched and swept like our own names, so
    /// such a write is found and removed.
    former_names: BTreeSet<String>,
    /// Service names whose keys are all read again before the next writes:
    /// after our watch was (re)opened (a write of ours may have landed
    /// unseen meanwhile) or a new lease was granted.
    sweep: BTreeSet<String>,
    /// What the last sweep found at each of our keys (mod revision, lease;
    /// `None`: absent), until a healing write uses it.
    seen: HashMap<String, Option<(i64, i64)>>,
    /// Leases we held before; keys still under them are ours to take back.
    former_leases: Vec<i64>,
    /// Former leases not yet confirmed revoked.
    leases_to_revoke: Vec<i64>,
    watch: Option<WatchStream>,
    watch_covers_prefix: bool,
    /// Service names the open watch covers (kept when a name's last key goes:
    /// watching it again would duplicate its events).
    watched_names: BTreeSet<String>,
    /// When the current outage began (lease lost or watch broken).
    outage_since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
}

enum Wake {
    LeaseLost(i64, LostReason),
    Command(Option<Command>),
    Watch(std::result::Result<Option<WatchResponse>, etcd_client::Error>),
    Heal,
}

impl Supervisor {
    /// Grants the first lease, starts keepalive and returns the supervisor, ready to run.
    pub(crate) async fn start(
        etcd: BoundedEtcd,
        opts: Resolved,
        events: EventBus,
        status: Arc<Status>,
    ) -> Result<Self> {
        let (lease_tx, lease_rx) = watch::channel(None);
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let mut sup = Supervisor {
            etcd: etcd.clone(),
            opts,
            events,
            status: status.clone(),
            lease: None,
            lease_tx,
            lost_rx,
            entries: HashMap::new(),
            names: BTreeMap::new(),
            dirty: BTreeSet::new(),
            orphans: BTreeSet::new(),
            former_names: BTreeSet::new(),
            sweep: BTreeSet::new(),
            seen: HashMap::new(),
            former_leases: Vec::new(),
            leases_to_revoke: Vec::new(),
            watch: None,
            watch_covers_prefix: false,
            watched_names: BTreeSet::new(),
            outage_since: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
        };
        sup.grant(Instant::now() + sup.opts.request_timeout).await?;
        tokio::spawn(crate::keepalive::run(
            etcd.raw().clone(),
            lease_rx,
            lost_tx,
            status.keepalives_sent.clone(),
        ));
        Ok(sup)
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut preempted: Option<Option<Command>> = None;
        loop {
            let heal_due = self.needs_healing();
            let wake = match preempted.take() {
                Some(cmd) => Wake::Command(cmd),
                None => tokio::select! {
                    biased;
                    Some((id, reason)) = self.lost_rx.recv() => Wake::LeaseLost(id, reason),
                    cmd = commands.recv() => Wake::Command(cmd),
                    msg = next_watch_message(&mut self.watch) => Wake::Watch(msg),
                    _ = tokio::time::sleep_until(self.retry_at), if heal_due => Wake::Heal,
                },
            };
            match wake {
                Wake::LeaseLost(id, reason) => self.on_lease_lost(id, reason),
                Wake::Command(None) => {
                    // Every handle is gone without close(): close on their behalf.
                    let deadline = Instant::now() + self.close_budget();
                    let _ = self.close(deadline).await;
                    return;
                }
                Wake::Command(Some(Command::Close { deadline, reply })) => {
                    let _ = reply.send(self.close(deadline).await);
                    return;
                }
                Wake::Command(Some(Command::Register {
                    entries,
                    deadline,
                    reply,
                })) => {
                    let mut batch = vec![(entries, deadline, reply)];
                    let mut next = None;
                    // Concurrent registers share one transaction, up to etcd's limit.
                    let mut ops: usize = batch[0].0.len();
                    while ops < MAX_TXN_OPS {
                        match commands.try_recv() {
                            Ok(Command::Register {
                                entries,
                                deadline,
                                reply,
                            }) if ops + entries.len() <= MAX_TXN_OPS => {
                                ops += entries.len();
                                batch.push((entries, deadline, reply));
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.register(batch).await;
                    if let Some(cmd) = next {
                        if self.handle_other(cmd).await {
                            return;
                        }
                    }
                }
                Wake::Command(Some(cmd)) => {
                    if self.handle_other(cmd).await {
                        return;
                    }
                }
                Wake::Watch(msg) => self.on_watch(msg),
                Wake::Heal => {
                    // A caller must not wait behind a long healing step (etcd
                    // electing a leader, say): its command preempts the step,
                    // which resumes from its progress right after.
                    tokio::select! {
                        biased;
                        () = self.heal() => {}
                        cmd = async {
                            // Short steps finish first, so healing still
                            // progresses under a steady stream of commands.
                            tokio::time::sleep(PREEMPT_HEALING_AFTER).await;
                            commands.recv().await
                        } => preempted = Some(cmd),
                    }
                    if preempted.is_some() {
                        self.heal_soon();
                    }
                }
            }
        }
    }

    /// Handles a non-batched command; true when the supervisor must stop.
    async fn handle_other(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Register {
                entries,
                deadline,
                reply,
            } => self.register(vec![(entries, deadline, reply)]).await,
            Command::Update {
                key,
                value,
                deadline,
                reply,
            } => {
                let _ = reply.send(self.update(key, value, deadline).await);
            }
            Command::Deregister {
                key,
                deadline,
                reply,
            } => {
                let _ = reply.send(self.deregister(key, deadline).await);
            }
            Command::Close { deadline, reply } => {
                let _ = reply.send(self.close(deadline).await);
                return true;
            }
        }
        false
    }

    fn close_budget(&self) -> Duration {
        self.opts.request_timeout.min(Duration::from_secs(2))
    }

    fn needs_healing(&self) -> bool {
        self.lease.is_none()
            || !self.dirty.is_empty()
            || !self.orphans.is_empty()
            || !self.sweep.is_empty()
            || !self.leases_to_revoke.is_empty()
            || (self.watch.is_none() && self.has_names_to_watch())
    }

    fn heal_soon(&mut self) {
        self.retry_at = Instant::now();
    }

    fn start_outage(&mut self) {
        self.outage_since.get_or_insert_with(Instant::now);
    }

    // ----- lease -----------------------------------------------------------

    async fn grant(&mut self, until: Instant) -> Result<()> {
        let ttl = i64::from(self.opts.ttl_secs);
        let granted = self.etcd.grant(remaining(until), ttl).await?;
        let new = LeaseToKeep {
            id: granted.id(),
            ttl_secs: u32::try_from(granted.ttl()).unwrap_or(self.opts.ttl_secs),
        };
        tracing::info!(
            lease = format_args!("{:x}", new.id),
            ttl_secs = new.ttl_secs,
            "lease granted"
        );
        self.lease = Some(new);
        self.status.lease_id.store(new.id, Ordering::Relaxed);
        self.status
            .granted_ttl_secs
            .store(new.ttl_secs, Ordering::Relaxed);
        let _ = self.lease_tx.send(Some(new));
        // Every live key must now move to the new lease.
        self.recheck_everything();
        Ok(())
    }

    /// Marks every key of ours for checking, reading each service name's
    /// keys in one ranged read rather than key by key.
    fn recheck_everything(&mut self) {
        self.seen.clear();
        self.dirty.extend(
            self.entries
                .iter()
                .filter(|(_, e)| e.holder == Holder::Us)
                .map(|(k, _)| k.clone()),
        );
        let names = self.names_to_watch();
        self.sweep.extend(names);
    }

    fn has_names_to_watch(&self) -> bool {
        !self.names.is_empty() || !self.former_names.is_empty()
    }

    /// Our service names and the former ones.
    fn names_to_watch(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.names.keys().cloned().collect();
        names.extend(self.former_names.iter().cloned());
        names
    }

    fn on_lease_lost(&mut self, id: i64, reason: LostReason) {
        if self.lease.map(|l| l.id) != Some(id) {
            return; // an old lease we already replaced
        }
        self.lease = None;
        self.status.lease_id.store(0, Ordering::Relaxed);
        self.former_leases.push(id);
        if self.former_leases.len() > 16 {
            self.former_leases.remove(0);
        }
        // A lease we gave up on may still live (a timeout is not a death):
        // revoke it once etcd answers, so its keys cannot outlive this process.
        self.leases_to_revoke.push(id);
        self.start_outage();
        self.events.emit(Event::LeaseLost {
            lease_id: id,
            reason,
        });
        self.backoff = FIRST_BACKOFF;
        self.heal_soon();
    }

    // ----- healing -----------------------------------------------------------

    /// One healing step: lease, then dirty keys, orphans and the watch. On
    /// failure, retries after a jittered exponential backoff capped at ~0.6 s.
    async fn heal(&mut self) {
        match self.heal_once().await {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                if !self.needs_healing() {
                    if let Some(since) = self.outage_since.take() {
                        let lease_id = self.lease.map(|l| l.id).unwrap_or(0);
                        let outage = since.elapsed();
                        tracing::info!(
                            lease = format_args!("{lease_id:x}"),
                            ?outage,
                            "registrations restored"
                        );
                        self.events.emit(Event::Restored {
                            lease_id,
                            registrations: self.live_count(),
                            outage,
                        });
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "healing step failed; retrying");
                self.retry_at = Instant::now() + jitter(self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn heal_once(&mut self) -> Result<()> {
        let until = Instant::now() + self.opts.request_timeout;
        if self.lease.is_none() {
            self.grant(until).await?;
        }
        if self.watch.is_none() && self.has_names_to_watch() {
            // Watch first, then check once everything written before the
            // watch began: nothing can slip between the two.
            self.open_watch().await?;
            self.recheck_everything();
        }
        if !self.dirty.is_empty() || !self.sweep.is_empty() {
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
        if !self.orphans.is_empty() {
            self.delete_orphans().await?;
        }
        // Last: every live key has moved to the current lease by now.
        while let Some(&id) = self.leases_to_revoke.last() {
            self.etcd
                .revoke("revoking a former lease", self.opts.request_timeout, id)
                .await?;
            self.leases_to_revoke.pop();
        }
        Ok(())
    }

    /// Reads the dirty keys and puts right what is wrong, a transaction per
    /// 128 keys. Names to sweep are read first, one ranged read each.
    async fn reconcile_dirty(&mut self) -> Result<()> {
        let Some(lease) = self.lease else {
            return Err(Error::Unavailable("no lease".into()));
        };
        loop {
            while let Some(name) = self.sweep.first().cloned() {
                self.sweep_name(&name, lease.id).await?;
                self.sweep.remove(&name);
            }
            // Each finished chunk stays done: a preempted step resumes where it was.
            let Some(chunk) = self.next_dirty_chunk() else {
                return Ok(());
            };
            let unseen: Vec<String> = chunk
                .iter()
                .filter(|k| !self.seen.contains_key(*k))
                .cloned()
                .collect();
            if unseen.len() > MAX_SINGLE_READS {
                // Many keys to read (a revoked lease's keys, all deleted at
                // once): a ranged read per name is cheaper than a get per key.
                let names: Vec<String> = unseen
                    .iter()
                    .filter_map(|k| self.entries.get(k).map(|e| e.name.clone()))
                    .collect();
                self.sweep.extend(names);
                continue;
            }
            self.reconcile_chunk(lease.id, &chunk, unseen).await?;
        }
    }

    /// Reads every key of service `name` (keys only) and compares it with
    /// what we hold: keys of ours that are missing, moved or overwritten
    /// become dirty, with what was found remembered for the write; keys
    /// under our lease that we do not hold are orphans (a write of ours
    /// that landed after its caller was told it failed, or after a delete).
    async fn sweep_name(&mut self, name: &str, lease: i64) -> Result<()> {
        let range = wire::service_prefix(&self.opts.prefix, name);
        let found = self
            .etcd
            .list_keys(
                "reading registrations",
                self.opts.request_timeout,
                &range,
                SWEEP_PAGE,
            )
            .await?;
        let mut present = BTreeSet::new();
        for kv in &found {
            let Ok(key) = kv.key_str() else { continue };
            present.insert(key);
            let state = Some((kv.mod_revision(), kv.lease()));
            let Some(entry) = self.entries.get_mut(key) else {
                if kv.lease() == lease {
                    tracing::debug!(
                        key,
                        "a key under our lease that we do not hold; removing it"
                    );
                    self.orphans.insert(key.to_string());
                }
                continue;
            };
            match entry.holder {
                Holder::Us => {
                    let intact = kv.lease() == lease
                        && kv.mod_revision() == entry.written_rev
                        && entry.value_written;
                    if intact {
                        self.dirty.remove(key);
                    } else {
                        self.dirty.insert(key.to_string());
                        self.seen.insert(key.to_string(), state);
                    }
                }
                Holder::Other(_) => entry.holder = Holder::Other(kv.lease()),
                Holder::Removed => {}
            }
        }
        for (key, entry) in self.entries.iter_mut() {
            if entry.name != name || present.contains(key.as_str()) {
                continue;
            }
            if let Holder::Other(_) = entry.holder {
                // The other holder left while we were not watching: ours again.
                entry.holder = Holder::Us;
            }
            if entry.holder == Holder::Us {
                self.dirty.insert(key.clone());
                self.seen.insert(key.clone(), None);
            }
        }
        Ok(())
    }

    fn next_dirty_chunk(&mut self) -> Option<Vec<String>> {
        // Keys no longer ours (deregistered or conflicted meanwhile) need nothing.
        let entries = &self.entries;
        self.dirty
            .retain(|k| entries.get(k).is_some_and(|e| e.holder == Holder::Us));
        let chunk: Vec<String> = self.dirty.iter().take(MAX_TXN_OPS).cloned().collect();
        (!chunk.is_empty()).then_some(chunk)
    }

    /// Puts `keys` right; `unseen` are those the sweep did not see.
    async fn reconcile_chunk(
        &mut self,
        lease: i64,
        keys: &[String],
        unseen: Vec<String>,
    ) -> Result<()> {
        let timeout = self.opts.request_timeout;
        // A key the sweep saw needs no read of its own; the others are read
        // with plain gets, not a read-only transaction: etcd 3.5.0-3.5.4
        // panics when a client cancels one (etcd-io/etcd#14110).
        let mut read: HashMap<String, Option<etcd_client::KeyValue>> = if unseen.is_empty() {
            HashMap::new()
        } else {
            let found = self
                .etcd
                .get_keys("reading registrations", timeout, &unseen)
                .await?;
            unseen.into_iter().zip(found).collect()
        };

        let mut compares = Vec::new();
        let mut puts = Vec::new();
        let mut to_write = Vec::new();
        for key in keys {
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            // (mod revision, lease, whether it holds our value) of the key, if present.
            let current = match self.seen.remove(key) {
                Some(seen) => seen.map(|(rev, held_by)| {
                    let ours = entry.value_written && rev == entry.written_rev;
                    (rev, held_by, ours)
                }),
                None => read.remove(key).flatten().map(|kv| {
                    let ours = kv.value() == entry.value.as_bytes();
                    (kv.mod_revision(), kv.lease(), ours)
                }),
            };
            let (mod_rev, holder_lease, holds_our_value) = current.unwrap_or((0, 0, false));
            if holder_lease == lease && holds_our_value {
                self.dirty.remove(key);
                continue;
            }
            if current.is_none() && entry.written_lease == lease && !self.opts.heal_deleted_keys {
                // Deleted from outside under a living lease, and we were told not to fight it.
                entry.holder = Holder::Removed;
                self.dirty.remove(key);
                continue;
            }
            let ours = holder_lease == 0
                || holder_lease == lease
                || self.former_leases.contains(&holder_lease);
            if !ours {
                entry.holder = Holder::Other(holder_lease);
                self.dirty.remove(key);
                tracing::warn!(
                    key,
                    other_lease = format_args!("{holder_lease:x}"),
                    "key held by another process; leaving it"
                );
                self.events.emit(Event::Conflict {
                    key: key.clone(),
                    other_lease: holder_lease,
                });
                continue;
            }
            compares.push(Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                mod_rev,
            ));
            puts.push(TxnOp::put(
                key.as_str(),
                entry.value.as_str(),
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            ));
            to_write.push((key.clone(), current.is_none()));
        }
        if puts.is_empty() {
            return Ok(());
        }
        let write = etcd_client::Txn::new().when(compares).and_then(puts);
        let written = self
            .etcd
            .txn("restoring registrations", timeout, write)
            .await?;
        if !written.succeeded() {
            // Something changed between our read and write: read again next round.
            return Err(Error::Etcd("registrations changed while healing".into()));
        }
        let rev = written.header().map(|h| h.revision()).unwrap_or(0);
        for (key, was_missing) in to_write {
            self.dirty.remove(&key);
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.written_rev = rev;
                entry.written_lease = lease;
                entry.value_written = true;
            }
            if was_missing && self.outage_since.is_none() {
                tracing::info!(key, "key deleted from outside; put back");
                self.events.emit(Event::KeyRestored { key });
            }
        }
        Ok(())
    }

    async fn delete_orphans(&mut self) -> Result<()> {
        let timeout = self.opts.request_timeout;
        let lease = self.lease.map(|l| l.id).unwrap_or(0);
        while let Some(key) = self.orphans.iter().next().cloned() {
            if self.entries.contains_key(&key) {
                self.orphans.remove(&key);
                continue; // registered again meanwhile
            }
            // Only our own write may be removed, never another process's.
            let txn = etcd_client::Txn::new()
                .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
                .and_then([TxnOp::delete(key.as_str(), None)]);
            self.etcd
                .txn("removing a leftover key", timeout, txn)
                .await?;
            self.orphans.remove(&key);
        }
        Ok(())
    }

    // ----- watching our own keys --------------------------------------------

    /// Opens the watch on our own keys from now on, and waits until etcd
    /// has created every part of it.
    async fn open_watch(&mut self) -> Result<()> {
        let names = self.names_to_watch();
        let covers_prefix = names.len() > MAX_NAME_WATCHES;
        let ranges: Vec<String> = if covers_prefix {
            vec![format!("{}/", self.opts.prefix)]
        } else {
            names
                .iter()
                .map(|n| wire::service_prefix(&self.opts.prefix, n))
                .collect()
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
                    return Err(Error::Unavailable(format!(
                        "watch refused: {}",
                        resp.cancel_reason()
                    )))
                }
                Some(resp) => self.on_watch(Ok(Some(resp))),
                None => return Err(Error::Unavailable("watch closed by etcd".into())),
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

    /// Adds a watch for a newly registered service name, from just after its write.
    async fn watch_new_name(&mut self, name: &str, written_rev: i64) {
        if self.watch_covers_prefix || self.watched_names.contains(name) {
            return;
        }
        if self.watched_names.len() >= MAX_NAME_WATCHES {
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
        let range = wire::service_prefix(&self.opts.prefix, name);
        if stream.watch(range, Some(options)).await.is_err() {
            self.watch = None;
            self.heal_soon();
        } else {
            self.watched_names.insert(name.to_string());
        }
    }

    fn on_watch(&mut self, msg: std::result::Result<Option<WatchResponse>, etcd_client::Error>) {
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
        let lease = self.lease.map(|l| l.id).unwrap_or(0);
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            let Some(entry) = self.entries.get_mut(key) else {
                // Under our lease but not ours to hold (deregistered, or a
                // register that failed): a write of ours that etcd applied
                // after the delete, such as a healing write cut short by a
                // command. Our lease would keep it alive: remove it.
                if event.event_type() == EventType::Put && lease != 0 && kv.lease() == lease {
                    tracing::debug!(key, "a late write of a key we do not hold; removing it");
                    self.orphans.insert(key.to_string());
                    self.heal_soon();
                }
                continue;
            };
            if kv.mod_revision() <= entry.written_rev {
                continue; // about a write older than our last one
            }
            match (event.event_type(), entry.holder) {
                (EventType::Delete, Holder::Us) => {
                    if self.opts.heal_deleted_keys || kv.lease() != entry.written_lease {
                        self.dirty.insert(key.to_string());
                        self.heal_soon();
                    } else {
                        tracing::info!(key, "key deleted from outside; left deleted (healing of deleted keys is off)");
                        entry.holder = Holder::Removed;
                    }
                }
                (_, Holder::Removed) => {}
                (EventType::Delete, Holder::Other(_)) => {
                    // The other holder left: the key is ours again.
                    entry.holder = Holder::Us;
                    self.dirty.insert(key.to_string());
                    self.heal_soon();
                }
                (EventType::Put, Holder::Us) => {
                    let other = kv.lease();
                    if other == lease || self.former_leases.contains(&other) {
                        continue;
                    }
                    entry.holder = Holder::Other(other);
                    self.dirty.remove(key);
                    tracing::warn!(
                        key,
                        other_lease = format_args!("{other:x}"),
                        "key overwritten by another process; leaving it"
                    );
                    self.events.emit(Event::Conflict {
                        key: key.to_string(),
                        other_lease: other,
                    });
                }
                (EventType::Put, Holder::Other(_)) => entry.holder = Holder::Other(kv.lease()),
            }
        }
    }

    fn drop_watch(&mut self) {
        self.watch = None;
        self.start_outage();
        self.heal_soon();
    }

    // ----- commands ----------------------------------------------------------

    async fn register(
        &mut self,
        batch: Vec<(Vec<NewEntry>, Instant, oneshot::Sender<Result<()>>)>,
    ) {
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
                .find(|e| self.entries.contains_key(&e.key) || seen.contains(&e.key))
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
        match result {
            Ok(()) => {
                for (entries, _, reply) in accepted {
                    for e in &entries {
                        self.events.emit(Event::Registered { key: e.key.clone() });
                    }
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                for (_, _, reply) in accepted {
                    let _ = reply.send(Err(e.clone()));
                }
            }
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
            let (rev, lease_used) = loop {
                let lease = self.lease.map(|l| l.id).unwrap_or(0);
                match self.put_chunk(chunk, lease, until).await {
                    Ok(rev) => break (rev, lease),
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
                            self.orphans.extend(chunk.iter().map(|e| e.key.clone()));
                            self.suspect(chunk.iter().map(|e| e.name.as_str()));
                        }
                        let e = match e {
                            // Name what was refused: the caller's role may not write it.
                            Error::PermissionDenied(why) => Error::PermissionDenied(match chunk {
                                [one] => format!("{why} (writing {})", one.key),
                                [first, ..] => format!(
                                    "{why} (writing {} keys from {})",
                                    chunk.len(),
                                    first.key
                                ),
                                [] => why,
                            }),
                            other => other,
                        };
                        return Err(self.undo(&written, e));
                    }
                }
            };
            for e in chunk {
                *self.names.entry(e.name.clone()).or_default() += 1;
                self.entries.insert(
                    e.key.clone(),
                    Entry {
                        name: e.name.clone(),
                        value: e.value.clone(),
                        holder: Holder::Us,
                        written_rev: rev,
                        written_lease: lease_used,
                        value_written: true,
                    },
                );
                let name = e.name.clone();
                self.watch_new_name(&name, rev).await;
            }
            written.extend(chunk);
        }
        self.status
            .registrations
            .store(self.entries.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Watches (from a fresh watch and sweep) the names no open watch covers.
    fn suspect<'n>(&mut self, names: impl Iterator<Item = &'n str>) {
        for name in names {
            let watched = self.watch.is_some()
                && (self.watch_covers_prefix || self.watched_names.contains(name));
            if !watched && self.former_names.insert(name.to_string()) {
                self.watch = None;
            }
        }
        self.heal_soon();
    }

    async fn put_chunk(&self, chunk: &[&NewEntry], lease: i64, until: Instant) -> Result<i64> {
        let puts: Vec<TxnOp> = chunk
            .iter()
            .map(|e| {
                TxnOp::put(
                    e.key.as_str(),
                    e.value.as_str(),
                    Some(etcd_client::PutOptions::new().with_lease(lease)),
                )
            })
            .collect();
        let txn = etcd_client::Txn::new().and_then(puts);
        let resp = self.etcd.txn("register", remaining(until), txn).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Forgets registrations written earlier in a failed call and queues their deletion.
    fn undo(&mut self, written: &[&NewEntry], err: Error) -> Error {
        for e in written {
            self.forget(&e.key);
            self.orphans.insert(e.key.clone());
        }
        if !written.is_empty() {
            self.heal_soon();
        }
        err
    }

    fn forget(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.dirty.remove(key);
        self.seen.remove(key);
        if let Some(count) = self.names.get_mut(&entry.name) {
            *count -= 1;
            if *count == 0 {
                self.names.remove(&entry.name);
                self.former_names.insert(entry.name.clone());
            }
        }
        self.status
            .registrations
            .store(self.entries.len() as u64, Ordering::Relaxed);
        Some(entry)
    }

    async fn update(&mut self, key: String, value: String, until: Instant) -> Result<()> {
        let lease = self.lease.map(|l| l.id);
        let Some(entry) = self.entries.get_mut(&key) else {
            return Err(Error::NotRegistered { key });
        };
        entry.value = value.clone();
        entry.value_written = false;
        match entry.holder {
            Holder::Other(other_lease) => return Err(Error::Conflict { key, other_lease }),
            Holder::Removed => return Err(Error::NotRegistered { key }),
            Holder::Us => {}
        }
        let Some(lease) = lease else {
            self.dirty.insert(key);
            return Err(Error::Unavailable(
                "lease lost; the new value is written once etcd is back".into(),
            ));
        };
        // Rewrite in place, only while the key is still under our lease: no window without it.
        let txn = etcd_client::Txn::new()
            .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
            .and_then([TxnOp::put(
                key.as_str(),
                value.as_str(),
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            )]);
        let result = self.etcd.txn("update", remaining(until), txn).await;
        match result {
            Ok(resp) if resp.succeeded() => {
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.written_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    entry.written_lease = lease;
                    entry.value_written = true;
                }
                Ok(())
            }
            Ok(_) => {
                // Not under our lease any more: heal it now and report what we found.
                self.dirty.insert(key.clone());
                self.reconcile_dirty().await?;
                match self.entries.get(&key).map(|e| e.holder) {
                    Some(Holder::Other(other_lease)) => Err(Error::Conflict { key, other_lease }),
                    _ => Ok(()),
                }
            }
            Err(e) => {
                self.dirty.insert(key);
                self.heal_soon();
                Err(e)
            }
        }
    }

    async fn deregister(&mut self, key: String, until: Instant) -> Result<()> {
        let Some(entry) = self.forget(&key) else {
            return Ok(()); // already gone: deregistering twice is harmless
        };
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
                self.orphans.insert(key);
                self.heal_soon();
                Err(e)
            }
        }
    }

    async fn close(&mut self, until: Instant) -> Result<()> {
        let _ = self.lease_tx.send(None);
        self.watch = None;
        let result = match self.lease.take() {
            Some(lease) => {
                self.etcd
                    .revoke("closing (lease revoke)", remaining(until), lease.id)
                    .await
            }
            None => Ok(()),
        };
        self.status.lease_id.store(0, Ordering::Relaxed);
        self.entries.clear();
        self.status.registrations.store(0, Ordering::Relaxed);
        self.events.emit(Event::Closed);
        result
    }

    fn live_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.holder == Holder::Us)
            .count()
    }
}

async fn next_watch_message(
    watch: &mut Option<WatchStream>,
) -> std::result::Result<Option<WatchResponse>, etcd_client::Error> {
    match watch {
        Some(stream) => stream.message().await,
        None => std::future::pending().await,
    }
}

fn remaining(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Backoff with ±25 % jitter so many clients do not retry in step.
fn jitter(base: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    let unit = (h.finish() % 1000) as f64 / 1000.0; // 0.0..1.0
    base.mul_f64(0.75 + unit * 0.5)
}
