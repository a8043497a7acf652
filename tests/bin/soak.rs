//! The soak (run by `scripts/soak MINUTES`): random faults from the fault
//! matrix, one after another for MINUTES, against 1,000 registrations held
//! by 10 provider processes (`soak-provider`) that keep registering and
//! deregistering, and 10 watchers in 2 consumer clients. Every client
//! reaches the 3-node etcd cluster through its own proxies.
//!
//! After each fault ends, and after each calm spell between faults, it
//! checks the invariants (etcd holds exactly the registrations that should
//! be alive, each under its process's current lease; every watcher's cache
//! equals a fresh `discover`) until they hold, and records how long that
//! took. A check that does not hold within 30 s is a violation, and so is a
//! provider that stops answering or dies unbidden. Prints the counts at the
//! end; exits 1 on any violation.
//!
//! Usage: soak MINUTES [SEED] (MINUTES may be a fraction: 0.5 = 30 s).
//! `SOAK_FAULTS=1,2,4b` limits the faults to those of the matrix (for
//! chasing one); `SOAK_LOG_DIR` keeps each provider's debug log there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::invariants::{etcd_holds, watchers_match, Expected, Want};
use harness::proxy::{set_all, Mode, Proxy};
use harness::Etcd;
use libregistry::{Client, Options, Watcher};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PROCESSES: u32 = 10;
const PER_PROCESS: u32 = 100;
const NAMES: u32 = 5;
const CONSUMERS: usize = 2;
const TTL: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A provider must answer any command within this (its calls are bounded by ~2 s).
const ANSWER_LIMIT: Duration = Duration::from_secs(15);
/// A provider must be registered within this of starting.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Invariants not back within this after a fault: a violation.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// What the issue asks where etcd keeps its data: TTL/3 + 1 s.
const TARGET: Duration = Duration::from_millis(2000 / 3 + 1000);
/// Upper bound on fault cycles, whatever the duration.
const MAX_CYCLES: u32 = 100_000;
/// Time one cycle may take beyond its fault; no new fault starts closer to the end.
const CYCLE_MARGIN: Duration = Duration::from_secs(10);

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    LeaderKilled,
    MemberKilled,
    QuorumLost,
    ClusterRestarted,
    ClusterWiped,
    Blackholed,
    Frozen,
    RevokedAndDeleted,
    CompactedWhileDisconnected,
    ProviderKilled,
}

const FAULTS: [Fault; 10] = [
    Fault::LeaderKilled,
    Fault::MemberKilled,
    Fault::QuorumLost,
    Fault::ClusterRestarted,
    Fault::ClusterWiped,
    Fault::Blackholed,
    Fault::Frozen,
    Fault::RevokedAndDeleted,
    Fault::CompactedWhileDisconnected,
    Fault::ProviderKilled,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::LeaderKilled => "1 leader killed",
            Fault::MemberKilled => "2 member killed",
            Fault::QuorumLost => "3 quorum lost",
            Fault::ClusterRestarted => "4a cluster restarted",
            Fault::ClusterWiped => "4b cluster wiped",
            Fault::Blackholed => "5 traffic blackholed",
            Fault::Frozen => "6 etcd frozen",
            Fault::RevokedAndDeleted => "7 lease revoked, keys deleted",
            Fault::CompactedWhileDisconnected => "8 compaction, watchers cut",
            Fault::ProviderKilled => "9 provider SIGKILLed (to gone)",
        }
    }

    /// Whether etcd keeps its data (the TTL/3 + 1 s target applies).
    /// Its number in the matrix: "1" .. "9", "4a", "4b".
    fn number(self) -> &'static str {
        self.name().split(' ').next().unwrap_or_default()
    }

    fn keeps_data(self) -> bool {
        !matches!(self, Fault::ClusterWiped | Fault::ProviderKilled)
    }
}

/// What the churn of one provider did.
#[derive(Debug, Default, Clone, Copy)]
struct Churned {
    registered: u64,
    register_failed: u64,
    deregistered: u64,
    deregister_failed: u64,
}

impl Churned {
    fn add(&mut self, other: Churned) {
        self.registered += other.registered;
        self.register_failed += other.register_failed;
        self.deregistered += other.deregistered;
        self.deregister_failed += other.deregister_failed;
    }
}

/// One provider process and what it should hold.
struct Provider {
    id: u32,
    endpoints: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    /// Services registered and not deregistered: these should be alive.
    live: BTreeSet<u32>,
    next: u32,
    rng: Rng,
    /// Set before the soak kills it: its death is then no violation.
    doomed: Arc<AtomicBool>,
}

fn key(id: u32, i: u32) -> String {
    format!("/soak{}/10.1.{id}.1:{}", i % NAMES, 10_000 + i)
}

impl Provider {
    async fn spawn(
        exe: &PathBuf,
        id: u32,
        endpoints: String,
        seed: u64,
    ) -> Result<Provider, String> {
        let mut child = Command::new(exe)
            .args([id.to_string(), PER_PROCESS.to_string(), NAMES.to_string()])
            .env("REGISTRY_ENDPOINTS", &endpoints)
            .env("REGISTRY_TTL", TTL.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        let mut provider = Provider {
            id,
            endpoints,
            child: Some(child),
            stdin,
            stdout,
            live: (0..PER_PROCESS).collect(),
            next: PER_PROCESS,
            rng: Rng(seed | 1),
            doomed: Arc::new(AtomicBool::new(false)),
        };
        match provider.read_line(START_LIMIT).await?.as_str() {
            "ready" => Ok(provider),
            other => Err(format!("provider {id} started with {other:?}")),
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn read_line(&mut self, limit: Duration) -> Result<String, String> {
        let id = self.id;
        let stdout = self
            .stdout
            .as_mut()
            .ok_or_else(|| format!("provider {id} is not running"))?;
        match tokio::time::timeout(limit, stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(format!("provider {id} exited")),
            Ok(Err(e)) => Err(format!("provider {id}: {e}")),
            Err(_) => Err(format!("provider {id} did not answer within {limit:?}")),
        }
    }

    /// Sends one command and returns its one-line answer.
    async fn call(&mut self, command: &str) -> Result<String, String> {
        let id = self.id;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("provider {id} is not running"))?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| format!("provider {id} exited ({e})"))?;
        self.read_line(ANSWER_LIMIT)
            .await
            .map_err(|e| format!("{e} (to {command:?})"))
    }

    /// The lease the process holds now (0: none, while it heals).
    async fn lease(&mut self) -> Result<i64, String> {
        let answer = self.call("lease").await?;
        answer
            .strip_prefix("lease ")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(|id| id as i64)
            .ok_or_else(|| format!("provider {}: bad answer {answer:?}", self.id))
    }

    /// SIGKILLs the process; its keys vanish with its lease.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.stdin = None;
        self.stdout = None;
        self.live.clear();
    }

    /// Registers and deregisters (keeping about PER_PROCESS) until `stop`.
    /// Returns the provider, what it did, and any violation.
    async fn churn(mut self, stop: Arc<AtomicBool>) -> (Provider, Churned, Option<String>) {
        let mut done = Churned::default();
        let started = Instant::now();
        for _ in 0..10_000 {
            if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120) {
                break;
            }
            let register = self.live.len() < PER_PROCESS as usize || self.rng.below(2) == 0;
            let result = if register {
                let i = self.next;
                self.next += 1;
                self.call(&format!("reg {i}")).await.map(|answer| {
                    if answer == "ok" {
                        self.live.insert(i);
                        done.registered += 1;
                    } else {
                        // A failed register must leave nothing behind.
                        done.register_failed += 1;
                    }
                })
            } else {
                let pick = self.rng.below(self.live.len() as u64) as usize;
                let i = self.live.iter().nth(pick).copied().unwrap_or(0);
                // Gone whatever the answer: a failed delete is retried in the background.
                self.live.remove(&i);
                self.call(&format!("dereg {i}")).await.map(|answer| {
                    if answer == "ok" {
                        done.deregistered += 1;
                    } else {
                        done.deregister_failed += 1;
                    }
                })
            };
            if let Err(e) = result {
                let expected = self.doomed.load(Ordering::Relaxed);
                self.kill().await;
                return (self, done, (!expected).then_some(e));
            }
            let pause = self.rng.millis(50, 250);
            tokio::time::sleep(pause).await;
        }
        (self, done, None)
    }
}

/// Figures per fault kind.
#[derive(Debug, Default)]
struct Figures {
    count: u32,
    worst: Duration,
    total: Duration,
}

struct Soak {
    etcd: Etcd,
    exe: PathBuf,
    providers: Vec<Provider>,
    provider_proxies: Vec<Vec<Proxy>>,
    consumer_proxies: Vec<Vec<Proxy>>,
    consumers: Vec<Client>,
    watchers: Vec<Watcher>,
    checker: Client,
    raw: etcd_client::Client,
    rng: Rng,
    started: Instant,
    figures: BTreeMap<Fault, Figures>,
    calm: Figures,
    checks: u64,
    /// The longest a passing check took (part of every recovery figure).
    longest_check: Duration,
    violations: Vec<String>,
    churned: Churned,
}

impl Soak {
    async fn start(seed: u64) -> Result<Soak, String> {
        let etcd = Etcd::cluster(3).await;
        let exe = std::env::current_exe()
            .map_err(|e| format!("where am I: {e}"))?
            .with_file_name("soak-provider");
        let mut rng = Rng(seed | 1);
        let mut providers = Vec::new();
        let mut provider_proxies = Vec::new();
        for id in 0..PROCESSES {
            let proxies = etcd.proxies();
            let endpoints = endpoints(&proxies);
            providers.push(Provider::spawn(&exe, id, endpoints, rng.next()).await?);
            provider_proxies.push(proxies);
        }
        let mut consumers = Vec::new();
        let mut consumer_proxies = Vec::new();
        let mut watchers = Vec::new();
        for _ in 0..CONSUMERS {
            let proxies = etcd.proxies();
            let client = Client::connect(
                Options::new()
                    .endpoints_csv(&endpoints(&proxies))
                    .ttl_secs(TTL.as_secs() as u32)
                    .request_timeout(REQUEST_TIMEOUT),
            )
            .await
            .map_err(|e| format!("consumer: {e}"))?;
            for n in 0..NAMES {
                let watcher = client
                    .watch(&format!("soak{n}"))
                    .await
                    .map_err(|e| format!("watch: {e}"))?;
                watchers.push(watcher);
            }
            consumers.push(client);
            consumer_proxies.push(proxies);
        }
        let checker = Client::connect(
            Options::new()
                .endpoints(etcd.endpoints())
                .request_timeout(REQUEST_TIMEOUT),
        )
        .await
        .map_err(|e| format!("checker: {e}"))?;
        let raw = etcd.raw().await;
        Ok(Soak {
            etcd,
            exe,
            providers,
            provider_proxies,
            consumer_proxies,
            consumers,
            watchers,
            checker,
            raw,
            rng,
            started: Instant::now(),
            figures: BTreeMap::new(),
            calm: Figures::default(),
            checks: 0,
            longest_check: Duration::ZERO,
            violations: Vec::new(),
            churned: Churned::default(),
        })
    }

    fn log(&self, line: &str) {
        let t = self.started.elapsed().as_secs();
        println!("soak: [{:02}:{:02}] {line}", t / 60, t % 60);
    }

    fn violation(&mut self, what: String) {
        self.log(&format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// What etcd should hold now: every live service of every running
    /// process, under that process's current lease.
    async fn expected(&mut self) -> Result<Expected, String> {
        let mut expected = Expected::new();
        for p in self.providers.iter_mut().filter(|p| p.alive()) {
            let lease = match p.lease().await? {
                0 => -1, // healing: nothing can match
                id => id,
            };
            for &i in &p.live {
                expected.insert(
                    key(p.id, i),
                    Want {
                        lease: Some(lease),
                        generation: None,
                    },
                );
            }
        }
        Ok(expected)
    }

    async fn check_once(&mut self) -> Result<(), String> {
        let expected = self.expected().await?;
        etcd_holds(&mut self.raw, "/soak", &expected).await?;
        let watchers: Vec<&Watcher> = self.watchers.iter().collect();
        watchers_match(&watchers, &self.checker, &expected).await
    }

    /// Checks until the invariants hold; how long that took, or the last failure.
    async fn converge(&mut self, limit: Duration) -> Result<Duration, String> {
        self.checks += 1;
        let start = Instant::now();
        loop {
            let attempt = Instant::now();
            let failure = match self.check_once().await {
                Ok(()) => {
                    // The figures end when a check has passed: say how long one takes.
                    self.longest_check = self.longest_check.max(attempt.elapsed());
                    return Ok(start.elapsed());
                }
                Err(e) => e,
            };
            // A provider that stopped answering is no transient state.
            if failure.contains("did not answer") || failure.contains("exited") {
                return Err(failure);
            }
            if start.elapsed() >= limit {
                return Err(failure);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts every running provider churning in a task of its own.
    fn start_churn(
        &mut self,
        stop: &Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<(Provider, Churned, Option<String>)>> {
        let (running, idle): (Vec<Provider>, Vec<Provider>) = std::mem::take(&mut self.providers)
            .into_iter()
            .partition(Provider::alive);
        self.providers = idle;
        running
            .into_iter()
            .map(|p| tokio::spawn(p.churn(stop.clone())))
            .collect()
    }

    /// Stops the churn and takes the providers back.
    async fn stop_churn(
        &mut self,
        stop: &Arc<AtomicBool>,
        tasks: Vec<tokio::task::JoinHandle<(Provider, Churned, Option<String>)>>,
    ) {
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            match task.await {
                Ok((p, done, problem)) => {
                    self.churned.add(done);
                    if let Some(problem) = problem {
                        self.violation(problem);
                    }
                    self.providers.push(p);
                }
                Err(e) => self.violation(format!("churn task failed: {e}")),
            }
        }
        self.providers.sort_by_key(|p| p.id);
    }

    async fn etcdctl(&self, args: Vec<String>) -> Result<String, String> {
        let endpoints = self.etcd.endpoints_csv();
        tokio::task::spawn_blocking(move || {
            let out = harness::etcdctl_command(&endpoints)
                .args(&args)
                .output()
                .map_err(|e| format!("etcdctl: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!(
                    "etcdctl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .await
        .map_err(|e| format!("etcdctl thread: {e}"))?
    }

    /// Restarts any member that is down and waits for the whole cluster.
    async fn complete_cluster(&mut self) {
        self.etcd.thaw_all();
        self.etcd.start_all();
        self.etcd.wait_all_ready().await;
        self.etcd.wait_serving(Duration::from_secs(60)).await;
    }

    /// One fault: churn, inject, hold, stop the churn, end the fault, check.
    async fn run_fault(&mut self, fault: Fault) {
        // Who may be killed while churning: its PID and its "expected" flag.
        let victim = self.rng.below(u64::from(PROCESSES)) as usize;
        let victim_pid = self.providers[victim].pid();
        let victim_doomed = self.providers[victim].doomed.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = self.start_churn(&stop);
        tokio::time::sleep(self.rng.millis(300, 1500)).await;

        let mut killed_at = None;
        let mut detail = String::new();
        let hold = match fault {
            Fault::LeaderKilled | Fault::MemberKilled => {
                let leader = self.etcd.try_leader().await;
                let member = match (fault, leader) {
                    (Fault::LeaderKilled, Some(l)) => l,
                    (_, Some(l)) => (l + 1 + self.rng.below(2) as usize) % 3,
                    (_, None) => self.rng.below(3) as usize,
                };
                detail = format!("member {member}");
                self.etcd.members[member].kill();
                self.rng.millis(1000, 4000)
            }
            Fault::QuorumLost => {
                let first = self.rng.below(3) as usize;
                let second = (first + 1 + self.rng.below(2) as usize) % 3;
                detail = format!("members {first} and {second}");
                self.etcd.members[first].kill();
                self.etcd.members[second].kill();
                self.rng.millis(2500, 5000)
            }
            Fault::ClusterRestarted | Fault::ClusterWiped => {
                self.etcd.kill_all();
                if fault == Fault::ClusterWiped {
                    for m in &mut self.etcd.members {
                        m.wipe();
                    }
                }
                self.rng.millis(500, 3000)
            }
            Fault::Blackholed => {
                // A random set of providers, sometimes the consumers too.
                let mut cut = Vec::new();
                for id in 0..PROCESSES as usize {
                    if self.rng.below(2) == 0 {
                        set_all(&self.provider_proxies[id], Mode::Blackhole);
                        cut.push(id);
                    }
                }
                let consumers = self.rng.below(2) == 0;
                if consumers {
                    set_all(self.consumer_proxies.iter().flatten(), Mode::Blackhole);
                }
                detail = format!("providers {cut:?}, consumers {consumers}");
                self.rng.millis(500, 5000)
            }
            Fault::Frozen => {
                self.etcd.freeze_all();
                self.rng.millis(500, 5000)
            }
            Fault::RevokedAndDeleted => Duration::ZERO,
            Fault::CompactedWhileDisconnected => {
                set_all(self.consumer_proxies.iter().flatten(), Mode::Down);
                self.rng.millis(2000, 4000)
            }
            Fault::ProviderKilled => {
                // It is churning in a task: SIGKILL it by PID, mid-command maybe.
                victim_doomed.store(true, Ordering::Relaxed);
                if let Some(pid) = victim_pid {
                    // SAFETY: kill(2) on a child we spawned and have not reaped.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                }
                killed_at = Some(Instant::now());
                detail = format!("provider {victim} (pid {victim_pid:?})");
                Duration::ZERO
            }
        };
        tokio::time::sleep(hold).await;
        self.stop_churn(&stop, tasks).await;

        // End the fault.
        match fault {
            Fault::LeaderKilled | Fault::MemberKilled => self.complete_cluster().await,
            Fault::QuorumLost | Fault::ClusterRestarted | Fault::ClusterWiped => {
                self.etcd.start_all();
                self.etcd.wait_serving(Duration::from_secs(60)).await;
            }
            Fault::Blackholed => set_all(
                self.provider_proxies
                    .iter()
                    .flatten()
                    .chain(self.consumer_proxies.iter().flatten()),
                Mode::Pass,
            ),
            Fault::Frozen => self.etcd.thaw_all(),
            Fault::RevokedAndDeleted => {
                let p = self.rng.below(u64::from(PROCESSES)) as usize;
                let q = (p + 1 + self.rng.below(u64::from(PROCESSES) - 1) as usize)
                    % PROCESSES as usize;
                let name = self.rng.below(u64::from(NAMES));
                match self.providers[p].lease().await {
                    Ok(lease) if lease != 0 => {
                        let revoked = self
                            .etcdctl(vec!["lease".into(), "revoke".into(), format!("{lease:x}")])
                            .await;
                        if let Err(e) = revoked {
                            // Its lease may have just been replaced: not the library's fault.
                            self.log(&format!("(revoke skipped: {e})"));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => self.violation(e),
                }
                let prefix = format!("/soak{name}/10.1.{q}.1:");
                if let Err(e) = self
                    .etcdctl(vec!["del".into(), "--prefix".into(), prefix])
                    .await
                {
                    self.log(&format!("(delete failed: {e})"));
                }
                detail = format!("lease of provider {p}, soak{name} keys of provider {q}");
            }
            Fault::CompactedWhileDisconnected => {
                let revision = self.etcd.compact_now().await;
                detail = format!("compacted at {revision}");
                set_all(self.consumer_proxies.iter().flatten(), Mode::Pass);
            }
            // Reap it (its churn may have stopped before noticing) and forget its keys.
            Fault::ProviderKilled => self.providers[victim].kill().await,
        }
        let ended = killed_at.unwrap_or_else(Instant::now);
        let elections_before = self.leader_changes();

        match self.converge(RECOVERY_LIMIT).await {
            Ok(_) => {
                // etcd may elect a leader again after it served: an outage
                // of etcd's own inside our figure, worth naming.
                let elections = self.leader_changes().saturating_sub(elections_before);
                if elections > 0 {
                    detail.push_str(&format!(
                        "; etcd changed leader {elections} time(s) after the fault ended"
                    ));
                }
                let took = ended.elapsed();
                let figures = self.figures.entry(fault).or_default();
                figures.count += 1;
                figures.worst = figures.worst.max(took);
                figures.total += took;
                let late = if fault.keeps_data() && took > TARGET {
                    " (beyond TTL/3 + 1 s)"
                } else {
                    ""
                };
                self.log(&format!(
                    "{} ({detail}) held {} ms: recovered {} ms after it ended{late}",
                    fault.name(),
                    hold.as_millis(),
                    took.as_millis()
                ));
            }
            Err(e) => self.violation(format!(
                "{} ({detail}): invariants not back {RECOVERY_LIMIT:?} after the fault ended: {e}",
                fault.name()
            )),
        }

        // Put the cluster and the killed provider back for the next fault.
        if matches!(
            fault,
            Fault::QuorumLost | Fault::ClusterRestarted | Fault::ClusterWiped
        ) {
            self.complete_cluster().await;
        }
        self.restart_dead_providers().await;
    }

    async fn restart_dead_providers(&mut self) {
        for id in 0..PROCESSES as usize {
            if self.providers[id].alive() {
                continue;
            }
            let endpoints = self.providers[id].endpoints.clone();
            let seed = self.rng.next();
            match Provider::spawn(&self.exe, id as u32, endpoints, seed).await {
                Ok(p) => self.providers[id] = p,
                Err(e) => self.violation(format!("provider {id} could not start again: {e}")),
            }
        }
    }

    /// The most leader changes any running member has seen.
    fn leader_changes(&self) -> u64 {
        self.etcd
            .members
            .iter()
            .filter_map(|m| m.metric("etcd_server_leader_changes_seen_total"))
            .fold(0, |most, seen| most.max(seen as u64))
    }

    /// A calm spell: churn without faults, then check.
    async fn calm(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = self.start_churn(&stop);
        tokio::time::sleep(self.rng.millis(1000, 3000)).await;
        self.stop_churn(&stop, tasks).await;
        let ended = Instant::now();
        match self.converge(RECOVERY_LIMIT).await {
            Ok(_) => {
                let took = ended.elapsed();
                self.calm.count += 1;
                self.calm.worst = self.calm.worst.max(took);
                self.calm.total += took;
            }
            Err(e) => self.violation(format!("calm: invariants do not hold: {e}")),
        }
    }

    /// Stops every process and client; etcd must be left with nothing.
    async fn finish(&mut self) {
        for p in self.providers.iter_mut().filter(|p| p.alive()) {
            match p.call("quit").await {
                Ok(answer) if answer == "bye" => {}
                Ok(other) => self.violations.push(format!("quit answered {other:?}")),
                Err(e) => self.violations.push(e),
            }
            p.kill().await;
        }
        for c in &self.consumers {
            let _ = c.close().await;
        }
        let left = etcd_holds(&mut self.raw, "/soak", &Expected::new()).await;
        if let Err(e) = left {
            self.violation(format!("after every process quit: {e}"));
        }
        let _ = self.checker.close().await;
    }

    fn report(&self, minutes: f64, seed: u64) {
        let faults: u32 = self.figures.values().map(|f| f.count).sum();
        let worst_kept = self
            .figures
            .iter()
            .filter(|(f, _)| f.keeps_data())
            .map(|(_, f)| f.worst)
            .max()
            .unwrap_or_default();
        println!(
            "soak: etcd {}, {minutes} min of faults, seed {seed:#x}: {} registrations in {PROCESSES} processes, {} watchers",
            harness::etcd_version(),
            PROCESSES * PER_PROCESS,
            self.watchers.len()
        );
        println!(
            "soak: {:<34} {:>6} {:>10} {:>10}",
            "fault", "count", "worst ms", "mean ms"
        );
        for (fault, f) in &self.figures {
            println!(
                "soak: {:<34} {:>6} {:>10} {:>10}",
                fault.name(),
                f.count,
                f.worst.as_millis(),
                (f.total / f.count.max(1)).as_millis()
            );
        }
        println!(
            "soak: {:<34} {:>6} {:>10} {:>10}",
            "calm (churn only)",
            self.calm.count,
            self.calm.worst.as_millis(),
            (self.calm.total / self.calm.count.max(1)).as_millis()
        );
        println!(
            "soak: churn: {} registered ({} failed), {} deregistered ({} failed)",
            self.churned.registered,
            self.churned.register_failed,
            self.churned.deregistered,
            self.churned.deregister_failed
        );
        println!(
            "soak: recovery is timed to the end of the first passing check; a passing check took up to {} ms",
            self.longest_check.as_millis()
        );
        println!(
            "soak: faults injected {faults}, checks made {}, violations {}, worst recovery {} ms (where etcd keeps its data; target {} ms)",
            self.checks,
            self.violations.len(),
            worst_kept.as_millis(),
            TARGET.as_millis()
        );
    }
}

fn endpoints(proxies: &[Proxy]) -> String {
    proxies
        .iter()
        .map(Proxy::endpoint)
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let minutes: f64 = match args.next().map(|a| a.parse()) {
        Some(Ok(m)) if m > 0.0 && m <= 24.0 * 60.0 => m,
        _ => {
            eprintln!("usage: soak MINUTES [SEED]");
            std::process::exit(2);
        }
    };
    let seed = match args.next() {
        Some(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| {
            eprintln!("SEED is a hex number");
            std::process::exit(2);
        }),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let faults: Vec<Fault> = match std::env::var("SOAK_FAULTS") {
        Ok(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            let chosen: Vec<Fault> = FAULTS
                .into_iter()
                .filter(|f| wanted.contains(&f.number()))
                .collect();
            if chosen.len() != wanted.len() {
                eprintln!("SOAK_FAULTS={list:?}: use matrix numbers 1, 2, 3, 4a, 4b, 5 .. 9");
                std::process::exit(2);
            }
            chosen
        }
        Err(_) => FAULTS.to_vec(),
    };

    let mut soak = match Soak::start(seed).await {
        Ok(soak) => soak,
        Err(e) => {
            eprintln!("soak: could not start: {e}");
            std::process::exit(1);
        }
    };
    soak.log(&format!(
        "etcd {}, seed {seed:#x}: {} registrations in {PROCESSES} processes, {} watchers; faults for {minutes} min",
        harness::etcd_version(),
        PROCESSES * PER_PROCESS,
        soak.watchers.len()
    ));
    if let Err(e) = soak.converge(RECOVERY_LIMIT).await {
        soak.violation(format!("the first registrations do not check: {e}"));
    }
    let start = Instant::now();
    let mut cycles = 0;
    while start.elapsed() + CYCLE_MARGIN < duration && cycles < MAX_CYCLES {
        cycles += 1;
        let fault = faults[soak.rng.below(faults.len() as u64) as usize];
        soak.run_fault(fault).await;
        soak.calm().await;
    }
    soak.finish().await;
    soak.report(minutes, seed);
    if !soak.violations.is_empty() {
        for v in &soak.violations {
            eprintln!("soak: violation: {v}");
        }
        std::process::exit(1);
    }
}
