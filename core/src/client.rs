//! The async API: [`Client`] and its [`Registration`] handles.
//!
//! The handles only send commands to the client's supervisor task, which
//! runs on the library's own runtime, so they work from any async runtime
//! (or, through [`crate::blocking`], from none).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::discovery::{self, Watcher};
use crate::error::{Error, Result};
use crate::events::{Event, EventBus, EventStream};
use crate::health::{self, Checked, Standing};
use crate::instance::Instance;
use crate::members::Members;
use crate::metrics::{Metrics, Recorder};
use crate::options::{Options, Resolved};
use crate::pick::PickPolicy;
use crate::requests::BoundedEtcd;
use crate::runtime;
use crate::service::{EnvDefaults, Service};
use crate::supervisor::{close_budget, Command, NewEntry, Status, Supervisor};

/// A connection to etcd holding one lease, shared by all its registrations,
/// kept alive over one keepalive stream and healed until closed.
///
/// Cloning is cheap and shares the client. The lease is revoked by
/// [`Client::close`], or in the background once the client and every
/// registration handle are dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    /// For reads (discovery); every write goes through the supervisor.
    etcd: BoundedEtcd,
    options: Resolved,
    defaults: EnvDefaults,
    events: EventBus,
    status: Arc<Status>,
    pid: u32,
    closed: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.options.endpoints)
            .field("prefix", &self.inner.options.prefix)
            .field("lease_id", &self.lease_id())
            .field("granted_ttl_secs", &self.granted_ttl_secs())
            .finish()
    }
}

impl Client {
    /// Connects to etcd; fails within the request timeout when etcd cannot
    /// be reached. The client's lease is granted with its first
    /// registration: a consumer that only discovers and watches holds none.
    pub async fn connect(options: Options) -> Result<Client> {
        let resolved = options.resolve()?;
        let defaults = EnvDefaults::from_env()?;
        let handle = runtime::handle()?;
        let events = EventBus::default();
        let status = Arc::new(Status::default());
        let (commands, command_rx) = mpsc::unbounded_channel();

        let start = {
            let resolved = resolved.clone();
            let events = events.clone();
            let status = status.clone();
            async move {
                let connect = crate::members::connect_options(&resolved)?;
                let recorder = Arc::new(Recorder::default());
                let members = Members::new(&resolved.endpoints, connect, recorder);
                let etcd = BoundedEtcd::new(members);
                // No lease yet (one is granted for the first registration),
                // but a client that cannot reach etcd fails now, not later.
                etcd.probe(resolved.request_timeout).await?;
                let supervisor = Supervisor::start(etcd.clone(), resolved, events, status);
                tokio::spawn(supervisor.run(command_rx));
                Ok::<_, Error>(etcd)
            }
        };
        let etcd = handle
            .spawn(start)
            .await
            .map_err(|e| Error::Etcd(format!("connect task failed: {e}")))??;

        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                etcd,
                options: resolved,
                defaults,
                events,
                status,
                pid: std::process::id(),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Registers one service; returns once etcd has confirmed it.
    pub async fn register(&self, service: &Service) -> Result<Registration> {
        let mut regs = self.register_many(std::slice::from_ref(service)).await?;
        regs.pop()
            .ok_or_else(|| Error::Etcd("no registration returned".into()))
    }

    /// Registers many services at once, in transactions of at most 128
    /// operations; all or nothing.
    pub async fn register_many(&self, services: &[Service]) -> Result<Vec<Registration>> {
        self.check_usable()?;
        let mut entries = Vec::with_capacity(services.len());
        for service in services {
            let (key, value) = self.encode(service)?;
            if let Some(check) = &service.check {
                check.validate()?;
            }
            entries.push(NewEntry {
                key,
                name: service.name.clone(),
                value,
            });
        }
        // Register only when ready: every checked service's probe passes first.
        let checks: Vec<health::Check> = services.iter().filter_map(|s| s.check.clone()).collect();
        if !checks.is_empty() {
            let ready = runtime::handle()?.spawn(async move {
                for check in checks {
                    check.wait_ready().await?;
                }
                Ok::<(), Error>(())
            });
            ready
                .await
                .map_err(|e| Error::Etcd(format!("health check task failed: {e}")))??;
        }
        let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        // Big batches take more round trips: give each 128 a full request timeout.
        let rounds = entries
            .len()
            .div_ceil(crate::supervisor::MAX_TXN_OPS)
            .max(1) as u32;
        let budget = self.inner.options.request_timeout * rounds;
        self.ask(budget, |deadline, reply| Command::Register {
            entries,
            deadline,
            reply,
        })
        .await?;
        let mut regs = Vec::with_capacity(keys.len());
        for (key, service) in keys.into_iter().zip(services) {
            let reg = Registration {
                client: self.clone(),
                key,
                service: Mutex::new(service.clone()),
                link: Arc::new(Link {
                    client: Arc::downgrade(&self.inner),
                    done: AtomicBool::new(false),
                    standing: AtomicU8::new(LIVE),
                    turn: tokio::sync::Mutex::new(()),
                }),
            };
            if let Some(check) = &service.check {
                let target = Watched {
                    link: reg.link.clone(),
                    key: reg.key.clone(),
                };
                runtime::spawn(health::watch_over(check.clone(), target))?;
            }
            regs.push(reg);
        }
        Ok(regs)
    }

    /// Revokes the lease: every registration of this client vanishes at once.
    /// Bounded in time even when etcd is dead: 2 s plus 1 s per 10,000
    /// registrations, or [`Options::close_timeout`]. When that passes, the
    /// keys still go: etcd removes them when the lease expires, within its TTL.
    pub async fn close(&self) -> Result<()> {
        runtime::check_pid(self.inner.pid)?;
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let budget = close_budget(&self.inner.options, self.registration_count());
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { budget, reply })
            .is_err()
        {
            return Ok(()); // the supervisor already closed on its own
        }
        // The supervisor counts the budget from when it takes the close up,
        // after what it is doing (at most a request timeout); then it answers.
        let waited = budget + self.inner.options.request_timeout + Duration::from_secs(1);
        match tokio::time::timeout(waited, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Ok(()),
            Err(_) => Err(Error::Timeout {
                operation: "closing (waiting for the registry engine; the keys expire with the lease within its TTL)",
                after: waited,
            }),
        }
    }

    /// Reads every instance of service `name` once (the prefix
    /// `{prefix}/{name}/`, so `foo` never sees `foo_other`), sorted by key.
    /// Values that are not instances in the client's layout are skipped with a log line.
    pub async fn discover(&self, name: &str) -> Result<Vec<Instance>> {
        self.check_usable()?;
        let (etcd, (layout, prefix), timeout) = self.read_context();
        let name = name.to_string();
        let found = runtime::handle()?
            .spawn(async move { discovery::list(&etcd, layout, &prefix, &name, timeout).await })
            .await
            .map_err(|e| Error::Etcd(format!("discover task failed: {e}")))??;
        Ok(found.0.into_iter().map(|c| c.instance).collect())
    }

    /// Starts a [`Watcher`] on service `name`, picking by the consumer's
    /// zone and region from `REGISTRY_ZONE` / `REGISTRY_REGION`.
    pub async fn watch(&self, name: &str) -> Result<Watcher> {
        self.watch_with(name, PickPolicy::from_env()).await
    }

    /// Starts a [`Watcher`] on service `name` with an explicit pick policy.
    /// Returns once the first list is read (within the request timeout).
    pub async fn watch_with(&self, name: &str, policy: PickPolicy) -> Result<Watcher> {
        self.check_usable()?;
        let (etcd, space, timeout) = self.read_context();
        let name = name.to_string();
        runtime::handle()?
            .spawn(Watcher::start(etcd, space, name, policy, timeout))
            .await
            .map_err(|e| Error::Etcd(format!("watch task failed: {e}")))?
    }

    fn read_context(&self) -> (BoundedEtcd, (crate::wire::Layout, String), Duration) {
        let opts = &self.inner.options;
        let space = (opts.layout, opts.prefix.clone());
        (self.inner.etcd.clone(), space, opts.request_timeout)
    }

    /// A stream of this client's events, from now on.
    pub fn events(&self) -> EventStream {
        self.inner.events.subscribe()
    }

    /// Calls `callback` for every event, in order, on the library's runtime
    /// thread. Keep it short and do not make blocking libregistry calls in it.
    pub fn on_event<F>(&self, callback: F) -> Result<()>
    where
        F: Fn(&Event) + Send + 'static,
    {
        let mut stream = self.events();
        runtime::handle()?.spawn(async move {
            while let Some(event) = stream.next().await {
                callback(&event);
            }
        });
        Ok(())
    }

    /// Whether [`Client::close`] was called (or every handle was dropped).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The lease currently held (`None` before the first registration,
    /// while healing, and after close).
    pub fn lease_id(&self) -> Option<i64> {
        Some(self.inner.status.lease_id.load(Ordering::Relaxed)).filter(|id| *id != 0)
    }

    /// The TTL etcd granted for the lease, in seconds (0 before the first registration).
    pub fn granted_ttl_secs(&self) -> u32 {
        self.inner.status.granted_ttl_secs.load(Ordering::Relaxed)
    }

    /// The lease TTL in seconds: as etcd granted it, or as asked for until
    /// the first registration grants a lease.
    pub fn ttl_secs(&self) -> u32 {
        match self.granted_ttl_secs() {
            0 => self.inner.options.ttl_secs,
            granted => granted,
        }
    }

    /// Keepalive requests sent so far (one stream, one request every TTL/3).
    pub fn keepalives_sent(&self) -> u64 {
        let recorder = self.inner.etcd.recorder();
        recorder.keepalives_sent.load(Ordering::Relaxed)
    }

    /// How many registrations the client currently holds.
    pub fn registration_count(&self) -> u64 {
        let recorder = self.inner.etcd.recorder();
        recorder.registrations.load(Ordering::Relaxed)
    }

    /// What the client has done so far (leases, healing, keepalives,
    /// requests, watchers, outages), named as in Prometheus, C and Python.
    pub fn metrics(&self) -> Metrics {
        self.inner.etcd.recorder().snapshot()
    }

    /// [`Client::metrics`] in Prometheus's text format, for a `/metrics` page.
    pub fn metrics_text(&self) -> String {
        self.metrics().to_text()
    }

    /// The options in force (after environment and defaults).
    pub fn options(&self) -> &Resolved {
        &self.inner.options
    }

    /// The etcd key `service` is registered under by this client.
    pub fn key_of(&self, service: &Service) -> String {
        let opts = &self.inner.options;
        service.key(opts.layout, &opts.prefix)
    }

    /// Validates `service` and renders its key and value in the client's layout.
    fn encode(&self, service: &Service) -> Result<(String, String)> {
        let opts = &self.inner.options;
        let instance = service.resolve(&self.inner.defaults, opts.layout, &opts.prefix)?;
        Ok((instance.key.clone(), opts.layout.encode(&instance)?))
    }

    fn check_usable(&self) -> Result<()> {
        runtime::check_pid(self.inner.pid)?;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    async fn ask(
        &self,
        budget: Duration,
        make: impl FnOnce(Instant, oneshot::Sender<Result<()>>) -> Command,
    ) -> Result<()> {
        self.check_usable()?;
        self.ask_unchecked(budget, make).await
    }

    /// Sends a command and waits for its answer. The supervisor keeps the
    /// deadline itself; we wait a little longer so that its answer, not our
    /// timer, decides the outcome (a timed-out register must leave nothing).
    async fn ask_unchecked(
        &self,
        budget: Duration,
        make: impl FnOnce(Instant, oneshot::Sender<Result<()>>) -> Command,
    ) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + budget;
        self.inner
            .commands
            .send(make(deadline, reply))
            .map_err(|_| Error::Closed)?;
        match tokio::time::timeout(budget + Duration::from_secs(1), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                operation: "waiting for the registry engine",
                after: budget,
            }),
        }
    }

    pub(crate) fn is_forked(&self) -> bool {
        runtime::check_pid(self.inner.pid).is_err()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // In a forked child the runtime behind the channel does not exist.
        if runtime::check_pid(self.pid).is_err() {
            let commands = std::mem::replace(&mut self.commands, mpsc::unbounded_channel().0);
            std::mem::forget(commands);
        }
        // Otherwise dropping `commands` tells the supervisor to close.
    }
}

/// One registered service. Dropping the handle leaves the registration in
/// place (it lives as long as its client); call [`Registration::deregister`]
/// to remove it.
pub struct Registration {
    client: Client,
    key: String,
    service: Mutex<Service>,
    /// What the handle shares with the registration's health check.
    link: Arc<Link>,
}

const LIVE: u8 = 0;
const WITHDRAWN_BY_APP: u8 = 1;
const WITHDRAWN_BY_CHECK: u8 = 2;

/// A registration's state, shared by its handle and its health check (which
/// holds no client: the client closes once every handle is gone).
struct Link {
    client: Weak<Inner>,
    done: AtomicBool,
    standing: AtomicU8,
    turn: tokio::sync::Mutex<()>,
}

impl Link {
    /// Moves the registration to `to` (withdrawn by the application or its
    /// check, or `LIVE`), when it stands at `from` (any standing for `None`).
    /// One move at a time, so a check passing at the moment the application
    /// withdraws cannot write the key back behind it.
    async fn move_to(&self, key: &str, to: u8, from: Option<u8>, reason: String) -> Result<()> {
        let _turn = self.turn.lock().await;
        let inner = self.client.upgrade().ok_or(Error::Closed)?;
        let client = Client { inner };
        if self.done.load(Ordering::SeqCst) {
            return Err(Error::NotRegistered {
                key: key.to_string(),
            });
        }
        if from.is_some_and(|from| self.standing.load(Ordering::SeqCst) != from) {
            return Ok(());
        }
        self.standing.store(to, Ordering::SeqCst);
        let key = key.to_string();
        client
            .ask(client.inner.options.request_timeout, |deadline, reply| {
                Command::Withdraw {
                    key,
                    withdraw: to != LIVE,
                    reason,
                    deadline,
                    reply,
                }
            })
            .await
    }
}

/// A registration watched over by its health check.
struct Watched {
    link: Arc<Link>,
    key: String,
}

impl Checked for Watched {
    fn standing(&self) -> Option<Standing> {
        let client = self.link.client.upgrade()?;
        if self.link.done.load(Ordering::SeqCst) || client.closed.load(Ordering::SeqCst) {
            return None;
        }
        Some(match self.link.standing.load(Ordering::SeqCst) {
            WITHDRAWN_BY_APP => Standing::WithdrawnByApp,
            WITHDRAWN_BY_CHECK => Standing::WithdrawnByCheck,
            _ => Standing::Live,
        })
    }

    async fn set_by_check(&self, withdraw: bool, reason: String) -> Result<()> {
        let (to, from) = if withdraw {
            (WITHDRAWN_BY_CHECK, LIVE)
        } else {
            (LIVE, WITHDRAWN_BY_CHECK)
        };
        self.link.move_to(&self.key, to, Some(from), reason).await
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .finish()
    }
}

impl Registration {
    /// The etcd key, e.g. `/micro/127.0.0.1:4000`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The service as last registered or updated.
    pub fn service(&self) -> Service {
        self.service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// False once [`Registration::deregister`] was called or its client closed.
    pub fn is_registered(&self) -> bool {
        !self.link.done.load(Ordering::SeqCst) && !self.client.is_closed()
    }

    /// Whether the registration is withdrawn (by [`Registration::withdraw`]
    /// or a failing health check): kept, but not in etcd.
    pub fn is_withdrawn(&self) -> bool {
        self.link.standing.load(Ordering::SeqCst) != LIVE
    }

    /// Takes the key out of etcd but keeps the registration, so consumers
    /// stop using it (drain before a stop, or while the service cannot
    /// serve); healing leaves it out until [`Registration::restore`]. A
    /// health check does not bring it back either. Calling it again does
    /// nothing.
    pub async fn withdraw(&self) -> Result<()> {
        let reason = "withdrawn by the application".to_string();
        self.link
            .move_to(&self.key, WITHDRAWN_BY_APP, None, reason)
            .await
    }

    /// Writes a withdrawn registration back (the newest registration of its
    /// key wins); returns once etcd confirmed, or healing finishes it.
    pub async fn restore(&self) -> Result<()> {
        let reason = "restored by the application".to_string();
        self.link.move_to(&self.key, LIVE, None, reason).await
    }

    /// The client this registration belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Changes metadata entries (as [`Service::set`]) and rewrites the value
    /// in place: the key never disappears meanwhile. Set `weight` to 0 to drain.
    pub async fn update<I, K, V>(&self, changes: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        if self.link.done.load(Ordering::SeqCst) {
            return Err(Error::NotRegistered {
                key: self.key.clone(),
            });
        }
        let mut service = self.service();
        for (k, v) in changes {
            service.set(k.as_ref(), v)?;
        }
        let (key, value) = self.client.encode(&service)?;
        if key != self.key {
            let layout = self.client.inner.options.layout;
            let reason =
                format!("is part of the key in the {layout} layout: register anew to change it");
            return Err(Error::invalid("id", reason));
        }
        *self.service.lock().unwrap_or_else(|p| p.into_inner()) = service;
        let key = self.key.clone();
        self.client
            .ask(
                self.client.inner.options.request_timeout,
                |deadline, reply| Command::Update {
                    key,
                    value,
                    deadline,
                    reply,
                },
            )
            .await
    }

    /// Deletes the key (one request) and stops healing it; returns once etcd
    /// confirmed or the request timeout passed. Calling it again does nothing.
    pub async fn deregister(&self) -> Result<()> {
        if self.link.done.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let key = self.key.clone();
        self.client
            .ask(
                self.client.inner.options.request_timeout,
                |deadline, reply| Command::Deregister {
                    key,
                    deadline,
                    reply,
                },
            )
            .await
    }
}
