//! The supervisor: one task per client that owns the lease and every
//! registration, writes them, and heals them until the client is closed.
//!
//! Everything that changes what this client holds in etcd goes through this
//! task, one step at a time, so the order of our writes and of the watch
//! events about them is never in doubt. Keepalive runs beside it
//! ([`crate::keepalive`]) so a slow write never delays a keepalive.
//!
//! The task's state is split by concern: [`ledger`] (what we hold and owe,
//! as plain data) with [`verdicts`] (the decisions about it), and `impl` blocks for the
//! lease ([`lease`]), the commands of the handles ([`commands`]), healing
//! ([`heal`]) and the watch on our own keys ([`own_watch`]). This file holds
//! the loop that wakes for each of them.

mod commands;
mod heal;
mod lease;
mod ledger;
mod own_watch;
mod verdicts;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU32};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{WatchResponse, WatchStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::Result;
use crate::events::{EventBus, LostReason};
use crate::keepalive::LeaseToKeep;
use crate::options::Resolved;
use crate::requests::BoundedEtcd;
use ledger::Ledger;

/// etcd's default `--max-txn-ops`: the most operations in one transaction.
pub(crate) const MAX_TXN_OPS: usize = 128;
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
    /// Takes the key out of etcd but keeps the registration (`withdraw: true`),
    /// or writes it back (`false`); `reason` goes into the event.
    Withdraw {
        key: String,
        withdraw: bool,
        reason: String,
        deadline: Instant,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Closes within `budget`, counted from when the supervisor takes it up.
    Close {
        budget: Duration,
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
}

pub(crate) struct Supervisor {
    etcd: BoundedEtcd,
    opts: Resolved,
    events: EventBus,
    status: Arc<Status>,
    /// The lease held; `None` before the first registration and while healing.
    lease: Option<LeaseToKeep>,
    lease_tx: watch::Sender<Option<LeaseToKeep>>,
    lost_rx: mpsc::UnboundedReceiver<(i64, LostReason)>,
    ledger: Ledger,
    /// Every write under the current lease has a known outcome: no key we
    /// do not know of can be under it, so rechecking needs no whole-name reads.
    lease_clean: bool,
    /// Former leases not yet confirmed revoked.
    leases_to_revoke: Vec<i64>,
    /// The watch on our own keys, when open.
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
    /// Starts keepalive (idle until the first lease) and returns the
    /// supervisor, ready to run. No lease is granted before a registration.
    pub(crate) fn start(
        etcd: BoundedEtcd,
        opts: Resolved,
        events: EventBus,
        status: Arc<Status>,
    ) -> Self {
        let (lease_tx, lease_rx) = watch::channel(None);
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::keepalive::run(
            etcd.members().clone(),
            lease_rx,
            lost_tx,
        ));
        Supervisor {
            etcd,
            opts,
            events,
            status,
            lease: None,
            lease_clean: false,
            lease_tx,
            lost_rx,
            ledger: Ledger::default(),
            leases_to_revoke: Vec::new(),
            watch: None,
            watch_covers_prefix: false,
            watched_names: BTreeSet::new(),
            outage_since: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
        }
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
                    let budget = close_budget(&self.opts, self.ledger.len() as u64);
                    let _ = self.close(Instant::now() + budget).await;
                    return;
                }
                Wake::Command(Some(Command::Register {
                    entries,
                    deadline,
                    reply,
                })) => {
                    // Concurrent registers share one transaction, up to etcd's limit.
                    let mut batch = vec![(entries, deadline, reply)];
                    let mut ops: usize = batch[0].0.len();
                    let mut next = None;
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
                        if self.handle(cmd).await {
                            return;
                        }
                    }
                }
                Wake::Command(Some(cmd)) => {
                    if self.handle(cmd).await {
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

    /// Handles one command; true when the supervisor must stop.
    async fn handle(&mut self, cmd: Command) -> bool {
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
            Command::Withdraw {
                key,
                withdraw,
                reason,
                deadline,
                reply,
            } => {
                let done = if withdraw {
                    self.withdraw(key, reason, deadline).await
                } else {
                    self.restore(key, reason, deadline).await
                };
                let _ = reply.send(done);
            }
            Command::Close { budget, reply } => {
                let _ = reply.send(self.close(Instant::now() + budget).await);
                return true;
            }
        }
        false
    }

    fn needs_healing(&self) -> bool {
        let ledger = &self.ledger;
        (self.lease.is_none() && ledger.needs_lease())
            || !ledger.dirty.is_empty()
            || !ledger.orphans.is_empty()
            || !ledger.sweep.is_empty()
            || !self.leases_to_revoke.is_empty()
            || (self.watch.is_none() && ledger.has_names_to_watch())
    }

    fn heal_soon(&mut self) {
        self.retry_at = Instant::now();
    }

    fn start_outage(&mut self) {
        let since = *self.outage_since.get_or_insert_with(Instant::now);
        self.etcd.recorder().outage_began(since);
    }

    fn lease_id(&self) -> i64 {
        self.lease.map(|l| l.id).unwrap_or(0)
    }

    fn publish_registrations(&self) {
        self.etcd.recorder().registrations.store(
            self.ledger.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// How long closing may take: the option, else 2 s plus 1 s per 10,000
/// registrations. etcd deletes a lease's keys in one step: about 60 ms for
/// 10,000 on an idle machine, several seconds for 100,000 on a loaded one.
pub(crate) fn close_budget(opts: &Resolved, registrations: u64) -> Duration {
    opts.close_timeout
        .unwrap_or_else(|| Duration::from_secs(2) + Duration::from_millis(registrations / 10))
}

async fn next_watch_message(
    watch: &mut Option<WatchStream>,
) -> std::result::Result<Option<WatchResponse>, etcd_client::Error> {
    match watch {
        Some(stream) => stream.message().await,
        None => std::future::pending().await,
    }
}

/// Time left until `until`, at least 1 ms (a request with no time is still tried once).
fn remaining(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
