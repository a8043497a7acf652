//! The keepalive loop: one stream per client, one request every TTL/3, each
//! answer awaited with a deadline. `etcd-client` sends a single request per
//! call, so the loop is ours.
//!
//! The stream lives on one member. When that member fails (the stream
//! breaks) or leaves a keepalive unanswered for half the answer deadline,
//! the stream is opened again on another member ([`crate::members`]) with
//! what is left of the deadline: a lease is lost only when no member
//! answers in time, or etcd says it is gone.
//!
//! The supervisor publishes the current lease through a `watch` channel; this
//! task reports a loss (with its reason) and then waits for the next lease.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::events::LostReason;
use crate::members::Members;
use crate::metrics::Recorder;
use crate::requests::is_member_trouble;

/// Shortest wait for a keepalive answer; below this a busy etcd looks dead.
const MIN_ANSWER_DEADLINE: Duration = Duration::from_millis(500);

/// A lease the keepalive loop should keep alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseToKeep {
    pub id: i64,
    pub ttl_secs: u32,
}

/// Runs until the supervisor drops the lease sender.
pub(crate) async fn run(
    members: Arc<Members>,
    mut lease_rx: watch::Receiver<Option<LeaseToKeep>>,
    lost_tx: mpsc::UnboundedSender<(i64, LostReason)>,
) {
    loop {
        let lease = loop {
            if let Some(lease) = *lease_rx.borrow_and_update() {
                break lease;
            }
            if lease_rx.changed().await.is_err() {
                return;
            }
        };
        let Some(reason) = keep(&members, lease, &mut lease_rx).await else {
            continue; // replaced or withdrawn by the supervisor
        };
        tracing::warn!(lease = format_args!("{:x}", lease.id), %reason, "lease lost");
        if lost_tx.send((lease.id, reason)).is_err() {
            return;
        }
        // Wait for the supervisor to hand over a different lease.
        loop {
            if lease_rx.changed().await.is_err() {
                return;
            }
            if *lease_rx.borrow() != Some(lease) {
                break;
            }
        }
    }
}

/// A keepalive stream on one member.
struct Stream {
    member: usize,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

/// Why a keepalive got no good answer: the member's fault (try another) or
/// the lease's (it is gone).
enum Failure {
    Member(String),
    Lease(LostReason),
}

/// Keeps one lease alive; returns why it was lost, or `None` when the
/// supervisor replaced or withdrew it.
async fn keep(
    members: &Members,
    lease: LeaseToKeep,
    lease_rx: &mut watch::Receiver<Option<LeaseToKeep>>,
) -> Option<LostReason> {
    let sent = members.recorder().as_ref();
    let interval = Duration::from_millis(u64::from(lease.ttl_secs) * 1000 / 3);
    let answer_deadline = interval.max(MIN_ANSWER_DEADLINE);
    let mut open = match open(members, lease.id, Instant::now() + answer_deadline, sent).await {
        Ok(open) => open,
        Err(reason) => return Some(reason),
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = lease_rx.changed() => {
                if changed.is_err() || *lease_rx.borrow() != Some(lease) {
                    return None;
                }
                continue;
            }
            // Between requests the stream should be silent: anything here means
            // the connection broke, and we want to know now, not at the next tick.
            unexpected = open.stream.message() => {
                match answer_status(unexpected, members.endpoint(open.member)) {
                    None => continue,
                    Some(Failure::Lease(reason)) => return Some(reason),
                    Some(Failure::Member(why)) => {
                        members.failed(open.member, &why);
                        let until = Instant::now() + answer_deadline;
                        open = match self::open(members, lease.id, until, sent).await {
                            Ok(open) => open,
                            Err(reason) => return Some(reason),
                        };
                        continue;
                    }
                }
            }
        }
        let until = Instant::now() + answer_deadline;
        // With another member to turn to, this one gets half the deadline.
        let patience = if members.len() > 1 {
            answer_deadline / 2
        } else {
            answer_deadline
        };
        let endpoint = members.endpoint(open.member);
        let failure = match ask(&mut open, endpoint, Instant::now() + patience, sent).await {
            Ok(()) => {
                members.answered(open.member);
                continue;
            }
            Err(failure) => failure,
        };
        match failure {
            Failure::Lease(reason) => return Some(reason),
            Failure::Member(why) => {
                // Another member, with what is left of the deadline.
                members.failed(open.member, &why);
                open = match self::open(members, lease.id, until, sent).await {
                    Ok(open) => open,
                    Err(reason) => return Some(reason),
                };
            }
        }
    }
}

/// Sends one keepalive and waits for its answer until `until`.
async fn ask(
    open: &mut Stream,
    endpoint: &str,
    until: Instant,
    sent: &Recorder,
) -> Result<(), Failure> {
    let asked = Instant::now();
    if let Err(e) = open.keeper.keep_alive().await {
        return Err(classify(e, endpoint));
    }
    Recorder::add(&sent.keepalives_sent, 1);
    match tokio::time::timeout_at(until, open.stream.message()).await {
        Err(_) => Err(Failure::Member(format!(
            "no keepalive answer from {endpoint} in time"
        ))),
        Ok(answer) => {
            sent.keepalive_answered(asked.elapsed());
            answer_status(answer, endpoint).map_or(Ok(()), Err)
        }
    }
}

/// Opens a keepalive stream on the first member that answers its first
/// keepalive before `until`; each member gets half of what is left when
/// another could be tried.
async fn open(
    members: &Members,
    lease: i64,
    until: Instant,
    sent: &Recorder,
) -> Result<Stream, LostReason> {
    let mut last = LostReason::Timeout;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        let member = members.pick();
        let endpoint = members.endpoint(member);
        let patience = if members.len() > 1 { left / 2 } else { left };
        let attempt = async {
            let client = members.client(member, until).await.map_err(|e| {
                if e.is_transient() {
                    Failure::Member(e.to_string())
                } else {
                    Failure::Member(format!("cannot connect: {e}"))
                }
            })?;
            // Opening the stream sends the first keepalive and waits for its answer.
            Recorder::add(&sent.keepalives_sent, 1);
            client
                .lease_client()
                .keep_alive(lease)
                .await
                .map_err(|e| classify(e, endpoint))
        };
        match tokio::time::timeout(patience.max(Duration::from_millis(1)), attempt).await {
            Ok(Ok((keeper, stream))) => {
                members.answered(member);
                return Ok(Stream {
                    member,
                    keeper,
                    stream,
                });
            }
            Ok(Err(Failure::Lease(reason))) => return Err(reason),
            Ok(Err(Failure::Member(why))) => {
                last = LostReason::StreamBroken(why.clone());
                members.failed(member, &why);
                if members.all_avoided() {
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
            }
            Err(_) => {
                last = LostReason::Timeout;
                members.failed(member, "no keepalive answer in time");
            }
        }
    }
}

/// `None` when the answer shows a living lease, else why it is not one.
fn answer_status(
    answer: Result<Option<etcd_client::LeaseKeepAliveResponse>, etcd_client::Error>,
    endpoint: &str,
) -> Option<Failure> {
    match answer {
        Err(e) => Some(classify(e, endpoint)),
        Ok(None) => Some(Failure::Member(format!(
            "{endpoint} closed the keepalive stream"
        ))),
        // A revoked or expired lease is an answer with TTL 0, not an error.
        Ok(Some(answer)) if answer.ttl() <= 0 => Some(Failure::Lease(LostReason::Expired)),
        Ok(Some(_)) => None,
    }
}

fn classify(err: etcd_client::Error, endpoint: &str) -> Failure {
    match err {
        etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::NotFound => {
            Failure::Lease(LostReason::NotFound)
        }
        // etcd-client reports a TTL-0 first answer as this error.
        etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found") => {
            Failure::Lease(LostReason::Expired)
        }
        other if is_member_trouble(&other) => {
            tracing::debug!(error = %crate::error::describe(&other), "keepalive failed");
            Failure::Member(crate::error::in_words(&other, endpoint))
        }
        other => Failure::Lease(LostReason::StreamBroken(other.to_string())),
    }
}
