//! The `registry` command against a real etcd (the harness's): `run`
//! around a small HTTP server (tests/bin/health_server.rs) whose health
//! can be switched and which writes down when it listened, first passed
//! its check, got a signal or exited; `register`, `list`, `get`, `watch`.
//! Keys are checked through a raw etcd client: a watch on the key gives
//! the moment etcd applied each put and delete. Every timing the issue
//! asks for is printed (`cli: ...`) and held to its bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::EventType;
use harness::{dump, free_port, wait_until, Etcd};
use tokio::sync::mpsc;

/// The probe interval and failures the `run` tests use.
const INTERVAL: Duration = Duration::from_millis(300);
const FAILS: u32 = 3;

/// The `registry` binary cargo built beside this test.
fn registry_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("registry");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds it; alone, run \
         `cargo build -p libregistry-cli` first",
        path.display()
    );
    path
}

/// A directory of one test's files, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("lr-cli-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a scratch dir");
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The health server's record: what happened when.
struct Moments(PathBuf);

impl Moments {
    fn lines(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(what, value)| (what.to_string(), value.to_string()))
            .collect()
    }

    fn at(&self, what: &str) -> Option<SystemTime> {
        let (_, nanos) = self.lines().into_iter().find(|(w, _)| w == what)?;
        Some(UNIX_EPOCH + Duration::from_nanos(nanos.parse().ok()?))
    }

    async fn wait(&self, what: &str, limit: Duration) -> SystemTime {
        wait_until(limit, &format!("the server notes {what}"), || async {
            self.at(what).is_some()
        })
        .await;
        self.at(what).expect("noted")
    }

    /// The server's PID, once it started.
    fn pid(&self) -> Option<u32> {
        let (_, pid) = self.lines().into_iter().find(|(w, _)| w == "pid")?;
        pid.parse().ok()
    }
}

impl Drop for Moments {
    /// A server left running (its `registry` failed the test) is stopped
    /// by its PID, once /proc says it is our health server.
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("health-server"));
        if ours {
            signal(pid, libc::SIGKILL);
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process this test started (directly or through registry).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A `registry` process, its stderr kept in a file for failure messages.
struct Registry {
    child: Child,
    stderr: PathBuf,
}

impl Registry {
    fn start(etcd: &Etcd, scratch: &Scratch, args: &[&str]) -> Registry {
        Registry::start_with(etcd, scratch, args, Stdio::null())
    }

    fn start_with(etcd: &Etcd, scratch: &Scratch, args: &[&str], stdout: Stdio) -> Registry {
        let stderr = scratch.file(&format!("registry-{}.err", free_port()));
        let child = Command::new(registry_exe())
            .args(args)
            .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
            .env_remove("REGISTRY_PREFIX")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start registry");
        Registry { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: libc::c_int) -> SystemTime {
        signal(self.pid(), sig);
        SystemTime::now()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for `registry` to exit: its status code.
    async fn exit_code(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for registry") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "registry still runs after {limit:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Puts and deletes of one key, each with the moment it was seen.
struct KeyWatch {
    events: mpsc::UnboundedReceiver<(EventType, SystemTime)>,
}

impl KeyWatch {
    /// Watches `key` from now on (the watch is in place when this returns).
    async fn start(etcd: &Etcd, key: &str) -> KeyWatch {
        let mut raw = etcd.raw().await;
        let mut stream = raw.watch(key, None).await.expect("watch the key");
        let created = stream
            .message()
            .await
            .expect("watch answer")
            .expect("watch created");
        assert!(created.created());
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _raw = raw;
            while let Ok(Some(answer)) = stream.message().await {
                for event in answer.events() {
                    let _ = tx.send((event.event_type(), SystemTime::now()));
                }
            }
        });
        KeyWatch { events }
    }

    /// The next event, which must be `kind`, within `limit`: when it was seen.
    async fn next(&mut self, kind: EventType, limit: Duration, what: &str) -> SystemTime {
        match tokio::time::timeout(limit, self.events.recv()).await {
            Ok(Some((seen, at))) => {
                assert_eq!(seen, kind, "{what}: the key saw {seen:?} first");
                at
            }
            _ => panic!("{what}: no {kind:?} of the key within {limit:?}"),
        }
    }

    fn quiet(&mut self) -> bool {
        self.events.try_recv().is_err()
    }
}

/// `GET path` on the health server's port; returns once it answered (the
/// switch is in force by then).
fn control(port: u16, path: &str) -> SystemTime {
    let mut conn =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let ask = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.write_all(ask.as_bytes()).expect("ask"); // in one piece
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer:?}");
    SystemTime::now()
}

fn ms(later: SystemTime, earlier: SystemTime) -> i128 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

/// `registry run` of the health server as `web` on a free port, against
/// an etcd of its own, with a watch on the key.
struct Run {
    // Dropped in this order: a server left running is stopped (by the PID
    // in its record) before the record's directory goes.
    moments: Moments,
    keys: KeyWatch,
    port: u16,
    addr: String,
    scratch: Scratch,
    etcd: Etcd,
}

impl Run {
    async fn new(tag: &str) -> Run {
        let etcd = Etcd::start().await;
        let scratch = Scratch::new(tag);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let moments = Moments(scratch.file("record"));
        let keys = KeyWatch::start(&etcd, &format!("/web/{addr}")).await;
        Run {
            moments,
            keys,
            port,
            addr,
            scratch,
            etcd,
        }
    }

    /// `registry run --name web --addr ADDR FLAGS -- health-server ... SERVER_FLAGS`.
    fn start(&self, flags: &[&str], server_flags: &[&str]) -> Registry {
        let (port, record) = (self.port.to_string(), self.moments.0.display().to_string());
        let mut args = vec!["run", "--name", "web", "--addr", &self.addr];
        args.extend_from_slice(flags);
        let server = env!("CARGO_BIN_EXE_health-server");
        args.extend_from_slice(&["--", server, "--port", &port, "--record", &record]);
        args.extend_from_slice(server_flags);
        Registry::start(&self.etcd, &self.scratch, &args)
    }

    /// Waits for the key to be put and the server to listen: when the key was seen.
    async fn registered(&mut self) -> SystemTime {
        let at = self
            .keys
            .next(EventType::Put, Duration::from_secs(30), "registered")
            .await;
        self.moments
            .wait("listening", Duration::from_secs(10))
            .await;
        at
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_registers_after_the_first_passing_check_follows_it_and_leaves_first() {
    let mut run = Run::new("run").await;
    let check = format!("http://{}/healthz", run.addr);
    let (interval, fails) = (format!("{}", INTERVAL.as_secs_f64()), FAILS.to_string());
    // A server slow to start: it listens 700 ms after it was started.
    let mut registry = run.start(
        &[
            "--ttl",
            "2",
            "--meta",
            "zone=zone1",
            "--check",
            &check,
            "--check-interval",
            &interval,
            "--check-fails",
            &fails,
            "--drain",
            "1",
        ],
        &["--listen-after", "700", "--term-exit", "42"],
    );

    // Registered after the first passing check, not before the server listens.
    let appeared = run.registered().await;
    let listening = run.moments.at("listening").expect("the server listened");
    let first_pass = run.moments.at("first_pass").expect("the check passed");
    println!(
        "cli: key appeared {} ms after the first passing check ({} ms after the server listened)",
        ms(appeared, first_pass),
        ms(appeared, listening)
    );
    assert!(
        appeared > listening,
        "registered before the server listened"
    );
    assert!(
        ms(appeared, first_pass) <= 100,
        "registered later than 100 ms after the check passed"
    );
    let mut raw = run.etcd.raw().await;
    let held = dump(&mut raw, "/web/").await;
    assert!(
        held.values()
            .all(|(value, _)| value.contains(r#""zone":"zone1""#)),
        "{held:?}"
    );

    // Failing: gone within interval x fails + 1 s; back within one interval of recovering.
    let failing = control(run.port, "/control/fail");
    let gone = run
        .keys
        .next(EventType::Delete, Duration::from_secs(10), "withdrawn")
        .await;
    let limit = INTERVAL * FAILS + Duration::from_secs(1);
    let passing = control(run.port, "/control/pass");
    let back = run
        .keys
        .next(EventType::Put, Duration::from_secs(10), "written back")
        .await;
    println!(
        "cli: key gone {} ms after /healthz began failing (limit {} ms: {FAILS} x {} ms + 1 s), \
         back {} ms after it passed again (interval {} ms)",
        ms(gone, failing),
        limit.as_millis(),
        INTERVAL.as_millis(),
        ms(back, passing),
        INTERVAL.as_millis()
    );
    assert!(ms(gone, failing) <= limit.as_millis() as i128);
    // One interval until the next probe, plus the probe and the write.
    assert!(ms(back, passing) <= (INTERVAL + Duration::from_millis(300)).as_millis() as i128);

    // SIGHUP goes to the server as it comes.
    registry.signal(libc::SIGHUP);
    run.moments.wait("sighup", Duration::from_secs(5)).await;

    // SIGTERM: the key goes first, the server hears of it after the drain.
    let asked = registry.signal(libc::SIGTERM);
    let deregistered = run
        .keys
        .next(EventType::Delete, Duration::from_secs(10), "deregistered")
        .await;
    let code = registry.exit_code(Duration::from_secs(10)).await;
    let told = run.moments.at("sigterm").expect("the server got SIGTERM");
    println!(
        "cli: SIGTERM: key deleted {} ms after it, the server got SIGTERM {} ms after the key \
         was gone (drain 1 s); exit code {code}",
        ms(deregistered, asked),
        ms(told, deregistered)
    );
    assert!(
        deregistered < told,
        "the server heard of SIGTERM before the key was gone"
    );
    assert!(ms(told, deregistered) >= 900, "the drain was not waited");
    assert_eq!(
        code,
        42,
        "registry exits with the server's code:\n{}",
        registry.stderr()
    );
    assert!(dump(&mut raw, "/web/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_exiting_on_its_own_is_deregistered_at_once_and_its_code_handed_on() {
    let mut run = Run::new("exit").await;
    let mut registry = run.start(&[], &[]);
    run.registered().await;

    control(run.port, "/control/exit/7");
    let gone = run
        .keys
        .next(EventType::Delete, Duration::from_secs(5), "deregistered")
        .await;
    let exited = run.moments.at("exit").expect("the server noted its exit");
    let code = registry.exit_code(Duration::from_secs(10)).await;
    println!(
        "cli: the server exited on its own; key deleted {} ms later; exit code {code}",
        ms(gone, exited)
    );
    assert!(
        ms(gone, exited) <= 100,
        "deleted later than 100 ms after the server exited"
    );
    assert_eq!(code, 7, "{}", registry.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_registry_leaves_no_key_after_ttl_plus_1s_and_stops_its_command() {
    let mut run = Run::new("kill").await;
    let mut registry = run.start(&["--ttl", "2"], &[]);
    run.registered().await;

    let killed = registry.signal(libc::SIGKILL);
    registry.exit_code(Duration::from_secs(5)).await;
    let gone = run
        .keys
        .next(EventType::Delete, Duration::from_secs(10), "expired")
        .await;
    let told = run.moments.wait("sigterm", Duration::from_secs(5)).await;
    println!(
        "cli: registry SIGKILLed: key gone {} ms later (TTL 2 s, limit 3 s); its server got \
         SIGTERM {} ms after the kill",
        ms(gone, killed),
        ms(told, killed)
    );
    assert!(ms(gone, killed) <= 3000, "the key outlived TTL + 1 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_cuts_the_drain_short_and_an_early_exit_is_never_registered() {
    let mut run = Run::new("drain").await;
    let mut registry = run.start(&["--drain", "30"], &["--term-exit", "9"]);
    run.registered().await;

    // SIGINT deregisters and drains (30 s); a SIGTERM then passes SIGINT on at once.
    registry.signal(libc::SIGINT);
    run.keys
        .next(EventType::Delete, Duration::from_secs(5), "deregistered")
        .await;
    let again = registry.signal(libc::SIGTERM);
    let told = run.moments.wait("sigint", Duration::from_secs(5)).await;
    assert_eq!(registry.exit_code(Duration::from_secs(5)).await, 9);
    println!(
        "cli: a second signal during a 30 s drain: the server got SIGINT {} ms after it",
        ms(told, again)
    );
    assert!(ms(told, again) <= 1000);
    assert!(
        run.moments.at("sigterm").is_none(),
        "the first signal is the one passed on"
    );

    // A server that dies before its check ever passes: never registered, its status handed on.
    std::fs::remove_file(&run.moments.0).expect("a fresh record");
    let check = format!("tcp://{}", run.addr);
    let mut registry = run.start(&["--check", &check], &["--listen-after", "1000000"]);
    wait_until(Duration::from_secs(10), "the server started", || async {
        run.moments.pid().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // probes fail meanwhile
    signal(run.moments.pid().expect("its pid"), libc::SIGUSR2); // not caught: it dies of it
    assert_eq!(
        registry.exit_code(Duration::from_secs(10)).await,
        128 + libc::SIGUSR2
    );
    assert!(
        run.keys.quiet(),
        "a command that never passed its check was registered"
    );

    // A command that cannot be started: 127, nothing registered.
    let args = [
        "run",
        "--name",
        "web",
        "--addr",
        &run.addr,
        "--",
        "/nonexistent/server",
    ];
    let mut missing = Registry::start(&run.etcd, &run.scratch, &args);
    assert_eq!(missing.exit_code(Duration::from_secs(10)).await, 127);
    assert!(
        missing.stderr().contains("cannot run /nonexistent/server"),
        "{}",
        missing.stderr()
    );
    assert!(run.keys.quiet());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_etcd_exits_1_with_the_librarys_error_and_starts_nothing() {
    let scratch = Scratch::new("unreachable");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = scratch.file("started");
    let started_text = started.display().to_string();
    for args in [
        vec!["list", "micro"],
        vec!["get", "/micro/127.0.0.1:1"],
        vec!["watch", "micro"],
        vec!["register", "--name", "micro", "--addr", "127.0.0.1:1"],
        vec![
            "run",
            "--name",
            "micro",
            "--addr",
            "127.0.0.1:1",
            "--",
            "touch",
            &started_text,
        ],
    ] {
        let out = Command::new(registry_exe())
            .args(["--endpoints", &endpoint])
            .args(&args)
            .output()
            .expect("run registry");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            format!("registry: etcd unavailable: connection to {endpoint} refused"),
            "{args:?}"
        );
    }
    assert!(!started.exists(), "run started its command without etcd");
}

/// Reads `registry watch` lines (the process prints one per change).
struct Lines(BufReader<ChildStdout>);

impl Lines {
    /// The next line (blocking; bounded by the test harness's watch of the child).
    fn next(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("read a watch line");
        line.trim_end().to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn register_list_get_and_watch_read_what_is_registered() {
    let mut etcd = Etcd::start().await;
    let scratch = Scratch::new("read");
    let (a, b) = ("/micro/127.0.0.1:4000", "/micro/127.0.0.1:4001");
    // Connection flags before and after the subcommand.
    let mut first = Registry::start(
        &etcd,
        &scratch,
        &[
            "--ttl",
            "3",
            "register",
            "--name",
            "micro",
            "--addr",
            "127.0.0.1:4000",
            "--meta",
            "zone=zone1",
            "--meta",
            "app.version=v1",
        ],
    );
    let mut second = Registry::start(
        &etcd,
        &scratch,
        &[
            "register",
            "--name",
            "micro",
            "--addr",
            "127.0.0.1:4001",
            "--meta",
            "weight=50",
            "--ttl",
            "4",
        ],
    );
    let mut raw = etcd.raw().await;
    wait_until(Duration::from_secs(30), "both registered", || {
        let mut raw = raw.clone();
        async move { dump(&mut raw, "/micro/").await.len() == 2 }
    })
    .await;
    let held = dump(&mut raw, "/micro/").await;
    for (key, ttl) in [(a, 3), (b, 4)] {
        let lease = raw
            .lease_time_to_live(held[key].1, None)
            .await
            .expect("lease");
        assert_eq!(lease.granted_ttl(), ttl, "{key}");
    }

    let registry = |args: &[&str]| {
        Command::new(registry_exe())
            .args(args)
            .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
            .env_remove("REGISTRY_PREFIX")
            .output()
            .expect("run registry")
    };
    let stdout = |out: &std::process::Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = stdout(&registry(&["list", "micro"]));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].starts_with("KEY") && rows[0].ends_with("METADATA"),
        "{table}"
    );
    assert!(
        rows[1].starts_with(a) && rows[1].contains(" zone1 ") && rows[1].contains("app.version=v1"),
        "{table}"
    );
    assert!(
        rows[2].starts_with(b) && rows[2].contains(" 50 "),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&registry(&["list", "micro", "-o", "json"]))).unwrap();
    assert_eq!(json[0]["key"], a);
    assert_eq!(json[1]["metadata"]["weight"], 50);
    let sd = stdout(&registry(&["list", "micro", "-o", "prometheus-sd"]));
    let sd: serde_json::Value = serde_json::from_str(&sd).unwrap();
    assert_eq!(sd[0]["targets"], serde_json::json!(["127.0.0.1:4000"]));
    assert_eq!(sd[0]["labels"]["__meta_registry_name"], "micro");
    assert_eq!(sd[0]["labels"]["__meta_registry_zone"], "zone1");
    assert_eq!(sd[0]["labels"]["__meta_registry_app_version"], "v1");
    let got = stdout(&registry(&["get", b, "-o", "json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap()[0]["addr"],
        "127.0.0.1:4001"
    );
    let missing = registry(&["get", "/micro/127.0.0.1:4002"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("no instance is registered under /micro/127.0.0.1:4002"));

    // watch: the instances as added, then each change; through an etcd restart.
    let mut watch = Registry::start_with(
        &etcd,
        &scratch,
        &["watch", "micro", "-o", "json"],
        Stdio::piped(),
    );
    let mut lines = Lines(BufReader::new(watch.child.stdout.take().expect("stdout")));
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        loop {
            let line = lines.next();
            if line.is_empty() {
                return seen; // the watch exited
            }
            seen.push(line);
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.restart_member(0).await;
    second.signal(libc::SIGTERM);
    assert_eq!(
        second.exit_code(Duration::from_secs(10)).await,
        0,
        "{}",
        second.stderr()
    );
    wait_until(Duration::from_secs(10), "b gone from etcd", || {
        let mut raw = raw.clone();
        async move { !dump(&mut raw, "/micro/").await.contains_key(b) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch.signal(libc::SIGTERM);
    assert_eq!(
        watch.exit_code(Duration::from_secs(10)).await,
        0,
        "{}",
        watch.stderr()
    );
    let seen = reader.join().expect("the reader");
    let changes: Vec<(String, String)> = seen
        .iter()
        .map(|line| {
            let change: serde_json::Value =
                serde_json::from_str(line).expect("one JSON object per line");
            (
                change["change"].as_str().unwrap().to_string(),
                change["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    println!("cli: watch printed {changes:?}");
    assert_eq!(
        changes[..2],
        [("added".into(), a.into()), ("added".into(), b.into())]
    );
    assert_eq!(
        changes.last(),
        Some(&("removed".to_string(), b.to_string())),
        "{seen:?}"
    );
    first.signal(libc::SIGINT);
    assert_eq!(
        first.exit_code(Duration::from_secs(10)).await,
        0,
        "{}",
        first.stderr()
    );
    assert!(dump(&mut raw, "/micro/").await.is_empty());
}
