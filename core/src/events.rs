//! Every state change of a client is an [`Event`], delivered to subscribers in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::sync::mpsc;

/// Why the client considers its lease lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// etcd answered a keepalive with TTL 0: the lease expired or was revoked.
    Expired,
    /// etcd does not know the lease (for example, its data was wiped).
    NotFound,
    /// No keepalive answer arrived within the deadline.
    Timeout,
    /// The keepalive stream broke or could not be opened.
    StreamBroken(String),
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::Expired => f.write_str("lease expired or revoked"),
            LostReason::NotFound => f.write_str("lease not found"),
            LostReason::Timeout => f.write_str("keepalive timed out"),
            LostReason::StreamBroken(why) => write!(f, "keepalive stream broken: {why}"),
        }
    }
}

/// A state change of a client. It serializes (serde) as an object with its
/// `kind` in snake_case and its fields (`reason` as text, `outage` in
/// seconds): the form bindings and tools hand on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A registration was confirmed by etcd.
    Registered {
        /// The etcd key.
        key: String,
    },
    /// The client's lease was lost; every registration is being put back.
    LeaseLost {
        /// The lost lease.
        lease_id: i64,
        /// Why it counts as lost.
        #[serde(serialize_with = "as_text")]
        reason: LostReason,
    },
    /// All registrations are back in etcd under a new lease.
    Restored {
        /// The new lease.
        lease_id: i64,
        /// How many registrations were restored.
        registrations: usize,
        /// From the loss being noticed to everything being back.
        #[serde(serialize_with = "as_secs")]
        outage: Duration,
    },
    /// A key deleted by someone else was put back.
    KeyRestored {
        /// The etcd key.
        key: String,
    },
    /// A registration was removed by `deregister`.
    Deregistered {
        /// The etcd key.
        key: String,
    },
    /// This client registered a key another process's live lease held:
    /// the newest registration wins, and the other process hears of it as
    /// a `Conflict`.
    TookOver {
        /// The etcd key.
        key: String,
        /// The lease that held it before.
        from_lease: i64,
    },
    /// Another process wrote this key under its own lease; it is left to them.
    Conflict {
        /// The etcd key.
        key: String,
        /// The other process's lease.
        other_lease: i64,
    },
    /// A registration was taken out of etcd but kept (a failing health
    /// check, a drain): consumers no longer see it until it is reinstated.
    Withdrawn {
        /// The etcd key.
        key: String,
        /// Why, in words.
        reason: String,
    },
    /// A withdrawn registration is back in etcd.
    Reinstated {
        /// The etcd key.
        key: String,
        /// Why, in words.
        reason: String,
    },
    /// The client was closed and its lease revoked.
    Closed,
}

fn as_text<S: Serializer>(reason: &LostReason, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(reason)
}

fn as_secs<S: Serializer>(outage: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(outage.as_secs_f64())
}

/// Fan-out of events to any number of subscribers; a subscriber that has
/// gone away is dropped on the next event. Unbounded so the engine never
/// waits on a slow reader and no event is dropped.
#[derive(Clone, Default)]
pub(crate) struct EventBus {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Event>>>>,
}

impl EventBus {
    pub(crate) fn subscribe(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push(tx);
        EventStream { rx }
    }

    pub(crate) fn emit(&self, event: Event) {
        let mut subs = self.lock();
        if subs.is_empty() {
            return;
        }
        subs.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Event>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The events of one client, in the order they happened.
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without blocking.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Blocks the calling (non-async) thread for the next event, up to `timeout`.
    pub fn next_blocking(&mut self, timeout: Duration) -> crate::error::Result<Option<Event>> {
        crate::runtime::block_on(async {
            tokio::time::timeout(timeout, self.rx.recv())
                .await
                .unwrap_or(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_kind_and_fields() {
        let lost = Event::LeaseLost {
            lease_id: 7,
            reason: LostReason::Expired,
        };
        let restored = Event::Restored {
            lease_id: 8,
            registrations: 2,
            outage: Duration::from_millis(1500),
        };
        assert_eq!(
            serde_json::to_string(&lost).unwrap(),
            r#"{"kind":"lease_lost","lease_id":7,"reason":"lease expired or revoked"}"#
        );
        assert_eq!(
            serde_json::to_string(&restored).unwrap(),
            r#"{"kind":"restored","lease_id":8,"registrations":2,"outage":1.5}"#
        );
        assert_eq!(
            serde_json::to_string(&Event::Closed).unwrap(),
            r#"{"kind":"closed"}"#
        );
    }
}
