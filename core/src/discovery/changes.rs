//! The changes of a watcher that nobody has read yet: a bounded queue.
//!
//! The watcher's task pushes (never waiting); readers pop, waiting with a
//! deadline. A wait can be abandoned at any point (a timeout, Ctrl-C, a
//! cancelled task): a change is only taken off the queue by the reader that
//! returns it.
//!
//! The queue stays bounded when nobody reads (a consumer that only calls
//! `pick()`, a C watcher without a callback): once it grows past about
//! twice the number of instances, it is squashed into the true difference
//! between what the reader was last handed and what the changes lead to,
//! the way a watcher reports changes after it lost track (a compaction).
//! Replaying what a reader gets still gives the watcher's cache: no stale
//! instance, none twice. Memory is bounded by the number of instances, not
//! by the number of changes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::instance::Instance;

/// Never squash below this many queued changes.
const MIN_SQUASH_LEN: usize = 1024;

/// A change in a watched service, in the order etcd made them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new instance.
    Added(Instance),
    /// An instance whose value changed (metadata, weight...).
    Updated(Instance),
    /// An instance that is gone (deregistered, lease expired, deleted).
    Removed(Instance),
}

impl Change {
    /// The instance concerned.
    pub fn instance(&self) -> &Instance {
        match self {
            Change::Added(i) | Change::Updated(i) | Change::Removed(i) => i,
        }
    }
}

/// What one wait ended with.
#[derive(Debug)]
pub(crate) enum Next {
    Change(Change),
    Timeout,
    Closed,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Change>,
    /// The instances as the reader knows them: every change handed out, replayed.
    handed: BTreeMap<String, Instance>,
    /// Queue length at which to squash next.
    squash_at: usize,
    closed: bool,
    /// Changes folded into others by squashing.
    squashed: u64,
}

impl State {
    fn squash(&mut self) {
        let before = self.pending.len();
        let mut now = self.handed.clone();
        for change in self.pending.drain(..) {
            match change {
                Change::Added(i) | Change::Updated(i) => {
                    now.insert(i.key.clone(), i);
                }
                Change::Removed(i) => {
                    now.remove(&i.key);
                }
            }
        }
        for (key, old) in &self.handed {
            if !now.contains_key(key) {
                self.pending.push_back(Change::Removed(old.clone()));
            }
        }
        for (key, new) in now {
            match self.handed.get(&key) {
                None => self.pending.push_back(Change::Added(new)),
                Some(old) if *old != new => self.pending.push_back(Change::Updated(new)),
                Some(_) => {}
            }
        }
        self.squashed += (before - self.pending.len()) as u64;
        self.squash_at = MIN_SQUASH_LEN.max(2 * self.pending.len());
    }

    fn pop(&mut self) -> Option<Change> {
        let change = self.pending.pop_front()?;
        match &change {
            Change::Added(i) | Change::Updated(i) => {
                self.handed.insert(i.key.clone(), i.clone());
            }
            Change::Removed(i) => {
                self.handed.remove(&i.key);
            }
        }
        Some(change)
    }
}

/// A watcher's unread changes; cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct ChangeQueue {
    inner: Arc<(Mutex<State>, Notify)>,
}

impl ChangeQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a change; never blocks on a reader.
    pub fn push(&self, change: Change) {
        {
            let mut state = self.state();
            if state.closed {
                return;
            }
            state.pending.push_back(change);
            if state.pending.len() > state.squash_at.max(MIN_SQUASH_LEN) {
                state.squash();
            }
        }
        self.inner.1.notify_waiters();
    }

    /// Ends every wait, now and later; drops what was not read.
    pub fn close(&self) {
        {
            let mut state = self.state();
            state.closed = true;
            state.pending.clear();
            state.handed.clear();
        }
        self.inner.1.notify_waiters();
    }

    /// Changes folded away by squashing so far.
    pub fn squashed(&self) -> u64 {
        self.state().squashed
    }

    /// The next change if one is waiting.
    pub fn try_next(&self) -> Option<Change> {
        self.state().pop()
    }

    /// The next change, waiting up to `timeout` (`None`: no limit).
    pub async fn next(&self, timeout: Option<Duration>) -> Next {
        let wait = async {
            loop {
                // Registered before looking, so a push in between still wakes us.
                let notified = self.inner.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let mut state = self.state();
                    if state.closed {
                        return Next::Closed;
                    }
                    if let Some(change) = state.pop() {
                        return Next::Change(change);
                    }
                }
                notified.await;
            }
        };
        match timeout {
            None => wait.await,
            Some(limit) => tokio::time::timeout(limit, wait)
                .await
                .unwrap_or(Next::Timeout),
        }
    }

    #[cfg(test)]
    fn pending_len(&self) -> usize {
        self.state().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst(port: u16, weight: u32) -> Instance {
        Instance {
            key: format!("/s/h:{port}"),
            name: "s".into(),
            addr: format!("h:{port}"),
            metadata: json!({ "weight": weight })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn replay(view: &mut BTreeMap<String, Instance>, change: Change) {
        match change {
            Change::Added(i) => assert!(view.insert(i.key.clone(), i).is_none(), "duplicate add"),
            Change::Updated(i) => {
                assert!(view.insert(i.key.clone(), i).is_some(), "unknown update")
            }
            Change::Removed(i) => assert!(view.remove(&i.key).is_some(), "unknown removal"),
        }
    }

    #[test]
    fn an_unread_queue_stays_bounded_and_replays_to_the_truth() {
        let queue = ChangeQueue::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut view = BTreeMap::new();
        let mut truth = BTreeMap::new();
        // Read a little, then churn 100,000 changes over 10 instances unread.
        for p in 0..10 {
            queue.push(Change::Added(inst(p, 1)));
            truth.insert(inst(p, 1).key, inst(p, 1));
        }
        for _ in 0..3 {
            let Next::Change(c) = rt.block_on(queue.next(Some(Duration::ZERO))) else {
                panic!("a change is waiting")
            };
            replay(&mut view, c);
        }
        for n in 0..100_000u32 {
            let p = (n % 10) as u16;
            let change = match n % 3 {
                0 if truth.contains_key(&inst(p, 0).key) => Change::Removed(inst(p, 0)),
                _ if truth.contains_key(&inst(p, 0).key) => Change::Updated(inst(p, n)),
                _ => Change::Added(inst(p, n)),
            };
            match &change {
                Change::Removed(i) => {
                    truth.remove(&i.key);
                }
                Change::Added(i) | Change::Updated(i) => {
                    truth.insert(i.key.clone(), i.clone());
                }
            }
            queue.push(change);
            assert!(queue.pending_len() <= MIN_SQUASH_LEN + 1);
        }
        assert!(queue.squashed() > 90_000);
        while let Some(c) = queue.try_next() {
            replay(&mut view, c);
        }
        assert_eq!(view, truth);
        queue.close();
        assert!(matches!(rt.block_on(queue.next(None)), Next::Closed));
    }

    #[test]
    fn an_abandoned_wait_loses_nothing() {
        let queue = ChangeQueue::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // A wait given up on (its future dropped while nothing came) ...
        assert!(matches!(
            rt.block_on(queue.next(Some(Duration::from_millis(5)))),
            Next::Timeout
        ));
        // ... takes nothing from what comes next.
        queue.push(Change::Added(inst(1, 1)));
        assert_eq!(queue.try_next(), Some(Change::Added(inst(1, 1))));
        assert_eq!(queue.try_next(), None);
    }
}
