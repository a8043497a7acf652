//! `make bench`: libregistry against the floor (raw etcd-client), the
//! seed's way and peer clients, every figure p50/p99 with its baseline
//! measured in the same run and the ratio printed; writes BENCHMARKS.md and
//! target/bench/results.json (scripts/bench.sh then draws the plot).
//!
//! `bench` runs everything (scripts/bench.sh sets up the Python and Go
//! drivers first and names them in BENCH_PYTHON, BENCH_PEER_PYTHON and
//! BENCH_GO_PEER; a driver not named is reported as not run).
//! `BENCH_QUICK=1` runs every section with tiny counts, to check the wiring.
//! `bench scale` is `make bench-scale` (bench/src/scale/).
//! `bench child ENDPOINTS KIND` and `bench child-watch ENDPOINTS NAME` are
//! the processes the benchmark starts itself; `bench child-core ENDPOINTS`
//! is the Rust core the Python benchmarks time their calls against.

mod bulk;
mod child;
mod core_child;
mod crash;
mod document;
mod driver;
mod footprint;
mod latency;
mod propagation;
mod recovery;
mod report;
mod scale;
mod sections;

use std::time::{Duration, Instant};

use driver::BlockSizes;
use report::Run;

/// How much of everything: sample counts and time limits, section by section.
struct Plan {
    latency: sections::latency::Plan,
    bulk: sections::bulk::Plan,
    propagation: sections::propagation::Plan,
    crash: sections::crash::Plan,
    recovery: sections::recovery::Plan,
    footprint: sections::footprint::Plan,
    peers: sections::peers::Plan,
}

impl Plan {
    fn full() -> Plan {
        let blocks = BlockSizes {
            rounds: 10,
            size: 200,
        };
        let window = Duration::from_secs(10);
        Plan {
            latency: sections::latency::Plan {
                warmup: 200,
                samples: 2000,
                blocks,
            },
            bulk: sections::bulk::Plan {
                rounds_10k: 8,
                rounds_100k: 3,
                seed_limit_10k: Duration::from_secs(40),
                seed_limit_100k: Duration::from_secs(20),
                reads_limit: Duration::from_secs(30),
            },
            propagation: sections::propagation::Plan {
                warmup: 100,
                samples: 2000,
            },
            crash: sections::crash::Plan {
                runs: [(2, 30), (5, 20), (10, 12)],
            },
            recovery: sections::recovery::Plan {
                registrations: 10_000,
                rounds: 5,
            },
            footprint: sections::footprint::Plan {
                sizes: [1, 1_000, 100_000],
                window,
            },
            peers: sections::peers::Plan {
                bulk_rounds: [2, 6],
                blocks,
                window,
            },
        }
    }

    fn quick() -> Plan {
        let blocks = BlockSizes {
            rounds: 2,
            size: 20,
        };
        let window = Duration::from_secs(2);
        Plan {
            latency: sections::latency::Plan {
                warmup: 5,
                samples: 50,
                blocks,
            },
            bulk: sections::bulk::Plan {
                rounds_10k: 2,
                rounds_100k: 1,
                seed_limit_10k: Duration::from_secs(2),
                seed_limit_100k: Duration::from_secs(1),
                reads_limit: Duration::from_secs(5),
            },
            propagation: sections::propagation::Plan {
                warmup: 5,
                samples: 50,
            },
            crash: sections::crash::Plan {
                runs: [(2, 3), (5, 2), (10, 0)],
            },
            recovery: sections::recovery::Plan {
                registrations: 1_000,
                rounds: 1,
            },
            footprint: sections::footprint::Plan {
                sizes: [1, 100, 1_000],
                window,
            },
            peers: sections::peers::Plan {
                bulk_rounds: [1, 1],
                blocks,
                window,
            },
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("scale") => return scale::main(),
        Some("scale-provider") => return scale::children::provider(&args[2..]),
        Some("scale-watch") => return scale::children::watcher(&args[2..]),
        _ => {}
    }
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("child"), Some(endpoints), Some(kind)) => child::main(endpoints, kind),
        (Some("child-watch"), Some(endpoints), Some(name)) => {
            propagation::watcher_child(endpoints, name)
        }
        (Some("child-core"), Some(endpoints), None) => core_child::main(endpoints),
        (None, _, _) => run(),
        _ => {
            eprintln!(
                "usage: bench | bench scale | bench child ENDPOINTS KIND | bench child-watch ENDPOINTS NAME | bench child-core ENDPOINTS"
            );
            std::process::exit(2);
        }
    }
}

fn run() {
    // The Python driver times the core through `bench child-core`: this binary.
    if let Ok(exe) = std::env::current_exe() {
        std::env::set_var("BENCH_CORE", exe);
    }
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

    let lat = sections::latency::section(&rt, &plan.latency, &mut run);
    sections::bulk::section(&rt, &plan.bulk, &mut run);
    sections::propagation::section(&plan.propagation, &mut run);
    sections::crash::section(&rt, &plan.crash, &mut run);
    sections::recovery::section(&rt, &plan.recovery, &mut run);
    let foot = sections::footprint::section(&rt, &plan.footprint, &mut run);
    sections::peers::section(&rt, &plan.peers, &mut run, &lat, &foot);

    let took = started.elapsed();
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        took.as_secs_f64(),
        load_end.trim()
    );
    document::write(&machine, &run, took, load_end.trim(), quick);
}
