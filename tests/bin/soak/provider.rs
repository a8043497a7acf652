//! The soak's provider processes (`soak-provider`, tests/bin/soak_provider.rs),
//! driven over the harness's child protocol: start one, send it `reg I`,
//! `dereg I`, `lease` and `quit`, churn its registrations, SIGKILL it; and
//! what it should hold meanwhile.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::child::{ChildError, LineChild};

use crate::rng::Rng;

/// A provider must answer any command within this (its calls are bounded by ~2 s).
const ANSWER_LIMIT: Duration = Duration::from_secs(15);
/// A provider must be registered within this of starting.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A provider churning in its own task, handed back when the task ends.
pub type ChurnTask = tokio::task::JoinHandle<(Provider, Churned, Option<String>)>;

/// What the churn of one provider did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Churned {
    /// Registrations that succeeded.
    pub registered: u64,
    /// Registrations that failed (and must have left nothing behind).
    pub register_failed: u64,
    /// Deregistrations that succeeded.
    pub deregistered: u64,
    /// Deregistrations that failed (the library retries them in the background).
    pub deregister_failed: u64,
}

impl Churned {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Churned) {
        self.registered += other.registered;
        self.register_failed += other.register_failed;
        self.deregistered += other.deregistered;
        self.deregister_failed += other.deregister_failed;
    }
}

/// What every provider process holds.
#[derive(Clone, Copy)]
pub struct Shape {
    /// Services each process registers at the start and keeps about.
    pub per_process: u32,
    /// Service names they are spread over (`soak0`, `soak1`, ..).
    pub names: u32,
    /// The lease TTL of each process's client.
    pub ttl: Duration,
}

/// One provider process and what it should hold.
pub struct Provider {
    /// Its number (in its addresses: `10.1.{id}.1`).
    pub id: u32,
    /// The proxies it reaches etcd through.
    pub endpoints: String,
    shape: Shape,
    /// The process; taken while a command to it is in flight.
    child: Option<LineChild>,
    /// Services registered and not deregistered: these should be alive.
    pub live: BTreeSet<u32>,
    next: u32,
    rng: Rng,
    /// Set before the soak kills it: its death is then no violation.
    pub doomed: Arc<AtomicBool>,
}

impl Provider {
    /// Starts process `id` of `exe` (`soak-provider`) reaching etcd through
    /// `endpoints`; returns once it has registered its first services.
    pub async fn spawn(
        exe: &Path,
        id: u32,
        endpoints: String,
        shape: Shape,
        seed: u64,
    ) -> Result<Provider, String> {
        let mut cmd = Command::new(exe);
        cmd.args([
            id.to_string(),
            shape.per_process.to_string(),
            shape.names.to_string(),
        ])
        .env("REGISTRY_ENDPOINTS", &endpoints)
        .env("REGISTRY_TTL", shape.ttl.as_secs().to_string());
        let child = LineChild::spawn(&mut cmd, |_| true)
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut provider = Provider {
            id,
            endpoints,
            shape,
            child: Some(child),
            live: (0..shape.per_process).collect(),
            next: shape.per_process,
            rng: Rng(seed | 1),
            doomed: Arc::new(AtomicBool::new(false)),
        };
        let ready = provider.with_child(|c| c.reply(START_LIMIT)).await?;
        match ready.map_err(|e| provider.failure(e))?.as_str() {
            "ready" => Ok(provider),
            other => Err(format!("provider {id} started with {other:?}")),
        }
    }

    /// What it holds.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The start of its keys under the name `soak{name}`.
    pub fn prefix(&self, name: u32) -> String {
        format!("/soak{name}/10.1.{}.1:", self.id)
    }

    /// The key of its service `i`.
    pub fn key(&self, i: u32) -> String {
        format!("{}{}", self.prefix(i % self.shape.names), 10_000 + i)
    }

    /// Whether the soak holds the process: running, or dead and not noticed yet.
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Its process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(LineChild::pid)
    }

    /// Runs `work` on the process on a blocking thread (a command blocks
    /// until its reply or deadline), off the runtime's workers.
    async fn with_child<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut LineChild) -> T + Send + 'static,
    ) -> Result<T, String> {
        let id = self.id;
        let mut child = self
            .child
            .take()
            .ok_or_else(|| format!("provider {id} is not running"))?;
        let (child, out) = tokio::task::spawn_blocking(move || {
            let out = work(&mut child);
            (child, out)
        })
        .await
        .map_err(|e| format!("provider {id}: {e}"))?;
        self.child = Some(child);
        Ok(out)
    }

    /// What a reply that did not come means, in the soak's words.
    fn failure(&self, e: ChildError) -> String {
        let id = self.id;
        match e {
            ChildError::Send(e) => format!("provider {id} exited ({e})"),
            ChildError::Exited => format!("provider {id} exited"),
            ChildError::Read(e) => format!("provider {id}: {e}"),
            ChildError::Silent(limit) => format!("provider {id} did not answer within {limit:?}"),
        }
    }

    /// Sends one command and returns its one-line answer.
    pub async fn call(&mut self, command: &str) -> Result<String, String> {
        let line = command.to_string();
        let answer = self.with_child(move |c| c.ask(&line, ANSWER_LIMIT)).await?;
        answer.map_err(|e| match e {
            ChildError::Send(_) => self.failure(e),
            e => format!("{} (to {command:?})", self.failure(e)),
        })
    }

    /// The lease the process holds now (0: none, while it heals).
    pub async fn lease(&mut self) -> Result<i64, String> {
        let answer = self.call("lease").await?;
        answer
            .strip_prefix("lease ")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(|id| id as i64)
            .ok_or_else(|| format!("provider {}: bad answer {answer:?}", self.id))
    }

    /// SIGKILLs the process; its keys vanish with its lease.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || child.kill()).await;
        }
        self.live.clear();
    }

    /// Registers and deregisters (keeping about `per_process`) until `stop`.
    /// Returns the provider, what it did, and any violation.
    pub async fn churn(mut self, stop: Arc<AtomicBool>) -> (Provider, Churned, Option<String>) {
        let mut done = Churned::default();
        let started = Instant::now();
        for _ in 0..10_000 {
            if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120) {
                break;
            }
            let register =
                self.live.len() < self.shape.per_process as usize || self.rng.below(2) == 0;
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
