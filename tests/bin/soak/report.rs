//! What the soak checks and what it says: the invariants, checked after
//! each fault and calm spell until they hold ([`Checks`]); the figures per
//! fault, the log and the violations, and the counts printed at the end
//! ([`Report`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::invariants::{etcd_holds_each, watchers_match, Expected, Want};
use libregistry::{Client, Watcher};

use crate::faults::Fault;
use crate::provider::{Churned, Provider};

/// Pause between two checks while waiting for the invariants.
const POLL: Duration = Duration::from_millis(50);

/// What the invariants are checked against, and how often and how long
/// checking took.
pub struct Checks {
    /// etcd, read directly: one client per member, all asked at once.
    raws: Vec<etcd_client::Client>,
    /// Every consumer's watchers: each one's cache must equal a fresh `discover`.
    pub watchers: Vec<Watcher>,
    /// The client that makes those `discover`s.
    checker: Client,
    /// How many times the soak waited for the invariants.
    made: u64,
    /// The longest a passing check took (part of every recovery figure).
    longest: Duration,
    /// The failed checks of the last wait: when each ended (from the wait's
    /// start), how long it took and why, so a slow recovery can be told apart
    /// from a slow check.
    pub trail: Vec<(Duration, Duration, String)>,
    /// How long the parts of the last check that got through them took.
    pub parts: String,
}

impl Checks {
    /// Checks against etcd through `raws`, of `watchers`, with `checker`.
    pub fn new(raws: Vec<etcd_client::Client>, watchers: Vec<Watcher>, checker: Client) -> Checks {
        Checks {
            raws,
            watchers,
            checker,
            made: 0,
            longest: Duration::ZERO,
            trail: Vec::new(),
            parts: String::new(),
        }
    }

    /// What etcd should hold now: every live service of every running
    /// process, under that process's current lease.
    async fn expected(providers: &mut [Provider]) -> Result<Expected, String> {
        let mut expected = Expected::new();
        for p in providers.iter_mut().filter(|p| p.alive()) {
            let lease = match p.lease().await? {
                0 => -1, // healing: nothing can match
                id => id,
            };
            for &i in &p.live {
                expected.insert(
                    p.key(i),
                    Want {
                        lease: Some(lease),
                        generation: None,
                    },
                );
            }
        }
        Ok(expected)
    }

    async fn once(&mut self, providers: &mut [Provider]) -> Result<(), String> {
        let t = Instant::now();
        let expected = Checks::expected(providers).await?;
        let asked = t.elapsed();
        etcd_holds_each(&self.raws, "/soak", &expected).await?;
        let read = t.elapsed() - asked;
        let watchers: Vec<&Watcher> = self.watchers.iter().collect();
        let matched = watchers_match(&watchers, &self.checker, &expected).await;
        self.parts = format!(
            "providers asked {} ms, etcd read {} ms, watchers compared {} ms",
            asked.as_millis(),
            read.as_millis(),
            (t.elapsed() - asked - read).as_millis()
        );
        matched
    }

    /// Checks until the invariants hold; when the passing check began (the
    /// state it found right was reached between the last failed check's
    /// start and the passing check's end), or the last failure.
    pub async fn converge(
        &mut self,
        providers: &mut [Provider],
        limit: Duration,
    ) -> Result<Instant, String> {
        self.made += 1;
        self.trail.clear();
        let start = Instant::now();
        loop {
            let attempt = Instant::now();
            let failure = match self.once(providers).await {
                Ok(()) => {
                    // The figures end when a check has passed: say how long one takes.
                    self.longest = self.longest.max(attempt.elapsed());
                    return Ok(attempt);
                }
                Err(e) => e,
            };
            let why: String = failure.chars().take(160).collect();
            self.trail.push((start.elapsed(), attempt.elapsed(), why));
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

    /// Whether etcd holds no key of the soak's (once every process quit).
    pub async fn nothing_left(&mut self) -> Result<(), String> {
        etcd_holds_each(&self.raws, "/soak", &Expected::new()).await
    }

    /// Closes the checking client.
    pub async fn close(&self) {
        let _ = self.checker.close().await;
    }
}

/// How long the invariants took to hold again: to the end of the first
/// passing check (the figure judged against the target), and to its start.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    pub to_end: Duration,
    pub to_start: Duration,
}

impl Recovery {
    /// The invariants held `ended` ago, at a check that began at `began`,
    /// after something ended at `from`.
    pub fn since(from: Instant, began: Instant) -> Recovery {
        Recovery {
            to_end: from.elapsed(),
            to_start: began.saturating_duration_since(from),
        }
    }
}

/// Recoveries from one kind of fault (or from the calm spells).
#[derive(Debug, Default)]
struct Figures {
    count: u32,
    worst: Duration,
    total: Duration,
    /// The same, to the start of the passing check.
    worst_to_start: Duration,
    total_to_start: Duration,
}

impl Figures {
    fn add(&mut self, r: Recovery) {
        self.count += 1;
        self.worst = self.worst.max(r.to_end);
        self.total += r.to_end;
        self.worst_to_start = self.worst_to_start.max(r.to_start);
        self.total_to_start += r.to_start;
    }

    /// Count, worst and mean to the end, worst and mean to the start.
    fn row(&self, name: &str) -> String {
        let n = self.count.max(1);
        format!(
            "soak: {name:<34} {:>6} {:>10} {:>10} {:>12} {:>12}",
            self.count,
            self.worst.as_millis(),
            (self.total / n).as_millis(),
            self.worst_to_start.as_millis(),
            (self.total_to_start / n).as_millis()
        )
    }
}

/// What the soak ran, for the first line of the report.
pub struct Ran {
    /// How long faults were injected, in minutes.
    pub minutes: f64,
    /// The seed every random choice came from.
    pub seed: u64,
    /// Provider processes.
    pub processes: u32,
    /// Registrations they held at the start.
    pub registrations: u32,
    /// The recovery target where etcd keeps its data.
    pub target: Duration,
}

/// The soak's log, its violations and its figures.
pub struct Report {
    started: Instant,
    figures: BTreeMap<Fault, Figures>,
    calm: Figures,
    /// Every violation, in order.
    pub violations: Vec<String>,
    /// What the providers' churn did, all together.
    pub churned: Churned,
}

impl Report {
    /// A report whose log counts time from now.
    pub fn start() -> Report {
        Report {
            started: Instant::now(),
            figures: BTreeMap::new(),
            calm: Figures::default(),
            violations: Vec::new(),
            churned: Churned::default(),
        }
    }

    /// Prints `line` with the time since the start.
    pub fn log(&self, line: &str) {
        let t = self.started.elapsed().as_secs();
        println!("soak: [{:02}:{:02}] {line}", t / 60, t % 60);
    }

    /// Logs `what` as a violation and counts it.
    pub fn violation(&mut self, what: String) {
        self.log(&format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// The invariants held again `took` after `fault` ended.
    pub fn recovered(&mut self, fault: Fault, took: Recovery) {
        self.figures.entry(fault).or_default().add(took);
    }

    /// The invariants held again `took` after a calm spell.
    pub fn calmed(&mut self, took: Recovery) {
        self.calm.add(took);
    }

    /// Prints the counts: per fault, the calm spells, the churn, the checks.
    pub fn print(&self, ran: &Ran, checks: &Checks) {
        let faults: u32 = self.figures.values().map(|f| f.count).sum();
        let worst_kept = self
            .figures
            .iter()
            .filter(|(f, _)| f.keeps_data())
            .map(|(_, f)| f.worst)
            .max()
            .unwrap_or_default();
        println!(
            "soak: etcd {}, {} min of faults, seed {:#x}: {} registrations in {} processes, {} watchers",
            harness::etcd_version(),
            ran.minutes,
            ran.seed,
            ran.registrations,
            ran.processes,
            checks.watchers.len()
        );
        println!(
            "soak: {:<34} {:>6} {:>10} {:>10} {:>12} {:>12}",
            "fault", "count", "worst ms", "mean ms", "worst start", "mean start"
        );
        for (fault, f) in &self.figures {
            println!("{}", f.row(fault.name()));
        }
        println!("{}", self.calm.row("calm (churn only)"));
        println!(
            "soak: churn: {} registered ({} failed), {} deregistered ({} failed)",
            self.churned.registered,
            self.churned.register_failed,
            self.churned.deregistered,
            self.churned.deregister_failed
        );
        println!(
            "soak: recovery is timed to the end of the first passing check (\"start\": to its start); a passing check took up to {} ms",
            checks.longest.as_millis()
        );
        println!(
            "soak: faults injected {faults}, checks made {}, violations {}, worst recovery {} ms (where etcd keeps its data; target {} ms)",
            checks.made,
            self.violations.len(),
            worst_kept.as_millis(),
            ran.target.as_millis()
        );
    }
}
