//! `make bench-scale` (`bench scale`): a fleet of provider processes on a
//! 3-member etcd cluster on loopback, each client registering its instances
//! under one lease, with watchers on every service name; what etcd pays for
//! it (keepalive messages, CPU, memory) against one lease per instance (the
//! seed's way) measured in the same run, and how the fleet recovers from a
//! killed leader, a wiped cluster and SIGKILLed processes. Prints the
//! tables and writes them into BENCHMARKS.md (between the bench-scale
//! markers; `BENCH_QUICK=1`: a small fleet, into target/bench/ instead).
//!
//! The size: `BENCH_SCALE_PROCESSES` (default 1,000) processes of
//! `BENCH_SCALE_PER_PROCESS` (100) instances, `BENCH_SCALE_NAMES` (100) service names, 10
//! watcher processes watching 10 names each, TTL 10 s; the baseline holds
//! `BENCH_SCALE_BASELINE` (10,000) instances the seed's way.

pub mod children;
mod etcd_load;
mod fleet;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, PutOptions, Txn, TxnOp};
use harness::Etcd;
use serde_json::json;

use crate::driver::Driver;
use etcd_load::{PeakWrites, Reading};
use fleet::{Fleet, Shape};

const BEGIN: &str = "<!-- bench-scale: begin (written by `make bench-scale`) -->";
const END: &str = "<!-- bench-scale: end -->";

struct Plan {
    shape: Shape,
    /// Instances held the seed's way for the baseline.
    baseline: usize,
    /// How long etcd's counters are watched in steady state.
    window: Duration,
    quick: bool,
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plan() -> Plan {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let (processes, per_process, names, watcher_processes, baseline, window) = if quick {
        (20, 50, 10, 2, 1_000, 10)
    } else {
        (
            env("BENCH_SCALE_PROCESSES", 1_000),
            env("BENCH_SCALE_PER_PROCESS", 100),
            env("BENCH_SCALE_NAMES", 100),
            10,
            env("BENCH_SCALE_BASELINE", 10_000),
            30,
        )
    };
    Plan {
        shape: Shape {
            processes,
            per_process,
            names: names.min(processes),
            watcher_processes: watcher_processes.min(names),
            ttl: 10,
        },
        baseline,
        window: Duration::from_secs(window),
        quick,
    }
}

/// etcd's load over a window: per second and per minute, per member.
struct Load {
    keepalives_per_sec: f64,
    /// CPU seconds per minute, per member.
    cpu_per_min: Vec<f64>,
    /// Resident memory grown since `idle`, per member.
    rss_growth: Vec<f64>,
}

/// etcd's load over `window`, its memory against `idle` (read before the load began).
fn watch_load(ports: &[u16], window: Duration, idle: &[Reading]) -> Load {
    let before = etcd_load::read_all(ports);
    let started = Instant::now();
    std::thread::sleep(window);
    let after = etcd_load::read_all(ports);
    let secs = started.elapsed().as_secs_f64();
    let delta = |f: fn(&Reading) -> f64| -> Vec<f64> {
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| (f(a) - f(b)).max(0.0))
            .collect()
    };
    Load {
        keepalives_per_sec: delta(|r| r.keepalives).iter().sum::<f64>() / secs,
        cpu_per_min: delta(|r| r.cpu_secs)
            .iter()
            .map(|c| c / secs * 60.0)
            .collect(),
        rss_growth: after.iter().zip(idle).map(|(a, i)| a.rss - i.rss).collect(),
    }
}

/// How many keys the fleet has in etcd now (`None` while etcd does not answer).
async fn keys_in_etcd(etcd: &Etcd) -> Option<usize> {
    let mut raw = tokio::time::timeout(Duration::from_secs(2), etcd.raw())
        .await
        .ok()?;
    let options = GetOptions::new().with_prefix().with_count_only();
    let read = tokio::time::timeout(Duration::from_secs(2), raw.get("/scale-", Some(options)));
    Some(read.await.ok()?.ok()?.count() as usize)
}

/// Waits until etcd holds `want` keys of the fleet; how long from `since`.
async fn wait_keys(
    etcd: &Etcd,
    want: usize,
    since: Instant,
    limit: Duration,
) -> Result<Duration, String> {
    loop {
        let have = keys_in_etcd(etcd).await;
        if have == Some(want) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            return Err(format!(
                "etcd holds {have:?} keys of the fleet, not {want}, after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The floor of a whole-fleet rewrite: one client writing `n` keys in
/// 128-put transactions under one lease, one after another.
async fn raw_write_time(etcd: &Etcd, n: usize) -> Duration {
    let mut raw = etcd.raw().await;
    let lease = raw.lease_grant(60, None).await.expect("grant").id();
    let value = "x".repeat(330);
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(128) {
        let puts: Vec<TxnOp> = chunk
            .iter()
            .map(|i| {
                let key = format!("/floor/{}", crate::child::addr(*i));
                TxnOp::put(
                    key,
                    value.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                )
            })
            .collect();
        raw.txn(Txn::new().and_then(puts)).await.expect("txn");
    }
    let took = started.elapsed();
    raw.lease_revoke(lease).await.expect("revoke");
    took
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn mib(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / 1024.0 / 1024.0)
}

/// The markdown block and the JSON of one run.
struct Tables {
    md: String,
    json: serde_json::Value,
}

pub fn main() {
    let plan = plan();
    let s = plan.shape;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "bench-scale: etcd {}, 3 members; {} processes x {} instances = {} under {} names, {} watchers in {} processes, TTL {} s",
        harness::etcd_version(),
        s.processes,
        s.per_process,
        s.instances(),
        s.names,
        s.names,
        s.watcher_processes,
        s.ttl
    );
    let started = Instant::now();
    match run(&rt, &plan) {
        Ok(tables) => {
            println!("\n{}", tables.md);
            write(&plan, &tables);
            println!("bench-scale took {:.0} s", started.elapsed().as_secs_f64());
        }
        Err(e) => {
            eprintln!("bench-scale: {e}");
            std::process::exit(1);
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, plan: &Plan) -> Result<Tables, String> {
    let s = plan.shape;
    let n = s.instances();
    let mut etcd = rt.block_on(Etcd::cluster(3));
    let ports: Vec<u16> = etcd.members.iter().map(|m| m.client_port()).collect();
    let endpoints = etcd.endpoints_csv();

    let floor = rt.block_on(raw_write_time(&etcd, n));
    println!(
        "bench-scale: the raw write of {n} keys (128 per transaction, one client): {}",
        ms(floor)
    );
    let idle = etcd_load::read_all(&ports);
    // etcd with no client at all, for what the extrapolation leaves out.
    let quiet = watch_load(&ports, plan.window, &idle);

    // From cold: every provider process started at once.
    let mut fleet = Fleet::watchers(s, &endpoints)?;
    let cold = Instant::now();
    let slowest_own = fleet.start_providers()?;
    let registered = cold.elapsed();
    rt.block_on(wait_keys(&etcd, n, cold, Duration::from_secs(120)))?;
    let seen = fleet.wait_converged(cold, Duration::from_secs(120))?;
    println!(
        "bench-scale: {} processes registered {n} in {} (slowest process {}); every watcher saw all after {}",
        s.processes,
        ms(registered),
        ms(slowest_own),
        ms(seen)
    );

    // Steady state: etcd's own counters over the window.
    std::thread::sleep(Duration::from_secs(u64::from(s.ttl) / 3 + 1));
    let leader = rt.block_on(etcd.leader());
    let lib = watch_load(&ports, plan.window, &idle);
    println!(
        "bench-scale: steady: {:.0} keepalive messages/s; CPU s/min {:?}; leader {leader}",
        lib.keepalives_per_sec, lib.cpu_per_min
    );

    // The leader SIGKILLed, then started again.
    let peak = PeakWrites::start(ports.clone());
    etcd.members[leader].kill();
    let killed = Instant::now();
    rt.block_on(etcd.wait_serving(Duration::from_secs(30)));
    rt.block_on(wait_keys(&etcd, n, killed, Duration::from_secs(60)))?;
    let leader_back = fleet.wait_converged(killed, Duration::from_secs(60))?;
    let leader_peak = peak.finish();
    etcd.members[leader].start_again();
    rt.block_on(etcd.wait_member_ready(leader));
    println!("bench-scale: leader killed: all back and converged {} after the kill (peak {leader_peak:.0} keys/s)", ms(leader_back));

    // The whole cluster wiped and started empty.
    let peak = PeakWrites::start(ports.clone());
    rt.block_on(etcd.wipe_and_recreate());
    let serving = Instant::now();
    let keys_back = rt.block_on(wait_keys(&etcd, n, serving, Duration::from_secs(120)))?;
    let wiped_back = fleet.wait_converged(serving, Duration::from_secs(120))?;
    let wipe_peak = peak.finish();
    let wipe_target = Duration::from_millis(u64::from(s.ttl) * 1000 / 3 + 1000) + floor;
    println!(
        "bench-scale: cluster wiped: keys back {} and converged {} after it served again (target {}; peak {wipe_peak:.0} keys/s)",
        ms(keys_back),
        ms(wiped_back),
        ms(wipe_target)
    );

    // 10 % of the processes SIGKILLed.
    let gone = fleet.kill_every(10);
    let kill = Instant::now();
    let living = fleet.living_instances();
    rt.block_on(wait_keys(&etcd, living, kill, Duration::from_secs(60)))?;
    let dropped = fleet.wait_converged(kill, Duration::from_secs(60))?;
    println!(
        "bench-scale: {gone} processes SIGKILLed: every watcher dropped their instances {} later",
        ms(dropped)
    );
    fleet.stop();
    rt.block_on(wait_keys(&etcd, 0, Instant::now(), Duration::from_secs(60)))?;

    // The baseline: one lease and one keepalive per instance, on a cluster
    // of its own (the fleet's etcd keeps the memory it grew).
    drop(etcd);
    let fresh = rt.block_on(Etcd::cluster(3));
    let fresh_ports: Vec<u16> = fresh.members.iter().map(|m| m.client_port()).collect();
    let (base, base_leader) = baseline(rt, &fresh, &fresh_ports, plan)?;

    let (lib_rss, base_rss) = (&lib.rss_growth, &base.rss_growth);
    let per_10k = |v: f64, count: usize| v / (count as f64 / 10_000.0);
    let bound = s.processes as f64 * 3.0 / f64::from(s.ttl) * 1.1;
    let base_per_instance = base.keepalives_per_sec / plan.baseline as f64;
    let base_at_n = base_per_instance * n as f64;
    let fewer = base_at_n / lib.keepalives_per_sec.max(f64::EPSILON);
    let follower_mean = |v: &[f64], leader: usize| {
        let others: Vec<f64> = (0..v.len())
            .filter(|&i| i != leader)
            .map(|i| v[i])
            .collect();
        others.iter().sum::<f64>() / others.len().max(1) as f64
    };
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    // What the baseline adds over a quiet etcd, grown to n instances.
    let scale_up = |at_baseline: f64, quiet: f64| {
        quiet + (at_baseline - quiet).max(0.0) * n as f64 / plan.baseline as f64
    };

    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(
        md,
        "## Scale: {} processes, {} instances, a 3-member cluster\n",
        s.processes, n
    );
    let _ = writeln!(
        md,
        "`make bench-scale` on etcd {}: {} provider processes of {} instances each (one client, one lease per process), {} service names, {} watchers in {} processes, TTL {} s; all on this machine's loopback. The baseline holds {} instances the seed's way (a lease and a keepalive stream per instance) on a fresh 3-member cluster in the same run; its figures at {} instances are extrapolated (labelled): keepalive messages in proportion to instances, CPU as a quiet etcd's plus what the baseline added over it, grown in proportion.\n",
        harness::etcd_version(), s.processes, s.per_process, s.names, s.names, s.watcher_processes, s.ttl, plan.baseline, n
    );
    let _ = writeln!(md, "| etcd's load (its own metrics, over {} s) | libregistry, {n} instances | seed's way, {} instances | seed's way at {n} (extrapolated) |", plan.window.as_secs(), plan.baseline);
    let _ = writeln!(md, "|---|--:|--:|--:|");
    let _ = writeln!(
        md,
        "| (etcd with no client: CPU s per minute, leader / follower mean) | {:.2} / {:.2} | | |",
        quiet.cpu_per_min[leader],
        follower_mean(&quiet.cpu_per_min, leader)
    );
    let _ = writeln!(
        md,
        "| keepalive messages/s received | {:.0} (goal at most N x 3 / TTL + 10 % = {bound:.0}: {}) | {:.0} | {base_at_n:.0} ({fewer:.0}x libregistry's; goal at least 50x: {}) |",
        lib.keepalives_per_sec,
        met(lib.keepalives_per_sec <= bound),
        base.keepalives_per_sec,
        met(fewer >= 50.0)
    );
    let _ = writeln!(
        md,
        "| CPU s per minute, leader / follower mean | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} / {:.1} |",
        lib.cpu_per_min[leader],
        follower_mean(&lib.cpu_per_min, leader),
        base.cpu_per_min[base_leader],
        follower_mean(&base.cpu_per_min, base_leader),
        scale_up(base.cpu_per_min[base_leader], quiet.cpu_per_min[base_leader]),
        scale_up(
            follower_mean(&base.cpu_per_min, base_leader),
            follower_mean(&quiet.cpu_per_min, base_leader)
        )
    );
    let _ = writeln!(
        md,
        "| RSS growth per 10,000 instances, leader / follower mean | {} / {} | {} / {} | |",
        mib(per_10k(lib_rss[leader], n)),
        mib(per_10k(follower_mean(lib_rss, leader), n)),
        mib(per_10k(base_rss[base_leader], plan.baseline)),
        mib(per_10k(follower_mean(base_rss, base_leader), plan.baseline))
    );
    let _ = writeln!(md, "\n| the fleet | time |\n|---|--:|");
    let _ = writeln!(md, "| every process registered, from cold (all started at once) | {} (slowest process's own connect and register {}) |", ms(registered), ms(slowest_own));
    let _ = writeln!(
        md,
        "| every watcher saw every instance, from cold | {} |",
        ms(seen)
    );
    let _ = writeln!(md, "| leader SIGKILLed: every key held and every watcher converged | {} after the kill (peak {leader_peak:.0} keys/s written) |", ms(leader_back));
    let _ = writeln!(
        md,
        "| whole cluster wiped: every key back / every watcher converged | {} / {} after it served again; goal at most TTL/3 + 1 s + the raw write of all keys ({}) = {}: {}; peak {wipe_peak:.0} keys/s written |",
        ms(keys_back), ms(wiped_back), ms(floor), ms(wipe_target), met(keys_back <= wipe_target)
    );
    let _ = writeln!(md, "| {gone} processes SIGKILLed (10 %): every watcher dropped their instances | {} (TTL {} s) |", ms(dropped), s.ttl);
    let _ = writeln!(md, "\n{END}");
    let json = json!({
        "quiet_cpu_per_min": quiet.cpu_per_min,
        "processes": s.processes, "instances": n, "baseline_instances": plan.baseline,
        "keepalives_per_sec": lib.keepalives_per_sec, "baseline_keepalives_per_sec": base.keepalives_per_sec,
        "cpu_per_min": lib.cpu_per_min, "baseline_cpu_per_min": base.cpu_per_min,
        "rss_growth": lib_rss, "baseline_rss_growth": base_rss, "leader": leader,
        "raw_write_ms": floor.as_millis() as u64, "registered_ms": registered.as_millis() as u64,
        "seen_ms": seen.as_millis() as u64, "leader_killed_ms": leader_back.as_millis() as u64,
        "leader_peak_keys_per_sec": leader_peak, "wiped_keys_back_ms": keys_back.as_millis() as u64,
        "wiped_converged_ms": wiped_back.as_millis() as u64, "wipe_peak_keys_per_sec": wipe_peak,
        "killed_processes": gone, "dropped_ms": dropped.as_millis() as u64,
    });
    Ok(Tables { md, json })
}

/// etcd's load while a `bench child seed` process holds the baseline, and
/// which member leads meanwhile.
fn baseline(
    rt: &tokio::runtime::Runtime,
    etcd: &Etcd,
    ports: &[u16],
    plan: &Plan,
) -> Result<(Load, usize), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["child", &etcd.endpoints_csv(), "seed"]);
    let idle = etcd_load::read_all(ports);
    let mut seed = Driver::spawn("seed's way", cmd)?;
    seed.ask(&format!("hold {}", plan.baseline), Duration::from_secs(600))?;
    std::thread::sleep(Duration::from_secs(u64::from(plan.shape.ttl) / 3 + 1));
    let load = watch_load(ports, plan.window, &idle);
    let leader = rt.block_on(etcd.leader());
    let _ = seed.ask("release", Duration::from_secs(120));
    Ok((load, leader))
}

/// The block into BENCHMARKS.md (replacing the last run's), and the JSON.
fn write(plan: &Plan, tables: &Tables) {
    let root = harness::workspace_root();
    let out = root.join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("scale.json"), tables.json.to_string());
    let md_path = if plan.quick {
        out.join("BENCHMARKS-scale-quick.md")
    } else {
        root.join("BENCHMARKS.md")
    };
    let old = std::fs::read_to_string(&md_path).unwrap_or_default();
    std::fs::write(&md_path, splice(&old, &tables.md)).expect("write BENCHMARKS.md");
    println!("bench-scale: wrote {}", md_path.display());
}

/// `doc` with its bench-scale block replaced by `block` (appended when it has none).
pub fn splice(doc: &str, block: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{}{}", &doc[..b], block.trim_end(), &doc[e + END.len()..])
        }
        _ if doc.is_empty() => block.to_string(),
        _ => format!("{}\n\n{}", doc.trim_end(), block),
    }
}

/// The bench-scale block of `doc`, if it has one (so `make bench` keeps it).
pub fn block_of(doc: &str) -> Option<&str> {
    let b = doc.find(BEGIN)?;
    let e = doc.find(END)?;
    (b < e).then(|| &doc[b..e + END.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_is_replaced_appended_and_found() {
        let block = format!("{BEGIN}\nnew\n{END}\n");
        let doc = format!("# B\ntext\n\n{BEGIN}\nold\n{END}\ntail\n");
        assert_eq!(
            splice(&doc, &block),
            format!("# B\ntext\n\n{BEGIN}\nnew\n{END}\ntail\n")
        );
        assert_eq!(splice("# B\n", &block), format!("# B\n\n{block}"));
        assert_eq!(
            block_of(&doc),
            Some(format!("{BEGIN}\nold\n{END}").as_str())
        );
        assert_eq!(block_of("# B\n"), None);
    }
}
