//! Event callbacks: every state change of a client, delivered in order on a
//! libregistry thread, and never after `registry_client_free` returns.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use libregistry::{blocking, Event};

use crate::boundary::{Failure, Outcome};

/// What happened.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum registry_event_kind {
    /// A registration was confirmed by etcd (`key`).
    REGISTRY_EVENT_REGISTERED = 1,
    /// The lease was lost (`lease_id`, `reason`); registrations are being put back.
    REGISTRY_EVENT_LEASE_LOST = 2,
    /// Everything is back under a new lease (`lease_id`, `registrations`, `outage_ms`).
    REGISTRY_EVENT_RESTORED = 3,
    /// A key deleted by someone else was put back (`key`).
    REGISTRY_EVENT_KEY_RESTORED = 4,
    /// A registration was removed by `registry_deregister` (`key`).
    REGISTRY_EVENT_DEREGISTERED = 5,
    /// Another process holds `key` under `other_lease_id`; it is left alone.
    REGISTRY_EVENT_CONFLICT = 6,
    /// The client was closed and its lease revoked.
    REGISTRY_EVENT_CLOSED = 7,
    /// This client registered `key`, which another process's lease
    /// (`other_lease_id`) held: the newest registration wins.
    REGISTRY_EVENT_TOOK_OVER = 8,
    /// `key` was taken out of etcd but kept (`registry_registration_withdraw`
    /// or a failing health check; `reason` says which).
    REGISTRY_EVENT_WITHDRAWN = 9,
    /// A withdrawn `key` is back in etcd (`reason` says why).
    REGISTRY_EVENT_REINSTATED = 10,
}

/// One event. Every pointer in it is owned by the library and valid only
/// during the callback; fields that do not apply are NULL or 0.
#[repr(C)]
pub struct registry_event {
    /// What happened.
    pub kind: registry_event_kind,
    /// The etcd key concerned, or NULL.
    pub key: *const c_char,
    /// The client's lease concerned (lost or new), or 0.
    pub lease_id: i64,
    /// For a conflict or a takeover: the other process's lease.
    pub other_lease_id: i64,
    /// For a lost lease, a withdrawal or a reinstatement: why, in words; else NULL.
    pub reason: *const c_char,
    /// For a restore: how many registrations were put back.
    pub registrations: u64,
    /// For a restore: from noticing the loss to everything back, in ms.
    pub outage_ms: u64,
}

/// An event callback: `userdata` first, then the event (valid during the call only).
pub type registry_event_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const registry_event)>;

thread_local! {
    /// Set while a callback runs on this thread, so a call from inside a
    /// callback does not wait for callbacks to finish (it would wait forever).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

type RawCallback = unsafe extern "C" fn(*mut c_void, *const registry_event);

/// The callbacks of one client. A callback is removed under the lock, so
/// once `finish` returns none runs or will run.
#[derive(Default)]
pub(crate) struct Callbacks {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// (callback, userdata as an address); cleared by `finish`.
    slots: Mutex<Vec<(RawCallback, usize)>>,
    closed_seen: Mutex<bool>,
    closed_cond: Condvar,
}

impl Callbacks {
    pub(crate) fn add(
        &self,
        client: &blocking::Client,
        callback: RawCallback,
        userdata: *mut c_void,
    ) -> Outcome {
        let index = {
            let mut slots = lock(&self.shared.slots);
            slots.push((callback, userdata as usize));
            slots.len() - 1
        };
        let shared = self.shared.clone();
        client
            .on_event(move |event| shared.deliver(index, event))
            .map_err(Failure::from)
    }

    /// Lets the `Closed` event reach the callbacks (briefly), then stops them for good.
    pub(crate) fn finish(&self) {
        let inside = IN_CALLBACK.with(Cell::get);
        if !inside && !lock(&self.shared.slots).is_empty() {
            let seen = lock(&self.shared.closed_seen);
            let _ =
                self.shared
                    .closed_cond
                    .wait_timeout_while(seen, Duration::from_secs(1), |seen| !*seen);
        }
        if !inside {
            lock(&self.shared.slots).clear();
        }
    }
}

impl Shared {
    fn deliver(&self, index: usize, event: &Event) {
        {
            let slots = lock(&self.slots);
            if let Some(&(callback, userdata)) = slots.get(index) {
                with_c_event(event, |raw| {
                    IN_CALLBACK.with(|f| f.set(true));
                    // SAFETY: the caller promised the callback may run on
                    // another thread with this userdata until the client is freed.
                    unsafe { callback(userdata as *mut c_void, raw) };
                    IN_CALLBACK.with(|f| f.set(false));
                });
            }
        }
        if matches!(event, Event::Closed) {
            *lock(&self.closed_seen) = true;
            self.closed_cond.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds the C view of `event` (with its strings alive) for the duration of `f`.
fn with_c_event(event: &Event, f: impl FnOnce(*const registry_event)) {
    use registry_event_kind as K;
    let cstring = |s: &str| CString::new(s.replace('\0', "?")).unwrap_or_default();
    let mut raw = registry_event {
        kind: K::REGISTRY_EVENT_CLOSED,
        key: std::ptr::null(),
        lease_id: 0,
        other_lease_id: 0,
        reason: std::ptr::null(),
        registrations: 0,
        outage_ms: 0,
    };
    let mut key = None;
    let mut reason = None;
    match event {
        Event::Registered { key: k } => {
            raw.kind = K::REGISTRY_EVENT_REGISTERED;
            key = Some(cstring(k));
        }
        Event::LeaseLost {
            lease_id,
            reason: r,
        } => {
            raw.kind = K::REGISTRY_EVENT_LEASE_LOST;
            raw.lease_id = *lease_id;
            reason = Some(cstring(&r.to_string()));
        }
        Event::Restored {
            lease_id,
            registrations,
            outage,
        } => {
            raw.kind = K::REGISTRY_EVENT_RESTORED;
            raw.lease_id = *lease_id;
            raw.registrations = *registrations as u64;
            raw.outage_ms = outage.as_millis() as u64;
        }
        Event::KeyRestored { key: k } => {
            raw.kind = K::REGISTRY_EVENT_KEY_RESTORED;
            key = Some(cstring(k));
        }
        Event::Deregistered { key: k } => {
            raw.kind = K::REGISTRY_EVENT_DEREGISTERED;
            key = Some(cstring(k));
        }
        Event::Conflict {
            key: k,
            other_lease,
        } => {
            raw.kind = K::REGISTRY_EVENT_CONFLICT;
            raw.other_lease_id = *other_lease;
            key = Some(cstring(k));
        }
        Event::TookOver { key: k, from_lease } => {
            raw.kind = K::REGISTRY_EVENT_TOOK_OVER;
            raw.other_lease_id = *from_lease;
            key = Some(cstring(k));
        }
        Event::Withdrawn { key: k, reason: r } => {
            raw.kind = K::REGISTRY_EVENT_WITHDRAWN;
            key = Some(cstring(k));
            reason = Some(cstring(r));
        }
        Event::Reinstated { key: k, reason: r } => {
            raw.kind = K::REGISTRY_EVENT_REINSTATED;
            key = Some(cstring(k));
            reason = Some(cstring(r));
        }
        Event::Closed => raw.kind = K::REGISTRY_EVENT_CLOSED,
        _ => return, // a kind this ABI version does not know: not delivered
    }
    if let Some(k) = &key {
        raw.key = k.as_ptr();
    }
    if let Some(r) = &reason {
        raw.reason = r.as_ptr();
    }
    f(&raw);
}
