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

mod faults;
mod provider;
mod report;
mod rng;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{Fault, Said, Stage, Victim, FAULTS};
use harness::proxy::Proxy;
use harness::Etcd;
use libregistry::{Client, Options};
use provider::{ChurnTask, Provider, Shape};
use report::{Checks, Ran, Recovery, Report};
use rng::Rng;

const PROCESSES: u32 = 10;
/// What each provider process holds: 100 services over 5 names, TTL 2 s.
const SHAPE: Shape = Shape {
    per_process: 100,
    names: 5,
    ttl: Duration::from_secs(2),
};
const CONSUMERS: usize = 2;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Invariants not back within this after a fault: a violation.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// What the issue asks where etcd keeps its data: TTL/3 + 1 s.
const TARGET: Duration = Duration::from_millis(2000 / 3 + 1000);
/// Upper bound on fault cycles, whatever the duration.
const MAX_CYCLES: u32 = 100_000;
/// Time one cycle may take beyond its fault; no new fault starts closer to the end.
const CYCLE_MARGIN: Duration = Duration::from_secs(10);

struct Soak {
    stage: Stage,
    exe: PathBuf,
    providers: Vec<Provider>,
    consumers: Vec<Client>,
    checks: Checks,
    rng: Rng,
    report: Report,
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
            providers.push(Provider::spawn(&exe, id, endpoints, SHAPE, rng.next()).await?);
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
                    .ttl_secs(SHAPE.ttl.as_secs() as u32)
                    .request_timeout(REQUEST_TIMEOUT),
            )
            .await
            .map_err(|e| format!("consumer: {e}"))?;
            for n in 0..SHAPE.names {
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
        let raws = etcd.raw_each().await;
        Ok(Soak {
            stage: Stage {
                etcd,
                provider_proxies,
                consumer_proxies,
            },
            exe,
            providers,
            consumers,
            checks: Checks::new(raws, watchers, checker),
            rng,
            report: Report::start(),
        })
    }

    /// Starts every running provider churning in a task of its own.
    fn start_churn(&mut self, stop: &Arc<AtomicBool>) -> Vec<ChurnTask> {
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
    async fn stop_churn(&mut self, stop: &Arc<AtomicBool>, tasks: Vec<ChurnTask>) {
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            match task.await {
                Ok((p, done, problem)) => {
                    self.report.churned.add(done);
                    if let Some(problem) = problem {
                        self.report.violation(problem);
                    }
                    self.providers.push(p);
                }
                Err(e) => self.report.violation(format!("churn task failed: {e}")),
            }
        }
        self.providers.sort_by_key(|p| p.id);
    }

    /// One fault: churn, inject, hold, stop the churn, end the fault, check.
    async fn run_fault(&mut self, fault: Fault) {
        // Who may be killed while churning: its PID and its "expected" flag.
        let victim = self.rng.below(u64::from(PROCESSES)) as usize;
        let victim = Victim {
            index: victim,
            pid: self.providers[victim].pid(),
            doomed: self.providers[victim].doomed.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = self.start_churn(&stop);
        tokio::time::sleep(self.rng.millis(300, 1500)).await;

        let injected = self.stage.inject(fault, &mut self.rng, &victim).await;
        let (hold, mut detail) = (injected.hold, injected.detail);
        tokio::time::sleep(hold).await;
        self.stop_churn(&stop, tasks).await;

        let said = self
            .stage
            .end(
                fault,
                &mut self.rng,
                &mut self.providers,
                &victim,
                &mut detail,
            )
            .await;
        for said in said {
            match said {
                Said::Log(line) => self.report.log(&line),
                Said::Violation(what) => self.report.violation(what),
            }
        }
        let ended = injected.killed_at.unwrap_or_else(Instant::now);
        // Read beside the checks, not before them: a member just restarted
        // can take seconds to answer /metrics, which is no recovery time.
        let elections_before = self.leader_changes();

        match self
            .checks
            .converge(&mut self.providers, RECOVERY_LIMIT)
            .await
        {
            Ok(began) => {
                let took = Recovery::since(ended, began);
                // etcd may elect a leader again after it served: an outage
                // of etcd's own inside our figure, worth naming.
                let before = elections_before.await.unwrap_or(0);
                let elections = self
                    .leader_changes()
                    .await
                    .unwrap_or(0)
                    .saturating_sub(before);
                if elections > 0 {
                    detail.push_str(&format!(
                        "; etcd changed leader {elections} time(s) after the fault ended"
                    ));
                }
                self.report.recovered(fault, took);
                let late = if fault.keeps_data() && took.to_end > TARGET {
                    // Say what the failed checks saw, and how long each took.
                    let trail: Vec<String> = self
                        .checks
                        .trail
                        .iter()
                        .map(|(at, took, why)| {
                            format!("{} ms ({} ms): {why}", at.as_millis(), took.as_millis())
                        })
                        .collect();
                    format!(
                        " (beyond TTL/3 + 1 s; failed checks: [{}]; the passing one: {})",
                        trail.join(" | "),
                        self.checks.parts
                    )
                } else {
                    String::new()
                };
                self.report.log(&format!(
                    "{} ({detail}) held {} ms: recovered {} ms after it ended (the passing check began at {} ms){late}",
                    fault.name(),
                    hold.as_millis(),
                    took.to_end.as_millis(),
                    took.to_start.as_millis()
                ));
            }
            Err(e) => self.report.violation(format!(
                "{} ({detail}): invariants not back {RECOVERY_LIMIT:?} after the fault ended: {e}",
                fault.name()
            )),
        }

        // Put the cluster and the killed provider back for the next fault.
        if matches!(
            fault,
            Fault::QuorumLost | Fault::ClusterRestarted | Fault::ClusterWiped
        ) {
            self.stage.complete_cluster().await;
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
            match Provider::spawn(&self.exe, id as u32, endpoints, SHAPE, seed).await {
                Ok(p) => self.providers[id] = p,
                Err(e) => self
                    .report
                    .violation(format!("provider {id} could not start again: {e}")),
            }
        }
    }

    /// The most leader changes any member has seen, read off the members'
    /// /metrics on a blocking thread.
    fn leader_changes(&self) -> tokio::task::JoinHandle<u64> {
        let ports: Vec<u16> = self
            .stage
            .etcd
            .members
            .iter()
            .map(|m| m.client_port())
            .collect();
        tokio::task::spawn_blocking(move || {
            ports
                .iter()
                .filter_map(|&port| {
                    harness::metric_at(port, "etcd_server_leader_changes_seen_total")
                })
                .fold(0, |most, seen| most.max(seen as u64))
        })
    }

    /// A calm spell: churn without faults, then check.
    async fn calm(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = self.start_churn(&stop);
        tokio::time::sleep(self.rng.millis(1000, 3000)).await;
        self.stop_churn(&stop, tasks).await;
        let ended = Instant::now();
        match self
            .checks
            .converge(&mut self.providers, RECOVERY_LIMIT)
            .await
        {
            Ok(began) => self.report.calmed(Recovery::since(ended, began)),
            Err(e) => self
                .report
                .violation(format!("calm: invariants do not hold: {e}")),
        }
    }

    /// Stops every process and client; etcd must be left with nothing.
    async fn finish(&mut self) {
        for p in self.providers.iter_mut().filter(|p| p.alive()) {
            match p.call("quit").await {
                Ok(answer) if answer == "bye" => {}
                Ok(other) => self
                    .report
                    .violations
                    .push(format!("quit answered {other:?}")),
                Err(e) => self.report.violations.push(e),
            }
            p.kill().await;
        }
        for c in &self.consumers {
            let _ = c.close().await;
        }
        let left = self.checks.nothing_left().await;
        if let Err(e) = left {
            self.report
                .violation(format!("after every process quit: {e}"));
        }
        self.checks.close().await;
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
    soak.report.log(&format!(
        "etcd {}, seed {seed:#x}: {} registrations in {PROCESSES} processes, {} watchers; faults for {minutes} min",
        harness::etcd_version(),
        PROCESSES * SHAPE.per_process,
        soak.checks.watchers.len()
    ));
    if let Err(e) = soak
        .checks
        .converge(&mut soak.providers, RECOVERY_LIMIT)
        .await
    {
        soak.report
            .violation(format!("the first registrations do not check: {e}"));
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
    let ran = Ran {
        minutes,
        seed,
        processes: PROCESSES,
        registrations: PROCESSES * SHAPE.per_process,
        target: TARGET,
    };
    soak.report.print(&ran, &soak.checks);
    if !soak.report.violations.is_empty() {
        for v in &soak.report.violations {
            eprintln!("soak: violation: {v}");
        }
        std::process::exit(1);
    }
}
