//! `make bench`: libregistry against the floor (raw etcd-client), the
//! seed's way and peer clients, every figure p50/p99 with its baseline
//! measured in the same run and the ratio printed; writes BENCHMARKS.md and
//! target/bench/results.json (scripts/bench.sh then draws the plot).
//!
//! `bench` runs everything (scripts/bench.sh sets up the Python and Go
//! drivers first and names them in BENCH_PYTHON, BENCH_PEER_PYTHON and
//! BENCH_GO_PEER; a driver not named is reported as not run).
//! `BENCH_QUICK=1` runs every section with tiny counts, to check the wiring.
//! `bench child ENDPOINTS KIND` and `bench child-watch ENDPOINTS NAME` are
//! the processes the benchmark starts itself.

mod bulk;
mod child;
mod crash;
mod document;
mod driver;
mod latency;
mod propagation;
mod recovery;
mod report;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::stats::Summary;
use harness::{workspace_root, Etcd};
use latency::{Sample, Way};
use report::{Fig, Row, Run};
use serde_json::Value;

use crate::driver::{number, numbers, Driver};

/// etcd's counter of keepalive requests received (every client, every lease).
const KEEPALIVE_METRIC: &str = "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}";

/// How much of everything: sample counts and time limits.
struct Plan {
    lat_warmup: usize,
    lat_samples: usize,
    block_rounds: usize,
    block_size: usize,
    bulk10_rounds: usize,
    bulk100_rounds: usize,
    seed10_limit: Duration,
    seed100_limit: Duration,
    prop_warmup: usize,
    prop_samples: usize,
    crash: [(u32, usize); 3],
    recovery_n: usize,
    recovery_rounds: usize,
    window: Duration,
    footprint_sizes: [usize; 3],
    /// Bulk rounds of 10,000 for the Python peer (about 20 s each) and the Go peer.
    peer_bulk_rounds: [usize; 2],
    reads_limit: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            lat_warmup: 200,
            lat_samples: 2000,
            block_rounds: 10,
            block_size: 200,
            bulk10_rounds: 8,
            bulk100_rounds: 3,
            seed10_limit: Duration::from_secs(40),
            seed100_limit: Duration::from_secs(20),
            prop_warmup: 100,
            prop_samples: 2000,
            crash: [(2, 30), (5, 20), (10, 12)],
            recovery_n: 10_000,
            recovery_rounds: 5,
            window: Duration::from_secs(10),
            footprint_sizes: [1, 1_000, 100_000],
            peer_bulk_rounds: [2, 6],
            reads_limit: Duration::from_secs(30),
        }
    }

    fn quick() -> Plan {
        Plan {
            lat_warmup: 5,
            lat_samples: 50,
            block_rounds: 2,
            block_size: 20,
            bulk10_rounds: 2,
            bulk100_rounds: 1,
            seed10_limit: Duration::from_secs(2),
            seed100_limit: Duration::from_secs(1),
            prop_warmup: 5,
            prop_samples: 50,
            crash: [(2, 3), (5, 2), (10, 0)],
            recovery_n: 1_000,
            recovery_rounds: 1,
            window: Duration::from_secs(2),
            footprint_sizes: [1, 100, 1_000],
            peer_bulk_rounds: [1, 1],
            reads_limit: Duration::from_secs(5),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("child"), Some(endpoints), Some(kind)) => child::main(endpoints, kind),
        (Some("child-watch"), Some(endpoints), Some(name)) => {
            propagation::watcher_child(endpoints, name)
        }
        (None, _, _) => run(),
        _ => {
            eprintln!(
                "usage: bench | bench child ENDPOINTS KIND | bench child-watch ENDPOINTS NAME"
            );
            std::process::exit(2);
        }
    }
}

fn run() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let machine = document::machine();
    println!(
        "libregistry {} benchmark: {}",
        libregistry::VERSION,
        machine["line"].as_str().unwrap_or("")
    );
    let mut run = Run {
        rows: Vec::new(),
        notes: Vec::new(),
        peers: Vec::new(),
    };

    let lat = section_latency(&rt, &plan, &mut run);
    section_bulk(&rt, &plan, &mut run);
    section_propagation(&plan, &mut run);
    section_crash(&rt, &plan, &mut run);
    section_recovery(&rt, &plan, &mut run);
    let foot = section_footprint(&rt, &plan, &mut run);
    section_peers(&rt, &plan, &mut run, &lat, &foot);

    let took = started.elapsed();
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        took.as_secs_f64(),
        load_end.trim()
    );
    document::write(&machine, &run, took, load_end.trim(), quick);
}

/// Figures later sections compare with.
struct Latency {
    core_register: Fig,
}

fn start_etcd(rt: &tokio::runtime::Runtime) -> Etcd {
    rt.block_on(Etcd::start())
}

fn column(samples: &[Sample], deregister: bool) -> Summary {
    let v: Vec<f64> = samples
        .iter()
        .map(|s| {
            if deregister {
                s.deregister_us
            } else {
                s.register_us
            }
        })
        .collect();
    Summary::of(&v)
}

fn section_latency(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) -> Latency {
    let etcd = start_etcd(rt);
    let ways = [Way::RawPut, Way::Seed, Way::Core, Way::CAbi];
    let res = latency::measure(&etcd.endpoints(), &ways, plan.lat_warmup, plan.lat_samples);
    let [raw, seed, core, c_abi] =
        [0, 1, 2, 3].map(|w| (column(&res[w], false), column(&res[w], true)));

    run.section(1);
    let floor = Fig::of(&raw.0);
    let seed_fig = Fig::of(&seed.0);
    run.add(Row::new(1, Way::RawPut.label().replace("/delete", ""), "µs", floor).panel("latency"));
    run.add(
        Row::new(1, Way::Seed.label(), "µs", seed_fig)
            .against("raw put (floor)", floor)
            .panel("latency"),
    );
    run.add(
        Row::new(1, Way::Core.label(), "µs", Fig::of(&core.0))
            .against("raw put (floor)", floor)
            .also("seed", seed_fig)
            .panel("latency"),
    );
    // What the C ABI adds: the difference of the paired medians.
    let c_adds = c_abi.0.p50 - core.0.p50;
    run.add(
        Row::new(1, Way::CAbi.label(), "µs", Fig::of(&c_abi.0))
            .against("raw put (floor)", floor)
            .also("seed", seed_fig)
            .also("Rust core", Fig::of(&core.0))
            .goal(
                format!("adds <= 20 µs p50 over Rust: {c_adds:+.1}"),
                c_adds <= 20.0,
            )
            .panel("latency"),
    );

    // Python: its own process, in blocks alternating with floor blocks.
    let endpoints = etcd.endpoints();
    let mut py_dereg = None;
    match python_driver("BENCH_PYTHON", "libregistry_driver.py", &endpoints) {
        Ok(mut driver) => {
            let b = blocks(rt, &endpoints, &mut driver, plan);
            let pfloor = Summary::of(&b.floor.iter().map(|s| s.register_us).collect::<Vec<_>>());
            let py = Summary::of(&b.register);
            let pcore = Summary::of(&b.core_register);
            let adds = py.p50 - pcore.p50;
            run.add(
                Row::new(
                    1,
                    "libregistry, Python (Registry.register)",
                    "µs",
                    Fig::of(&py),
                )
                .against("raw put (floor, Python's blocks)", Fig::of(&pfloor))
                .also("seed", seed_fig)
                .also("Rust core in the same process", Fig::of(&pcore))
                .goal(
                    format!("adds <= 60 µs p50 over Rust: {adds:+.1}"),
                    adds <= 60.0,
                )
                .panel("latency"),
            );
            let pfloor_del =
                Summary::of(&b.floor.iter().map(|s| s.deregister_us).collect::<Vec<_>>());
            py_dereg = Some((Summary::of(&b.deregister), pfloor_del));
        }
        Err(e) => run.note(format!("Python binding not measured: {e}")),
    }

    run.section(2);
    let dfloor = Fig::of(&raw.1);
    run.add(Row::new(2, "raw etcd-client delete (floor)", "µs", dfloor));
    run.add(
        Row::new(2, "seed's way: delete the key", "µs", Fig::of(&seed.1))
            .against("raw delete (floor)", dfloor),
    );
    run.add(
        Row::new(
            2,
            "libregistry, Rust core deregister",
            "µs",
            Fig::of(&core.1),
        )
        .against("raw delete (floor)", dfloor),
    );
    run.add(
        Row::new(2, "libregistry, C ABI deregister", "µs", Fig::of(&c_abi.1))
            .against("raw delete (floor)", dfloor),
    );
    if let Some((py, pfloor)) = py_dereg {
        run.add(
            Row::new(2, "libregistry, Python deregister", "µs", Fig::of(&py))
                .against("raw delete (floor, Python's blocks)", Fig::of(&pfloor)),
        );
    }
    Latency {
        core_register: Fig::of(&core.0),
    }
}

/// What a driver measured in blocks, with the floor's blocks in between.
#[derive(Default)]
struct Blocks {
    register: Vec<f64>,
    deregister: Vec<f64>,
    core_register: Vec<f64>,
    floor: Vec<Sample>,
}

/// Rounds of one driver block (`latency N`) then one floor block of N raw
/// put+delete, after one warm-up round of each.
fn blocks(
    rt: &tokio::runtime::Runtime,
    endpoints: &[String],
    driver: &mut Driver,
    plan: &Plan,
) -> Blocks {
    let mut raw = rt
        .block_on(etcd_client::Client::connect(endpoints, None))
        .expect("raw etcd-client");
    let value = vec![b'x'; 330];
    let mut out = Blocks::default();
    for round in 0..=plan.block_rounds {
        let ans = driver
            .ask(
                &format!("latency {}", plan.block_size),
                Duration::from_secs(120),
            )
            .expect("driver latency block");
        let floor: Vec<Sample> = (0..plan.block_size)
            .map(|i| latency::raw_put_delete(rt, &mut raw, &format!("/bench-floor/{i}"), &value))
            .collect();
        if round > 0 {
            out.register.extend(numbers(&ans, "register_us"));
            out.deregister.extend(numbers(&ans, "deregister_us"));
            out.core_register.extend(numbers(&ans, "core_register_us"));
            out.floor.extend(floor);
        }
    }
    out
}

fn python_driver(var: &str, script: &str, endpoints: &[String]) -> Result<Driver, String> {
    let python =
        std::env::var(var).map_err(|_| format!("{var} not set (scripts/bench.sh sets it)"))?;
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("bench/python").join(script))
        .arg(endpoints.join(","));
    Driver::spawn(script, cmd)
}

fn section_bulk(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    run.section(3);
    let mut closes: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
    for (n, rounds, seed_limit) in [
        (10_000, plan.bulk10_rounds, plan.seed10_limit),
        (100_000, plan.bulk100_rounds, plan.seed100_limit),
    ] {
        // A fresh etcd for each size: no history from the other.
        let etcd = start_etcd(rt);
        let endpoints = etcd.endpoints();
        let (mut raw, value) = raw_and_value(rt, &etcd);
        let (mut lib, mut floor, mut lib_close, mut floor_close) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (reg, close) = bulk::library_round(&endpoints, n);
            lib.push(reg);
            lib_close.push(close * 1e3);
            compact(rt, &mut raw);
            let (write, revoke) = bulk::floor_round(rt, &mut raw, "bulk-floor", n, &value);
            floor.push(write);
            floor_close.push(revoke * 1e3);
            compact(rt, &mut raw);
        }
        let seed = bulk::seed_run(rt, &mut raw, n, &value, seed_limit);
        let (lib_fig, floor_fig) = (Fig::rate(n, &lib), Fig::rate(n, &floor));
        let seed_fig = Fig::one(seed.done as f64 / seed.secs);
        let of_floor = lib_fig.p50 / floor_fig.p50;
        let label = report::count(n);
        run.add(
            Row::new(
                3,
                format!("raw txns of 128 under one lease, {label} (floor)"),
                "reg/s",
                floor_fig,
            )
            .panel("bulk"),
        );
        let seed_what = if seed.done < n {
            format!(
                "seed's way, one by one, {label} (stopped at the {:.0} s limit after {})",
                seed_limit.as_secs_f64(),
                report::count(seed.done)
            )
        } else {
            format!("seed's way, one by one, {label}")
        };
        run.add(
            Row::new(3, seed_what, "reg/s", seed_fig)
                .against("raw txns (floor)", floor_fig)
                .panel("bulk"),
        );
        run.add(Row::new(
            3,
            format!(
                "   its registrations, each ({} of them)",
                report::count(seed.done)
            ),
            "µs",
            Fig::of(&Summary::of(&seed.each_us)),
        ));
        let met = lib_fig.p50 >= 40_000.0 && of_floor >= 0.9;
        run.add(
            Row::new(
                3,
                format!("libregistry register_many, {label}"),
                "reg/s",
                lib_fig,
            )
            .against("raw txns (floor)", floor_fig)
            .also("seed", seed_fig)
            .goal(format!(">= 40,000/s and >= 0.9 floor: {of_floor:.2}"), met)
            .panel("bulk"),
        );
        let gap_us = 1e6 / lib_fig.p50 - 1e6 / floor_fig.p50;
        run.add(
            Row::new(
                3,
                "   time per registration over the floor's",
                "µs",
                Fig::one(gap_us),
            )
            .against("the floor's", Fig::one(1e6 / floor_fig.p50)),
        );
        if n == 10_000 {
            // After a fresh client's first registration of a name, the
            // library checks every key it wrote, one read request per key.
            let (reads, busy, register) =
                bulk::reads_after_register(&endpoints, &etcd.members[0], n, plan.reads_limit);
            run.add(
                Row::new(
                    3,
                    format!("   read requests etcd gets after register_many of {label} returned"),
                    "reads",
                    Fig::one(reads),
                )
                .against("the floor's reads", Fig::one(0.0)),
            );
            run.add(
                Row::new(
                    3,
                    "   ... for how long after it returned",
                    "s",
                    Fig::one(busy),
                )
                .against("register_many itself", Fig::one(register)),
            );
        }
        closes.push((n, lib_close, floor_close));
    }
    run.section(2);
    for (n, lib, floor) in closes {
        let label = report::count(n);
        let floor_fig = Fig::of(&Summary::of(&floor));
        run.add(Row::new(
            2,
            format!("raw revoke of a lease holding {label} keys (floor)"),
            "ms",
            floor_fig,
        ));
        run.add(
            Row::new(
                2,
                format!("libregistry close() holding {label} registrations"),
                "ms",
                Fig::of(&Summary::of(&lib)),
            )
            .against(format!("raw revoke, {label} keys (floor)"), floor_fig),
        );
    }
}

/// A raw client on `etcd` and the bytes libregistry writes for one
/// service there (read back from a throwaway client's registration).
fn raw_and_value(rt: &tokio::runtime::Runtime, etcd: &Etcd) -> (etcd_client::Client, Vec<u8>) {
    let mut raw = rt.block_on(etcd.raw());
    let core = libregistry::blocking::Client::connect(
        libregistry::Options::new().endpoints(etcd.endpoints()),
    )
    .expect("connect");
    let value = latency::library_value(rt, &mut raw, &core);
    let _ = core.close();
    (raw, value)
}

/// Compacts etcd's history up to now, so bulk rounds do not pile it up.
fn compact(rt: &tokio::runtime::Runtime, raw: &mut etcd_client::Client) {
    rt.block_on(async {
        if let Ok(resp) = raw.get("/", None).await {
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            if rev > 0 {
                let _ = raw.compact(rev, None).await;
            }
        }
    });
}

fn section_propagation(plan: &Plan, run: &mut Run) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let exe = std::env::current_exe().expect("own path");
    let other = propagation::WatcherAt::OtherProcess {
        exe: &exe,
        args: &["child-watch"],
    };
    run.section(4);
    for (at, place) in [
        (other, "another process"),
        (propagation::WatcherAt::SameProcess, "this process"),
    ] {
        let etcd = start_etcd(&rt);
        let p = propagation::measure(&etcd.endpoints(), plan.prop_warmup, plan.prop_samples, at);
        let floor = Fig::of(&Summary::of(&p.put_us));
        let after = Summary::of(&p.after_return_us);
        let tag = format!("watcher in {place}");
        run.add(Row::new(
            4,
            format!("raw etcd-client put (floor; {tag} run)"),
            "µs",
            floor,
        ));
        run.add(
            Row::new(
                4,
                "libregistry register, call to return",
                "µs",
                Fig::of(&Summary::of(&p.register_us)),
            )
            .against("raw put (floor)", floor),
        );
        run.add(
            Row::new(
                4,
                format!("register called -> {tag} sees it"),
                "µs",
                Fig::of(&Summary::of(&p.end_to_end_us)),
            )
            .against("raw put (floor)", floor)
            .panel("propagation"),
        );
        run.add(
            Row::new(
                4,
                format!("register returned -> {tag} sees it"),
                "µs",
                Fig::of(&after),
            )
            .against("raw put (floor)", floor)
            .goal(
                format!("<= 200 µs p99: {:.0}", after.p99),
                after.p99 <= 200.0,
            )
            .panel("propagation"),
        );
    }
}

fn provider_exe() -> PathBuf {
    let own = std::env::current_exe().expect("own path");
    own.with_file_name("provider")
}

fn section_crash(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    run.section(5);
    let exe = provider_exe();
    if !exe.exists() {
        run.note(format!(
            "crash detection not measured: {} is missing (cargo build --release -p libregistry-tests --bin provider)",
            exe.display()
        ));
        return;
    }
    let etcd = start_etcd(rt);
    for (ttl, count) in plan.crash {
        if count == 0 {
            continue;
        }
        let secs = crash::measure(&etcd.endpoints(), &exe, ttl, count);
        let s = Summary::of(&secs);
        let limit = f64::from(ttl) + 0.6;
        let mut what = format!("TTL {ttl} s: SIGKILL -> removal seen");
        if secs.len() < count {
            what.push_str(&format!(" ({} of {count} seen)", secs.len()));
        }
        run.add(
            Row::new(5, what, "s", Fig::of(&s))
                .against(format!("the TTL, {ttl} s"), Fig::one(f64::from(ttl)))
                .goal(
                    format!("<= TTL + 0.6 s at p99: {:+.2}", s.p99 - f64::from(ttl)),
                    s.p99 <= limit && secs.len() == count,
                )
                .panel("crash"),
        );
    }
}

fn section_recovery(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    let mut etcd = start_etcd(rt);
    let r = recovery::measure(rt, &mut etcd, plan.recovery_n, plan.recovery_rounds);
    run.section(6);
    let label = report::count(plan.recovery_n);
    let floor = Fig::of(&Summary::of(&r.floor_secs));
    let mut what = format!("{label} registrations back, from etcd answering");
    if r.incomplete > 0 {
        what.push_str(&format!(" ({} rounds not back in 30 s)", r.incomplete));
    }
    run.add(Row::new(
        6,
        format!("raw write of {label} keys into the fresh etcd (floor)"),
        "s",
        floor,
    ));
    run.add(
        Row::new(6, what, "s", Fig::of(&Summary::of(&r.back_secs)))
            .against("raw write (floor)", floor)
            .panel("recovery"),
    );
    run.add(
        Row::new(
            6,
            "   of which: until its first lease grant reached etcd",
            "s",
            Fig::of(&Summary::of(&r.first_grant_secs)),
        )
        .against("all back", Fig::of(&Summary::of(&r.back_secs))),
    );
    run.add(
        Row::new(
            6,
            "   read requests the client sent meanwhile",
            "reads",
            Fig::of(&Summary::of(&r.client_reads)),
        )
        .against("the floor's reads", Fig::one(0.0)),
    );
}

/// A footprint measurement of one process holding registrations.
#[derive(Clone, Copy)]
struct Foot {
    extra_threads: f64,
    threads: f64,
    rss_mib: f64,
    keepalive_per_s: f64,
}

/// Asks `driver` to hold `n` registrations, then counts etcd's keepalive
/// requests over `window`.
fn footprint(etcd: &Etcd, driver: &mut Driver, n: usize, window: Duration) -> Result<Foot, String> {
    let ans = driver.ask(&format!("hold {n}"), Duration::from_secs(300))?;
    let member = &etcd.members[0];
    let before = member.metric(KEEPALIVE_METRIC).unwrap_or(f64::NAN);
    let start = Instant::now();
    std::thread::sleep(window);
    let after = member.metric(KEEPALIVE_METRIC).unwrap_or(f64::NAN);
    let per_s = (after - before) / start.elapsed().as_secs_f64();
    // RSS again at the end of the window: keepalives have run meanwhile.
    let rss_end = rss_kib(driver.pid()).unwrap_or(number(&ans, "rss_kb"));
    driver.ask("release", Duration::from_secs(120))?;
    Ok(Foot {
        extra_threads: number(&ans, "threads") - number(&ans, "threads_before"),
        threads: number(&ans, "threads"),
        rss_mib: number(&ans, "rss_kb").max(rss_end) / 1024.0,
        keepalive_per_s: per_s,
    })
}

fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// libregistry's footprint at 1,000, for the peers' rows.
struct Footprints {
    library1000: Option<Foot>,
}

fn section_footprint(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) -> Footprints {
    run.section(7);
    let etcd = start_etcd(rt);
    let exe = std::env::current_exe().expect("own path");
    let spawn_child = |kind: &str| {
        let mut cmd = Command::new(&exe);
        cmd.args(["child", &etcd.endpoints_csv(), kind]);
        Driver::spawn(kind, cmd)
    };
    let mut out = Footprints { library1000: None };
    for n in plan.footprint_sizes {
        let label = report::count(n);
        let lib =
            spawn_child("libregistry").and_then(|mut d| footprint(&etcd, &mut d, n, plan.window));
        let computed = n <= 1_000;
        let seed = if computed {
            spawn_child("seed").and_then(|mut d| footprint(&etcd, &mut d, n, plan.window))
        } else {
            Err("not run".into())
        };
        let lib = match lib {
            Ok(f) => f,
            Err(e) => {
                run.note(format!("libregistry footprint at {label} failed: {e}"));
                continue;
            }
        };
        if n == 1_000 {
            out.library1000 = Some(lib);
        }
        // The seed's way at 100,000 (100,000 leases and keepalive streams)
        // is not run: its keepalive rate is computed, N x 3 / TTL.
        let (seed_name, seed_foot) = match seed {
            Ok(f) => (format!("seed's way, {label}"), Some(f)),
            Err(_) => (
                format!("seed's way, {label} (computed: N x 3 / TTL, not run)"),
                None,
            ),
        };
        let computed_ka = n as f64 * 3.0 / f64::from(child::TTL_SECS);
        let mut threads = Row::new(
            7,
            format!(
                "libregistry, {}: extra threads ({} in all)",
                report::registrations(n),
                lib.threads
            ),
            "threads",
            Fig::one(lib.extra_threads),
        )
        .goal("<= 2 extra threads", lib.extra_threads <= 2.0);
        let mut rss = Row::new(
            7,
            format!("libregistry, {}: RSS", report::registrations(n)),
            "MiB",
            Fig::one(lib.rss_mib),
        );
        let ka = Row::new(
            7,
            format!(
                "libregistry, {}: keepalive requests",
                report::registrations(n)
            ),
            "msg/s",
            Fig::one(lib.keepalive_per_s),
        )
        .panel("keepalive");
        let ka = match seed_foot {
            Some(s) => {
                threads = threads.against(seed_name.clone(), Fig::one(s.extra_threads));
                rss = rss.against(seed_name.clone(), Fig::one(s.rss_mib));
                ka.against(seed_name, Fig::one(s.keepalive_per_s))
            }
            None => ka.against(seed_name, Fig::one(computed_ka)),
        };
        run.add(threads);
        run.add(rss);
        run.add(ka);
    }
    run.note(format!(
        "keepalive requests are counted by etcd ({}) over {:.0} s with TTL {} s; RSS is the holding process's VmRSS",
        "grpc_server_msg_received_total, LeaseKeepAlive",
        plan.window.as_secs_f64(),
        child::TTL_SECS
    ));
    out
}

fn section_peers(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    run: &mut Run,
    lat: &Latency,
    foot: &Footprints,
) {
    run.section(8);
    let etcd = start_etcd(rt);
    let endpoints = etcd.endpoints();
    let (mut raw, value) = raw_and_value(rt, &etcd);
    // One peer process at a time: a peer alive meanwhile would add its
    // keepalives to the other's count and its load to the other's samples.
    let start_peer = |lang: &str| -> Result<Driver, String> {
        match lang {
            "Python" => python_driver("BENCH_PEER_PYTHON", "peer_etcd_sdk.py", &endpoints),
            _ => std::env::var("BENCH_GO_PEER")
                .map_err(|_| "BENCH_GO_PEER not set (scripts/bench.sh sets it)".to_string())
                .and_then(|exe| {
                    let mut cmd = Command::new(exe);
                    cmd.arg(endpoints.join(","));
                    Driver::spawn("go peer", cmd)
                }),
        }
    };
    for lang in ["Python", "Go"] {
        let mut driver = match start_peer(lang) {
            Ok(d) => d,
            Err(e) => {
                run.note(format!("{lang} peer not measured: {e}"));
                continue;
            }
        };
        let info = driver
            .ask("info", Duration::from_secs(30))
            .unwrap_or(Value::Null);
        let name = format!(
            "{} {}",
            info["client"].as_str().unwrap_or(lang),
            info["version"].as_str().unwrap_or("?")
        );
        run.peers
            .push(format!("{name}: {}", info["how"].as_str().unwrap_or("")));
        let b = blocks(rt, &endpoints, &mut driver, plan);
        let floor = Fig::of(&Summary::of(
            &b.floor.iter().map(|s| s.register_us).collect::<Vec<_>>(),
        ));
        let dfloor = Fig::of(&Summary::of(
            &b.floor.iter().map(|s| s.deregister_us).collect::<Vec<_>>(),
        ));
        run.add(
            Row::new(
                8,
                format!("{name}: register"),
                "µs",
                Fig::of(&Summary::of(&b.register)),
            )
            .against("raw put (floor, its blocks)", floor)
            .also("libregistry Rust (section 1)", lat.core_register)
            .panel("latency"),
        );
        run.add(
            Row::new(
                8,
                format!("{name}: deregister"),
                "µs",
                Fig::of(&Summary::of(&b.deregister)),
            )
            .against("raw delete (floor, its blocks)", dfloor),
        );
        // Each peer round is followed, on the same etcd, by a floor round
        // and a libregistry round of the same size.
        let (mut secs, mut floor, mut lib) = (Vec::new(), Vec::new(), Vec::new());
        let rounds = plan.peer_bulk_rounds[usize::from(lang == "Go")];
        for _ in 0..rounds {
            match driver.ask("bulk 10000", Duration::from_secs(180)) {
                Ok(ans) => secs.push(number(&ans, "secs")),
                Err(e) => run.note(format!("{name} bulk: {e}")),
            }
            floor.push(bulk::floor_round(rt, &mut raw, "peer-floor", 10_000, &value).0);
            compact(rt, &mut raw);
            lib.push(bulk::library_round(&endpoints, 10_000).0);
            compact(rt, &mut raw);
        }
        if !secs.is_empty() {
            run.add(
                Row::new(
                    8,
                    format!("{name}: 10,000 registrations"),
                    "reg/s",
                    Fig::rate(10_000, &secs),
                )
                .against(
                    "raw txns (floor, rounds in between)",
                    Fig::rate(10_000, &floor),
                )
                .also("libregistry register_many", Fig::rate(10_000, &lib))
                .panel("bulk"),
            );
        }
        match footprint(&etcd, &mut driver, 1_000, plan.window) {
            Ok(f) => {
                let lib = foot.library1000;
                let with = |row: Row, pick: fn(&Foot) -> f64| match lib {
                    Some(l) => row.against("libregistry, 1,000", Fig::one(pick(&l))),
                    None => row,
                };
                run.add(with(
                    Row::new(
                        8,
                        format!(
                            "{name}, 1,000 registrations: extra threads ({} in all)",
                            f.threads
                        ),
                        "threads",
                        Fig::one(f.extra_threads),
                    ),
                    |f| f.extra_threads,
                ));
                run.add(with(
                    Row::new(
                        8,
                        format!("{name}, 1,000 registrations: RSS"),
                        "MiB",
                        Fig::one(f.rss_mib),
                    ),
                    |f| f.rss_mib,
                ));
                run.add(with(
                    Row::new(
                        8,
                        format!("{name}, 1,000 registrations: keepalive requests"),
                        "msg/s",
                        Fig::one(f.keepalive_per_s),
                    ),
                    |f| f.keepalive_per_s,
                ));
            }
            Err(e) => run.note(format!("{name} footprint: {e}")),
        }
    }
}
