//! The keepalive loop: one stream per client, one request every TTL/3, each
//! answer awaited with a deadline. `etcd-client` sends a single request per
//! call, so the loop is ours.
//!
//! The supervisor publishes the current lease through a `watch` channel; this
//! task reports a loss (with its reason) and then waits for the next lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client as Etcd;
use tokio::sync::{mpsc, watch};

use crate::events::LostReason;

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
    etcd: Etcd,
    mut lease_rx: watch::Receiver<Option<LeaseToKeep>>,
    lost_tx: mpsc::UnboundedSender<(i64, LostReason)>,
    sent: Arc<AtomicU64>,
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
        let Some(reason) = keep(&etcd, lease, &mut lease_rx, &sent).await else {
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

/// Keeps one lease alive; returns why it was lost, or `None` when the
/// supervisor replaced or withdrew it.
async fn keep(
    etcd: &Etcd,
    lease: LeaseToKeep,
    lease_rx: &mut watch::Receiver<Option<LeaseToKeep>>,
    sent: &AtomicU64,
) -> Option<LostReason> {
    let interval = Duration::from_millis(u64::from(lease.ttl_secs) * 1000 / 3);
    let answer_deadline = interval.max(MIN_ANSWER_DEADLINE);
    let mut client = etcd.lease_client();

    // Opening the stream sends the first keepalive and waits for its answer.
    let opened = tokio::time::timeout(answer_deadline, client.keep_alive(lease.id)).await;
    sent.fetch_add(1, Ordering::Relaxed);
    let (mut keeper, mut stream) = match opened {
        Err(_) => return Some(LostReason::Timeout),
        Ok(Err(e)) => return Some(classify(e)),
        Ok(Ok(pair)) => pair,
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
            unexpected = stream.message() => match answer_status(unexpected) {
                Some(reason) => return Some(reason),
                None => continue,
            },
        }
        if let Err(e) = keeper.keep_alive().await {
            return Some(LostReason::StreamBroken(e.to_string()));
        }
        sent.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(answer_deadline, stream.message()).await {
            Err(_) => return Some(LostReason::Timeout),
            Ok(answer) => {
                if let Some(reason) = answer_status(answer) {
                    return Some(reason);
                }
            }
        }
    }
}

/// `None` when the answer shows a living lease, else why it is lost.
fn answer_status(
    answer: Result<Option<etcd_client::LeaseKeepAliveResponse>, etcd_client::Error>,
) -> Option<LostReason> {
    match answer {
        Err(e) => Some(classify(e)),
        Ok(None) => Some(LostReason::StreamBroken("closed by etcd".into())),
        // A revoked or expired lease is an answer with TTL 0, not an error.
        Ok(Some(answer)) if answer.ttl() <= 0 => Some(LostReason::Expired),
        Ok(Some(_)) => None,
    }
}

fn classify(err: etcd_client::Error) -> LostReason {
    match err {
        etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::NotFound => {
            LostReason::NotFound
        }
        // etcd-client reports a TTL-0 first answer as this error.
        etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found") => {
            LostReason::Expired
        }
        other => LostReason::StreamBroken(other.to_string()),
    }
}
