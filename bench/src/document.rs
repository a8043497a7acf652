//! What a run leaves behind: target/bench/results.json (for the plot) and
//! BENCHMARKS.md, with the machine, the goals met or missed and why, the
//! tables and the method (bench/doc/*.md).

use std::path::PathBuf;
use std::time::Duration;

use harness::workspace_root;
use serde_json::{json, Value};

use crate::report::{self, Row, Run};

/// The machine, for the first line and the document.
pub fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_default();
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let etcd = harness::etcd_version();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let load = read("/proc/loadavg").trim().to_string();
    let date = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| libregistry::timefmt::format_utc(d.as_secs()))
        .unwrap_or_default();
    json!({
        "cores": cores, "cpu": cpu, "mem_gib": mem_gib, "etcd": etcd, "kernel": kernel,
        "load_start": load, "date": date,
        "line": format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {kernel}, etcd {etcd} on loopback, data on the local disk; load average at the start: {load}"),
    })
}

/// Writes target/bench/results.json and BENCHMARKS.md (under target/bench/ when `quick`).
pub fn write(machine: &Value, run: &Run, took: Duration, load_end: &str, quick: bool) {
    let root = workspace_root();
    let out_dir = root.join("target/bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let results = json!({
        "machine": machine,
        "rows": report::json_rows(&run.rows),
        "took_secs": took.as_secs_f64(),
        "peers": run.peers,
    });
    let json_path = out_dir.join("results.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .expect("write results.json");
    println!("wrote {}", json_path.display());
    let md_path: PathBuf = std::env::var("BENCH_MARKDOWN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            if quick {
                out_dir.join("BENCHMARKS.md")
            } else {
                root.join("BENCHMARKS.md")
            }
        });
    let mut md = markdown(machine, run, took, load_end);
    // `make bench-scale`'s tables stay until it runs again.
    let old = std::fs::read_to_string(&md_path).unwrap_or_default();
    if let Some(scale) = crate::scale::block_of(&old) {
        md = crate::scale::splice(&md, scale);
    }
    std::fs::write(&md_path, md).expect("write BENCHMARKS.md");
    println!("wrote {}", md_path.display());
}

fn markdown(machine: &Value, run: &Run, took: Duration, load_end: &str) -> String {
    let mut md = String::new();
    md.push_str(include_str!("../doc/head.md"));
    md.push_str(&format!(
        "\n## This run\n\n- Machine: {}.\n- Load average at the end: {load_end}.\n- libregistry {}; the whole benchmark took {:.0} s (`make bench` also builds first).\n- Measured {}.\n",
        machine["line"].as_str().unwrap_or(""),
        libregistry::VERSION,
        took.as_secs_f64(),
        machine["date"].as_str().unwrap_or("")
    ));
    if !run.peers.is_empty() {
        md.push_str("- Peers:\n");
        for p in &run.peers {
            md.push_str(&format!("  - {p}\n"));
        }
    }
    md.push_str("\n## Goals\n\n");
    for row in run.rows.iter().filter(|r| r.met.is_some()) {
        let verdict = if row.met == Some(true) {
            "met"
        } else {
            "**MISSED**"
        };
        let figure = match row.fig.p99 {
            Some(p99) => format!(
                "p50 {}, p99 {} {}",
                report::num(row.fig.p50),
                report::num(p99),
                row.unit
            ),
            None => format!("{} {}", report::num(row.fig.p50), row.unit),
        };
        md.push_str(&format!(
            "- {verdict}: {} — {} ({figure}).\n",
            row.what.trim(),
            row.goal
        ));
    }
    md.push_str(&explain_misses(&run.rows));
    md.push_str(
        "\n## Figures\n\n![p50 and p99 of each figure against its baseline](BENCHMARKS.png)\n\n",
    );
    md.push_str(&report::markdown_tables(&run.rows));
    if !run.notes.is_empty() {
        md.push_str("Notes from the run:\n\n");
        for n in &run.notes {
            md.push_str(&format!("- {n}\n"));
        }
        md.push('\n');
    }
    md.push_str(include_str!("../doc/method.md"));
    md
}

/// Why each missed goal was missed (what the run's own figures show).
fn explain_misses(rows: &[Row]) -> String {
    let mut out = String::new();
    let missed = |needle: &str| {
        rows.iter()
            .any(|r| r.met == Some(false) && r.what.contains(needle))
    };
    let why: [(&str, &str); 6] = [
        ("C ABI", "\nThe C ABI goal is missed: the C ABI calls the same blocking core, so what it adds is the boundary (argument checks, panic guard, handle allocation) plus noise between paired samples; see the Rust core's and the C ABI's p50 side by side.\n"),
        ("Python", "\nThe Python goal is missed: the Python row includes interpreter work around the call (argument conversion, GIL release and re-acquisition, building the result object).\n"),
        ("register returned", "\nThe watcher goal is missed (see which watcher in section 4): after etcd answers the put, the watch event still has to be sent by etcd on the watcher's own connection, decoded on the library's runtime thread and handed to the callback thread, in another process or in this one. The median is about zero (the event often arrives before the put's answer); the tail is scheduling: on 2 cores shared with etcd, the benchmark and other engineers' builds, the thread that must run next is often not running, and the floor's own p99 (a raw put) is several times its p50 in the same run.\n"),
        ("register_many", "\nThe bulk goal is missed (see the ratio to the floor and the time per registration over the floor's in section 3). The transactions are the floor's (128 puts under one lease, one after the other); the gap is the library's own work per registration, done before and between them: validating and encoding each service (JSON), a handle per registration, its own copy of every key and value. A profile of the calling thread (perf, 100,000 registrations, once) puts it in allocation, serde_json's string serialization and `Service::resolve`, a few µs per registration; on 2 cores shared with etcd that CPU time also delays etcd. Nothing overlaps it with the writes (encoding the next 128 while a transaction is in flight, or two transactions in flight, would hide most of it).\n"),
        ("SIGKILL", "\nA crash-detection goal is missed: after the provider dies, its key goes when etcd expires the lease, up to a full TTL after the last keepalive, and etcd checks for expired leases only every 500 ms, after which the deletion still has to reach the watcher; so TTL + 0.5 s is etcd's own worst case before any scheduling delay on a loaded machine.\n"),
        ("extra threads", "\nThe thread goal is missed: see the extra threads per size in section 7.\n"),
    ];
    for (needle, text) in why {
        if missed(needle) {
            out.push_str(text);
        }
    }
    out
}
