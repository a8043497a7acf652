//! Faults over a whole cluster for the fault matrix and the soak: stopping,
//! restarting, wiping and freezing every member, finding and moving the
//! leader, compaction, and one [`Proxy`] per member.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proxy::Proxy;
use crate::{Etcd, Member};

/// Deadlines of the short-lived clients used to probe single members.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl Member {
    /// Whether the process is running (it may be frozen).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The loopback address of the member's client port (for proxies).
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }
}

async fn probe(endpoint: &str) -> Option<etcd_client::Client> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(PROBE_CONNECT_TIMEOUT)
        .with_timeout(PROBE_TIMEOUT);
    tokio::time::timeout(
        PROBE_TIMEOUT,
        etcd_client::Client::connect([endpoint], Some(opts)),
    )
    .await
    .ok()?
    .ok()
}

impl Etcd {
    /// One proxy per member, in member order, all passing traffic.
    pub fn proxies(&self) -> Vec<Proxy> {
        self.members
            .iter()
            .map(|m| Proxy::start(m.client_addr()))
            .collect()
    }

    /// SIGKILLs every member.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }

    /// Starts every member that is not running, on its data as it is.
    pub fn start_all(&mut self) {
        for m in &mut self.members {
            if !m.is_running() {
                m.start_again();
            }
        }
    }

    /// Waits until every member answers and is ours.
    pub async fn wait_all_ready(&self) {
        for i in 0..self.members.len() {
            self.wait_member_ready(i).await;
        }
    }

    /// Kills every member and starts them all again on the same data.
    pub async fn restart_all(&mut self) {
        self.kill_all();
        self.start_all();
        self.wait_all_ready().await;
    }

    /// Kills every member, deletes all data and starts the cluster anew
    /// (same members, same ports, nothing stored).
    pub async fn wipe_and_recreate(&mut self) {
        self.kill_all();
        for m in &mut self.members {
            m.wipe();
        }
        self.start_all();
        self.wait_all_ready().await;
    }

    /// SIGSTOPs every running member.
    pub fn freeze_all(&self) {
        for m in &self.members {
            m.freeze();
        }
    }

    /// SIGCONTs every member.
    pub fn thaw_all(&self) {
        for m in &self.members {
            m.thaw();
        }
    }

    /// Waits until the cluster serves a linearizable read (it has a leader
    /// and a quorum); returns how long that took. Panics after `limit`.
    pub async fn wait_serving(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            for m in self.members.iter().filter(|m| m.is_running()) {
                let Some(mut client) = probe(&m.endpoint()).await else {
                    continue;
                };
                let read = tokio::time::timeout(PROBE_TIMEOUT, client.get("/", None)).await;
                if matches!(read, Ok(Ok(_))) {
                    return start.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let logs: Vec<String> = self.members.iter().map(Member::log_tail).collect();
        panic!(
            "etcd cluster not serving after {limit:?}\n{}",
            logs.join("\n---\n")
        );
    }

    /// The member etcd reports as leader, if any running member knows one.
    pub async fn try_leader(&self) -> Option<usize> {
        for m in self.members.iter().filter(|m| m.is_running()) {
            let Some(mut client) = probe(&m.endpoint()).await else {
                continue;
            };
            let Ok(Ok(status)) = tokio::time::timeout(PROBE_TIMEOUT, client.status()).await else {
                continue;
            };
            if status.leader() == 0 {
                continue;
            }
            let Ok(Ok(list)) = tokio::time::timeout(PROBE_TIMEOUT, client.member_list()).await
            else {
                continue;
            };
            let name = list
                .members()
                .iter()
                .find(|mm| mm.id() == status.leader())
                .map(|mm| mm.name().to_string());
            if let Some(index) = name.and_then(|n| self.members.iter().position(|m| m.name == n)) {
                return Some(index);
            }
        }
        None
    }

    /// Moves leadership away from member `i` when it leads (etcd's
    /// move-leader, sent to the leader); returns the leader afterwards.
    pub async fn move_leader_off(&self, i: usize) -> Option<usize> {
        let leader = self.try_leader().await?;
        if leader != i {
            return Some(leader);
        }
        let target = (0..self.members.len()).find(|&j| j != i && self.members[j].is_running())?;
        let mut client = probe(&self.members[leader].endpoint()).await?;
        let list = tokio::time::timeout(PROBE_TIMEOUT, client.member_list())
            .await
            .ok()?
            .ok()?;
        let target_id = list
            .members()
            .iter()
            .find(|mm| mm.name() == self.members[target].name)?
            .id();
        let moved =
            tokio::time::timeout(Duration::from_secs(5), client.move_leader(target_id)).await;
        if !matches!(moved, Ok(Ok(_))) {
            return None;
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match self.try_leader().await {
                Some(now) if now != i => return Some(now),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        None
    }

    /// Compacts the key space at the current revision; returns that revision.
    pub async fn compact_now(&self) -> i64 {
        let mut raw = self.raw().await;
        let revision = raw
            .get("/", None)
            .await
            .expect("read the revision")
            .header()
            .map(|h| h.revision())
            .expect("a response header");
        raw.compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .expect("compact");
        revision
    }
}
