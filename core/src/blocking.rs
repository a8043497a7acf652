//! The blocking API, for callers without an async runtime (the C binding is
//! built on it). Each call runs on the library's runtime and refuses to run
//! inside another runtime instead of deadlocking. [`poll_for`] is the same
//! wait in slices, for bindings that must regain control between them
//! (Python checks for Ctrl-C). [`begin_host_exit`] keeps waiting threads
//! out of a host that is tearing itself down.

use std::future::Future;
use std::sync::OnceLock;
use std::thread::{self, ThreadId};
use std::time::Duration;

use crate::discovery::Watcher;
use crate::error::Result;
use crate::events::{Event, EventStream};
use crate::instance::Instance;
use crate::options::{Options, Resolved};
use crate::pick::PickPolicy;
use crate::runtime::block_on;
use crate::service::Service;

/// Drives `fut` from the calling (non-async) thread for at most `slice`,
/// the engine itself running on the library's runtime: `Ok(Some(output))`
/// once it finished, `Ok(None)` when it needs more time (call again with
/// the same future). Refused inside another async runtime.
pub fn poll_for<F: Future + Unpin>(fut: &mut F, slice: Duration) -> Result<Option<F::Output>> {
    let polled = block_on(async { tokio::time::timeout(slice, fut).await.ok() });
    park_if_host_exiting();
    polled
}

/// The thread that called [`begin_host_exit`].
static HOST_EXIT: OnceLock<ThreadId> = OnceLock::new();

/// Marks the start of the host's exit, before it tears down what its other
/// threads run on. CPython's finalization, for one, ends a thread that takes
/// the GIL back with `pthread_exit`, whose forced unwind through Rust frames
/// crashes the process. From then on, a wait of [`poll_for`] in any other
/// thread never returns: the thread parks and ends with the process.
pub fn begin_host_exit() {
    let _ = HOST_EXIT.set(thread::current().id());
}

/// Parks the calling thread for good once another one began the host's exit.
pub fn park_if_host_exiting() {
    while HOST_EXIT
        .get()
        .is_some_and(|t| *t != thread::current().id())
    {
        thread::park();
    }
}

/// Blocking twin of [`crate::Client`]. Dropping it closes it (bounded in time).
#[derive(Debug)]
pub struct Client {
    inner: crate::Client,
}

impl Client {
    /// Connects and grants the lease; see [`crate::Client::connect`].
    pub fn connect(options: Options) -> Result<Client> {
        let inner = block_on(crate::Client::connect(options))??;
        Ok(Client { inner })
    }

    /// Registers one service; see [`crate::Client::register`].
    pub fn register(&self, service: &Service) -> Result<Registration> {
        let inner = block_on(self.inner.register(service))??;
        Ok(Registration { inner })
    }

    /// Registers many services at once; see [`crate::Client::register_many`].
    pub fn register_many(&self, services: &[Service]) -> Result<Vec<Registration>> {
        let regs = block_on(self.inner.register_many(services))??;
        Ok(regs
            .into_iter()
            .map(|inner| Registration { inner })
            .collect())
    }

    /// Reads every instance of `name` once; see [`crate::Client::discover`].
    pub fn discover(&self, name: &str) -> Result<Vec<Instance>> {
        block_on(self.inner.discover(name))?
    }

    /// Starts a watcher; see [`crate::Client::watch`].
    pub fn watch(&self, name: &str) -> Result<Watcher> {
        block_on(self.inner.watch(name))?
    }

    /// Starts a watcher with a pick policy; see [`crate::Client::watch_with`].
    pub fn watch_with(&self, name: &str, policy: PickPolicy) -> Result<Watcher> {
        block_on(self.inner.watch_with(name, policy))?
    }

    /// Revokes the lease; see [`crate::Client::close`].
    pub fn close(&self) -> Result<()> {
        block_on(self.inner.close())?
    }

    /// A stream of events; read it with [`EventStream::next_blocking`].
    pub fn events(&self) -> EventStream {
        self.inner.events()
    }

    /// See [`crate::Client::on_event`].
    pub fn on_event<F: Fn(&Event) + Send + 'static>(&self, callback: F) -> Result<()> {
        self.inner.on_event(callback)
    }

    /// Whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The lease currently held (`None` before the first registration).
    pub fn lease_id(&self) -> Option<i64> {
        self.inner.lease_id()
    }

    /// The TTL etcd granted, in seconds.
    pub fn granted_ttl_secs(&self) -> u32 {
        self.inner.granted_ttl_secs()
    }

    /// Keepalive requests sent so far.
    pub fn keepalives_sent(&self) -> u64 {
        self.inner.keepalives_sent()
    }

    /// What the client has done so far (see [`crate::Client::metrics`]).
    pub fn metrics(&self) -> crate::Metrics {
        self.inner.metrics()
    }

    /// The metrics in Prometheus's text format.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// The options in force.
    pub fn options(&self) -> &Resolved {
        self.inner.options()
    }

    /// The async client behind this one.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.inner.is_forked() {
            return;
        }
        // Best effort: close now when we may block here; otherwise the supervisor
        // closes in the background once every handle is gone.
        let _ = block_on(self.inner.close());
    }
}

/// Blocking twin of [`crate::Registration`].
#[derive(Debug)]
pub struct Registration {
    inner: crate::Registration,
}

impl Registration {
    /// The etcd key.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The service as last registered or updated.
    pub fn service(&self) -> Service {
        self.inner.service()
    }

    /// False once deregistered or its client closed.
    pub fn is_registered(&self) -> bool {
        self.inner.is_registered()
    }

    /// Changes metadata and rewrites the value in place; see [`crate::Registration::update`].
    pub fn update<I, K, V>(&self, changes: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        block_on(self.inner.update(changes))?
    }

    /// Whether the registration is withdrawn; see [`crate::Registration::is_withdrawn`].
    pub fn is_withdrawn(&self) -> bool {
        self.inner.is_withdrawn()
    }

    /// Takes the key out of etcd, keeping the registration; see [`crate::Registration::withdraw`].
    pub fn withdraw(&self) -> Result<()> {
        block_on(self.inner.withdraw())?
    }

    /// Writes a withdrawn registration back; see [`crate::Registration::restore`].
    pub fn restore(&self) -> Result<()> {
        block_on(self.inner.restore())?
    }

    /// Deletes the key; see [`crate::Registration::deregister`].
    pub fn deregister(&self) -> Result<()> {
        block_on(self.inner.deregister())?
    }
}
