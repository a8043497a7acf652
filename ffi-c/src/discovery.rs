//! Discovery from C: one-shot reads into an instance list, and watchers
//! with a cached snapshot, a change callback and pick.

use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libregistry::{Balance, Change, Instance, PickPolicy, Watcher};

use crate::boundary::{
    copy_out, from_handle, guard, guard_void, into_handle, required_out, required_ref,
    required_str, Failure,
};
use crate::client::registry_client;
use crate::status::registry_status;

/// A list of instances (opaque), owned by the caller: free it with
/// `registry_instance_list_free`. Read-only, so safe to read from many threads.
pub struct registry_instance_list {
    items: Vec<CInstance>,
}

struct CInstance {
    key: CString,
    name: CString,
    addr: CString,
    /// Metadata as text, in the order written.
    metadata: Vec<(CString, CString)>,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

impl CInstance {
    fn new(i: &Instance) -> CInstance {
        CInstance {
            key: cstring(&i.key),
            name: cstring(&i.name),
            addr: cstring(&i.addr),
            metadata: i
                .metadata
                .keys()
                .filter_map(|k| Some((cstring(k), cstring(&i.meta(k)?))))
                .collect(),
        }
    }
}

impl registry_instance_list {
    fn from_instances<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Self {
        registry_instance_list {
            items: instances.into_iter().map(CInstance::new).collect(),
        }
    }
}

/// Reads every instance of service `name` once (the prefix "{prefix}/name/",
/// so "foo" never sees "foo_other"), sorted by key; values that are not
/// instances are skipped. On success writes a new list to `*list_out`.
///
/// # Safety
/// `client` live; `name` a NUL-terminated string; `list_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_discover(
    client: *const registry_client,
    name: *const c_char,
    list_out: *mut *mut registry_instance_list,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        let name = unsafe { required_str(name, "name") }?;
        required_out(list_out, "list_out")?;
        let found = client.inner.discover(name)?;
        let list = registry_instance_list::from_instances(&found);
        // SAFETY: checked non-NULL above.
        unsafe { *list_out = into_handle(list) };
        Ok(())
    })
}

/// How many instances `list` holds (0 for NULL).
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_len(list: *const registry_instance_list) -> usize {
    // SAFETY: per the contract above.
    unsafe { list.as_ref() }.map_or(0, |l| l.items.len())
}

/// Looks up instance `index`; NULL list or index out of range gives `None`.
///
/// # Safety
/// `list` NULL or a live list.
unsafe fn item<'a>(list: *const registry_instance_list, index: usize) -> Option<&'a CInstance> {
    // SAFETY: per the caller's contract.
    unsafe { list.as_ref() }?.items.get(index)
}

/// The address ("host:port") of instance `index`; NULL when out of range.
/// Owned by the list: valid until it is freed.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_addr(
    list: *const registry_instance_list,
    index: usize,
) -> *const c_char {
    // SAFETY: per the contract above.
    unsafe { item(list, index) }.map_or(std::ptr::null(), |i| i.addr.as_ptr())
}

/// The etcd key of instance `index`; NULL when out of range. Owned by the list.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_key(
    list: *const registry_instance_list,
    index: usize,
) -> *const c_char {
    // SAFETY: per the contract above.
    unsafe { item(list, index) }.map_or(std::ptr::null(), |i| i.key.as_ptr())
}

/// The service name of instance `index`; NULL when out of range. Owned by the list.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_name(
    list: *const registry_instance_list,
    index: usize,
) -> *const c_char {
    // SAFETY: per the contract above.
    unsafe { item(list, index) }.map_or(std::ptr::null(), |i| i.name.as_ptr())
}

/// Metadata entry `metadata_key` of instance `index` as text ("100" for a
/// weight); NULL when absent, out of range, or an argument is NULL. Owned by the list.
///
/// # Safety
/// `list` NULL or a live list; `metadata_key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_get(
    list: *const registry_instance_list,
    index: usize,
    metadata_key: *const c_char,
) -> *const c_char {
    std::panic::catch_unwind(|| {
        // SAFETY: per the contract above.
        let wanted = unsafe { required_str(metadata_key, "metadata_key") }.ok()?;
        let instance = unsafe { item(list, index) }?;
        instance
            .metadata
            .iter()
            .find(|(k, _)| k.to_bytes() == wanted.as_bytes())
            .map(|(_, v)| v.as_ptr())
    })
    .ok()
    .flatten()
    .unwrap_or(std::ptr::null())
}

/// How many metadata entries instance `index` has (0 when out of range).
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_metadata_len(
    list: *const registry_instance_list,
    index: usize,
) -> usize {
    // SAFETY: per the contract above.
    unsafe { item(list, index) }.map_or(0, |i| i.metadata.len())
}

/// The name of metadata entry `entry` of instance `index` (read its value
/// with `registry_instance_list_get`); NULL when out of range. Owned by the list.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_metadata_key(
    list: *const registry_instance_list,
    index: usize,
    entry: usize,
) -> *const c_char {
    // SAFETY: per the contract above.
    unsafe { item(list, index) }
        .and_then(|i| i.metadata.get(entry))
        .map_or(std::ptr::null(), |(k, _)| k.as_ptr())
}

/// Frees a list; NULL does nothing.
///
/// # Safety
/// `list` NULL or a live list, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_instance_list_free(list: *mut registry_instance_list) {
    // SAFETY: per the contract above.
    guard_void(|| drop(unsafe { from_handle(list) }));
}

/// What changed in a watched service.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum registry_change_kind {
    /// A new instance (also reported for every instance found at start).
    REGISTRY_CHANGE_ADDED = 1,
    /// An instance's value changed (metadata, weight...).
    REGISTRY_CHANGE_UPDATED = 2,
    /// An instance is gone (deregistered, lease expired, deleted).
    REGISTRY_CHANGE_REMOVED = 3,
}

/// One change. Valid only during the callback; everything in it is owned by the library.
#[repr(C)]
pub struct registry_change {
    /// What happened.
    pub kind: registry_change_kind,
    /// The instance's etcd key.
    pub key: *const c_char,
    /// The instance's address.
    pub addr: *const c_char,
    /// The instance as a one-element list, for `registry_instance_list_get(instance, 0, ...)`.
    pub instance: *const registry_instance_list,
}

/// A change callback: `userdata` first, then the change (valid during the call only).
pub type registry_change_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, change: *const registry_change)>;

type RawChangeCallback = unsafe extern "C" fn(*mut c_void, *const registry_change);

/// A watcher (opaque): a cache of one service's instances that follows every
/// change. Snapshot and pick are thread-safe and never wait on the network.
pub struct registry_watcher {
    inner: Watcher,
    /// Cleared under the lock by `registry_watcher_free`: no callback after it returns.
    callback: Arc<Mutex<Option<(RawChangeCallback, usize)>>>,
}

/// Starts watching service `name`: lists it (failing within the request
/// timeout if etcd cannot be read), then follows every change, surviving
/// broken connections, etcd restarts, wipes and compaction. `callback` may
/// be NULL; otherwise it is called with `userdata` for every change, in
/// order, on a libregistry thread (first an ADDED for each instance found
/// at start, possibly before this call returns); keep it short and make no
/// blocking `registry_` call from it. Picks prefer REGISTRY_ZONE, then
/// REGISTRY_REGION (see `registry_watcher_set_policy`). On success writes a
/// new watcher to `*watcher_out`, freed by `registry_watcher_free`.
///
/// # Safety
/// `client` live; `name` NUL-terminated; `watcher_out` writable; `callback`
/// safe to call from another thread with `userdata` until the watcher is freed.
#[no_mangle]
pub unsafe extern "C" fn registry_watch(
    client: *const registry_client,
    name: *const c_char,
    callback: registry_change_callback,
    userdata: *mut c_void,
    watcher_out: *mut *mut registry_watcher,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let client = unsafe { required_ref(client, "client") }?;
        let name = unsafe { required_str(name, "name") }?;
        required_out(watcher_out, "watcher_out")?;
        let inner = client.inner.watch(name)?;
        let slot = Arc::new(Mutex::new(callback.map(|cb| (cb, userdata as usize))));
        if callback.is_some() {
            let slot = slot.clone();
            inner.on_change(move |change| deliver(&slot, change))?;
        }
        let watcher = registry_watcher {
            inner,
            callback: slot,
        };
        // SAFETY: checked non-NULL above.
        unsafe { *watcher_out = into_handle(watcher) };
        Ok(())
    })
}

fn deliver(slot: &Mutex<Option<(RawChangeCallback, usize)>>, change: &Change) {
    let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    let Some((callback, userdata)) = *guard else {
        return;
    };
    let (kind, instance) = kind_of(change);
    let list = registry_instance_list::from_instances([instance]);
    let item = &list.items[0];
    let raw = registry_change {
        kind,
        key: item.key.as_ptr(),
        addr: item.addr.as_ptr(),
        instance: &list,
    };
    // SAFETY: the caller promised the callback may run on another thread
    // with this userdata until the watcher is freed; the lock is held, so
    // registry_watcher_free waits for this call to finish.
    unsafe { callback(userdata as *mut c_void, &raw) };
}

/// Waits up to `timeout_ms` for the watcher's next (squashed) change.
/// REGISTRY_OK: `*kind_out` is set and `*instance_out` is a new one-element
/// list (free it with `registry_instance_list_free`); any other status (a
/// timeout when nothing came) leaves both untouched. Not to be mixed with a
/// change callback (REGISTRY_INVALID_ARGUMENT when the watcher has one).
/// Changes nobody reads in time are folded into their net effect, so a
/// watcher that is rarely read stays bounded in memory; replaying what this
/// returns always gives the watcher's snapshot. Blocks the calling thread;
/// REGISTRY_CLOSED once the watcher stopped.
///
/// # Safety
/// `watcher` live; `kind_out` and `instance_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_watcher_next_change(
    watcher: *const registry_watcher,
    timeout_ms: u32,
    kind_out: *mut registry_change_kind,
    instance_out: *mut *mut registry_instance_list,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let watcher = unsafe { required_ref(watcher, "watcher") }?;
        required_out(kind_out, "kind_out")?;
        required_out(instance_out, "instance_out")?;
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let Some(change) = watcher.inner.next_change_blocking(timeout)? else {
            return Err(Failure {
                status: registry_status::REGISTRY_TIMEOUT,
                message: format!(
                    "no change of {} within {timeout_ms} ms",
                    watcher.inner.name()
                ),
            });
        };
        let (kind, instance) = kind_of(&change);
        let list = registry_instance_list::from_instances([instance]);
        // SAFETY: checked non-NULL above.
        unsafe {
            *kind_out = kind;
            *instance_out = into_handle(list);
        }
        Ok(())
    })
}

fn kind_of(change: &Change) -> (registry_change_kind, &Instance) {
    match change {
        Change::Added(i) => (registry_change_kind::REGISTRY_CHANGE_ADDED, i),
        Change::Updated(i) => (registry_change_kind::REGISTRY_CHANGE_UPDATED, i),
        Change::Removed(i) => (registry_change_kind::REGISTRY_CHANGE_REMOVED, i),
    }
}

/// A snapshot of the cached instances, sorted by key, as a new list in
/// `*list_out` (free it with `registry_instance_list_free`). Never waits on
/// the network. Thread-safe.
///
/// # Safety
/// `watcher` live; `list_out` writable.
#[no_mangle]
pub unsafe extern "C" fn registry_watcher_snapshot(
    watcher: *const registry_watcher,
    list_out: *mut *mut registry_instance_list,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let watcher = unsafe { required_ref(watcher, "watcher") }?;
        required_out(list_out, "list_out")?;
        watcher.inner.check()?;
        let list = registry_instance_list::from_instances(watcher.inner.instances().iter());
        // SAFETY: checked non-NULL above.
        unsafe { *list_out = into_handle(list) };
        Ok(())
    })
}

/// Picks an instance (weighted random by `weight`, weight 0 never; own zone
/// first, then own region, then all) and copies its address, NUL-terminated,
/// into `buf` of `buf_len` bytes; `*needed_out` (if not NULL) gets the
/// length needed including the NUL. REGISTRY_NOT_FOUND when no instance
/// qualifies; REGISTRY_INVALID_ARGUMENT when the buffer is too small.
/// Never waits on the network. Thread-safe.
///
/// # Safety
/// `watcher` live; `buf` has `buf_len` writable bytes; `needed_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn registry_watcher_pick(
    watcher: *const registry_watcher,
    buf: *mut c_char,
    buf_len: usize,
    needed_out: *mut usize,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let watcher = unsafe { required_ref(watcher, "watcher") }?;
        let Some(picked) = watcher.inner.pick() else {
            return Err(Failure {
                status: registry_status::REGISTRY_NOT_FOUND,
                message: format!("no instance of {} qualifies", watcher.inner.name()),
            });
        };
        // SAFETY: per the contract above.
        unsafe { copy_out(&picked.addr, buf, buf_len, needed_out) }
    })
}

/// Sets how `registry_watcher_pick` chooses: prefer `zone`, then `region`
/// (NULL: no preference); only instances with `env` / `deployment` (NULL:
/// any); round robin instead of weighted random when `round_robin` is true.
/// Strings are copied. Thread-safe.
///
/// # Safety
/// `watcher` live; each string NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn registry_watcher_set_policy(
    watcher: *const registry_watcher,
    zone: *const c_char,
    region: *const c_char,
    env: *const c_char,
    deployment: *const c_char,
    round_robin: bool,
) -> registry_status {
    guard(|| {
        // SAFETY: per the contract above.
        let watcher = unsafe { required_ref(watcher, "watcher") }?;
        let optional = |ptr: *const c_char, param: &str| -> Result<Option<String>, Failure> {
            if ptr.is_null() {
                return Ok(None);
            }
            // SAFETY: non-NULL and NUL-terminated per the contract.
            unsafe { required_str(ptr, param) }.map(|s| Some(s.to_string()))
        };
        watcher.inner.set_policy(PickPolicy {
            zone: optional(zone, "zone")?,
            region: optional(region, "region")?,
            env: optional(env, "env")?,
            deployment: optional(deployment, "deployment")?,
            balance: if round_robin {
                Balance::RoundRobin
            } else {
                Balance::WeightedRandom
            },
        });
        Ok(())
    })
}

/// Stops the watcher and frees it; no callback runs after this returns.
/// NULL does nothing. Must not be called from the watcher's own callback.
///
/// # Safety
/// `watcher` NULL or a live watcher, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn registry_watcher_free(watcher: *mut registry_watcher) {
    guard_void(|| {
        // SAFETY: per the contract above.
        if let Some(watcher) = unsafe { from_handle(watcher) } {
            *watcher.callback.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    });
}
