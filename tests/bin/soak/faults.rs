//! The faults the soak injects, from the fault matrix (tests/fault): each
//! one's injection (which member, which proxies, how long it is held) and
//! its end (what puts the cluster and the clients' paths back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::child::kill_pid;
use harness::proxy::{set_all, Mode, Proxy};
use harness::Etcd;

use crate::provider::Provider;
use crate::rng::Rng;

/// A fault of the matrix (tests/fault), by its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
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

/// Every fault, in the matrix's order.
pub const FAULTS: [Fault; 10] = [
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
    /// Its number and what it does, e.g. `4b cluster wiped`.
    pub fn name(self) -> &'static str {
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

    /// Its number in the matrix: "1" .. "9", "4a", "4b".
    pub fn number(self) -> &'static str {
        self.name().split(' ').next().unwrap_or_default()
    }

    /// Whether etcd keeps its data (the TTL/3 + 1 s target applies).
    pub fn keeps_data(self) -> bool {
        !matches!(self, Fault::ClusterWiped | Fault::ProviderKilled)
    }
}

/// The provider fault 9 may SIGKILL, picked before the churn starts (the
/// providers are in their churn tasks while faults are injected).
pub struct Victim {
    /// Its place among the providers.
    pub index: usize,
    /// Its process ID.
    pub pid: Option<u32>,
    /// Its flag "killed on purpose": set before the kill, so that its
    /// churn does not count its death as a violation.
    pub doomed: Arc<AtomicBool>,
}

/// A fault injected.
pub struct Injected {
    /// How long it is held before it ends.
    pub hold: Duration,
    /// What was hit, for the log.
    pub detail: String,
    /// When the provider was killed (fault 9: recovery is timed from then).
    pub killed_at: Option<Instant>,
}

/// What ending a fault has to say: a line for the log, or a violation.
pub enum Said {
    /// A line for the log.
    Log(String),
    /// A violation (logged, and counted).
    Violation(String),
}

/// What faults act on: the cluster and every client's proxies to it.
pub struct Stage {
    /// The 3-node cluster.
    pub etcd: Etcd,
    /// Each provider's proxies (one per member), by provider.
    pub provider_proxies: Vec<Vec<Proxy>>,
    /// Each consumer client's proxies.
    pub consumer_proxies: Vec<Vec<Proxy>>,
}

impl Stage {
    /// Injects `fault` (`victim`: whom fault 9 kills).
    pub async fn inject(&mut self, fault: Fault, rng: &mut Rng, victim: &Victim) -> Injected {
        let mut killed_at = None;
        let mut detail = String::new();
        let hold = match fault {
            Fault::LeaderKilled | Fault::MemberKilled => {
                let leader = self.etcd.try_leader().await;
                let member = match (fault, leader) {
                    (Fault::LeaderKilled, Some(l)) => l,
                    (_, Some(l)) => (l + 1 + rng.below(2) as usize) % 3,
                    (_, None) => rng.below(3) as usize,
                };
                detail = format!("member {member}");
                self.etcd.members[member].kill();
                rng.millis(1000, 4000)
            }
            Fault::QuorumLost => {
                let first = rng.below(3) as usize;
                let second = (first + 1 + rng.below(2) as usize) % 3;
                detail = format!("members {first} and {second}");
                self.etcd.members[first].kill();
                self.etcd.members[second].kill();
                rng.millis(2500, 5000)
            }
            Fault::ClusterRestarted | Fault::ClusterWiped => {
                self.etcd.kill_all();
                if fault == Fault::ClusterWiped {
                    for m in &mut self.etcd.members {
                        m.wipe();
                    }
                }
                rng.millis(500, 3000)
            }
            Fault::Blackholed => {
                // A random set of providers, sometimes the consumers too.
                let mut cut = Vec::new();
                for (id, proxies) in self.provider_proxies.iter().enumerate() {
                    if rng.below(2) == 0 {
                        set_all(proxies, Mode::Blackhole);
                        cut.push(id);
                    }
                }
                let consumers = rng.below(2) == 0;
                if consumers {
                    set_all(self.consumer_proxies.iter().flatten(), Mode::Blackhole);
                }
                detail = format!("providers {cut:?}, consumers {consumers}");
                rng.millis(500, 5000)
            }
            Fault::Frozen => {
                self.etcd.freeze_all();
                rng.millis(500, 5000)
            }
            Fault::RevokedAndDeleted => Duration::ZERO,
            Fault::CompactedWhileDisconnected => {
                set_all(self.consumer_proxies.iter().flatten(), Mode::Down);
                rng.millis(2000, 4000)
            }
            Fault::ProviderKilled => {
                // It is churning in a task: SIGKILL it by PID, mid-command maybe.
                victim.doomed.store(true, Ordering::Relaxed);
                if let Some(pid) = victim.pid {
                    kill_pid(pid);
                }
                killed_at = Some(Instant::now());
                detail = format!("provider {} (pid {:?})", victim.index, victim.pid);
                Duration::ZERO
            }
        };
        Injected {
            hold,
            detail,
            killed_at,
        }
    }

    /// Ends `fault`, once the providers are back from their churn (faults 7
    /// and 8 say in `detail` what they hit).
    pub async fn end(
        &mut self,
        fault: Fault,
        rng: &mut Rng,
        providers: &mut [Provider],
        victim: &Victim,
        detail: &mut String,
    ) -> Vec<Said> {
        let mut said = Vec::new();
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
                let n = providers.len();
                let p = rng.below(n as u64) as usize;
                let q = (p + 1 + rng.below(n as u64 - 1) as usize) % n;
                let name = rng.below(u64::from(providers[q].shape().names));
                match providers[p].lease().await {
                    Ok(lease) if lease != 0 => {
                        let revoked = self
                            .etcdctl(vec!["lease".into(), "revoke".into(), format!("{lease:x}")])
                            .await;
                        if let Err(e) = revoked {
                            // Its lease may have just been replaced: not the library's fault.
                            said.push(Said::Log(format!("(revoke skipped: {e})")));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => said.push(Said::Violation(e)),
                }
                let prefix = providers[q].prefix(name as u32);
                if let Err(e) = self
                    .etcdctl(vec!["del".into(), "--prefix".into(), prefix])
                    .await
                {
                    said.push(Said::Log(format!("(delete failed: {e})")));
                }
                *detail = format!("lease of provider {p}, soak{name} keys of provider {q}");
            }
            Fault::CompactedWhileDisconnected => {
                let revision = self.etcd.compact_now().await;
                *detail = format!("compacted at {revision}");
                set_all(self.consumer_proxies.iter().flatten(), Mode::Pass);
            }
            // Reap it (its churn may have stopped before noticing) and forget its keys.
            Fault::ProviderKilled => providers[victim.index].kill().await,
        }
        said
    }

    /// Restarts any member that is down and waits for the whole cluster.
    pub async fn complete_cluster(&mut self) {
        self.etcd.thaw_all();
        self.etcd.start_all();
        self.etcd.wait_all_ready().await;
        self.etcd.wait_serving(Duration::from_secs(60)).await;
    }

    /// Runs etcdctl against the cluster (on a blocking thread).
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
}
