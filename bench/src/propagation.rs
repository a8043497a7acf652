//! Propagation: from `register` returning to a watcher (another client on
//! its own connection, in this process or in another one) seeing the new
//! instance, next to etcd's own put latency measured round by round in the
//! same run.
//!
//! Used by `make bench` (watcher in another process:
//! bench/src/sections/propagation.rs) and by `make bench-propagation`
//! (watcher in the same process: tests/benches/propagation.rs includes this
//! file).
//!
//! Across processes both sides read CLOCK_MONOTONIC, one clock for the
//! whole machine, so the watcher's timestamp is taken where it sees the
//! change, not where the benchmark reads its pipe.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::stats::micros;
use libregistry::{blocking, Change, Options, Service};

/// The service name registered and watched.
pub const NAME: &str = "bench-propagation";

/// Where the watcher runs.
pub enum WatcherAt<'a> {
    /// Another client in this process (its callback thread); what
    /// `make bench-propagation` uses.
    SameProcess,
    /// `exe args.. ENDPOINTS NAME`, which runs [`watcher_child`].
    OtherProcess {
        /// The program to run.
        exe: &'a Path,
        /// Arguments before the endpoints and the name.
        args: &'a [&'a str],
    },
}

/// What one run measured, each in microseconds, one entry per sample.
#[derive(Default)]
pub struct Propagation {
    /// A raw etcd-client put of the same size (the floor), one per round.
    pub put_us: Vec<f64>,
    /// `register` from call to return.
    pub register_us: Vec<f64>,
    /// From calling `register` to the watcher seeing the instance.
    pub end_to_end_us: Vec<f64>,
    /// From `register` returning to the watcher seeing it (negative when
    /// the watch event beat the put's answer).
    pub after_return_us: Vec<f64>,
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Runs `warmup + samples` rounds against etcd at `endpoints`; each round
/// times one raw put, then one register and its arrival at the watcher.
pub fn measure(
    endpoints: &[String],
    warmup: usize,
    samples: usize,
    at: WatcherAt<'_>,
) -> Propagation {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut raw = rt
        .block_on(etcd_client::Client::connect(endpoints, None))
        .expect("raw etcd-client");
    let opts = || Options::new().endpoints(endpoints.to_vec());
    let provider = blocking::Client::connect(opts()).expect("provider client");

    // The watcher: its sightings arrive as (addr, CLOCK_MONOTONIC ns).
    let (tx, rx) = mpsc::channel::<(String, i64)>();
    let mut _consumer = None;
    let mut child = None;
    match at {
        WatcherAt::SameProcess => {
            let consumer = blocking::Client::connect(opts()).expect("consumer client");
            let watcher = consumer.watch(NAME).expect("watch");
            watcher
                .on_change(move |change| {
                    if let Change::Added(i) = change {
                        let _ = tx.send((i.addr.clone(), monotonic_ns()));
                    }
                })
                .expect("on_change");
            _consumer = Some((consumer, watcher));
        }
        WatcherAt::OtherProcess { exe, args } => {
            let mut c = Command::new(exe)
                .args(args)
                .args([endpoints.join(",").as_str(), NAME])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the watcher process");
            let out = BufReader::new(c.stdout.take().expect("watcher stdout"));
            let (ready_tx, ready_rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in out.lines().map_while(Result::ok) {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next(), words.next()) {
                        (Some("ready"), _, _) => {
                            let _ = ready_tx.send(());
                        }
                        (Some("added"), Some(addr), Some(ns)) => {
                            let _ = tx.send((addr.to_string(), ns.parse().unwrap_or(0)));
                        }
                        _ => {}
                    }
                }
            });
            ready_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the watcher process is ready");
            child = Some(c);
        }
    }

    let value = "x".repeat(300);
    let mut out = Propagation::default();
    for i in 0..warmup + samples {
        let start = Instant::now();
        rt.block_on(raw.put(format!("/floor/{i}"), value.as_str(), None))
            .expect("raw put");
        let put = start.elapsed();

        let addr = format!("127.0.0.1:{}", 1 + i % 60_000);
        let service = Service::new(NAME, addr.as_str());
        let start_ns = monotonic_ns();
        provider
            .register(&service)
            .unwrap_or_else(|e| panic!("register {i} failed: {e}"));
        let returned_ns = monotonic_ns();
        let (seen_addr, seen_ns) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the watcher saw the registration");
        assert_eq!(seen_addr, addr, "sightings arrive in order");
        if i >= warmup {
            out.put_us.push(micros(put));
            out.register_us.push((returned_ns - start_ns) as f64 / 1e3);
            out.end_to_end_us.push((seen_ns - start_ns) as f64 / 1e3);
            out.after_return_us
                .push((seen_ns - returned_ns) as f64 / 1e3);
        }
    }
    provider.close().expect("close provider");
    if let Some(mut c) = child {
        drop(c.stdin.take()); // EOF: the watcher process exits
        let _ = c.kill();
        let _ = c.wait();
    }
    out
}

/// The watcher process: watches `name`, prints `ready`, then one line
/// `added ADDR NS` per instance added (NS: CLOCK_MONOTONIC when seen);
/// exits when its standard input closes.
pub fn watcher_child(endpoints_csv: &str, name: &str) {
    let client =
        blocking::Client::connect(Options::new().endpoints_csv(endpoints_csv)).expect("connect");
    let watcher = client.watch(name).expect("watch");
    watcher
        .on_change(|change| {
            if let Change::Added(i) = change {
                let seen = monotonic_ns();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "added {} {seen}", i.addr);
                let _ = out.flush();
            }
        })
        .expect("on_change");
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
    drop(watcher);
    let _ = client.close();
}
