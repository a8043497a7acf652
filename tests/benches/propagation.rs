//! Propagation: from `register` returning to a watcher (another client,
//! its own connection) calling back, next to etcd's own put latency, in one
//! run against one etcd. `make bench-propagation`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::Etcd;
use libregistry::{blocking, Change, Options, Service};

const SAMPLES: usize = 2000;
const WARMUP: usize = 100;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let opts = || Options::new().endpoints(etcd.endpoints());
    let provider = blocking::Client::connect(opts()).unwrap();
    let consumer = blocking::Client::connect(opts()).unwrap();

    // Baseline: etcd's own put latency, raw etcd-client, same value size.
    let value = "x".repeat(300);
    let mut raw = rt.block_on(etcd.raw());
    let mut put = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let start = Instant::now();
        rt.block_on(raw.put(format!("/baseline/{i}"), value.as_str(), None))
            .unwrap();
        if i >= WARMUP {
            put.push(micros(start.elapsed()));
        }
    }

    let watcher = consumer.watch("bench").unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    watcher
        .on_change(move |change| {
            if let Change::Added(i) = change {
                let _ = tx.send((i.addr.clone(), Instant::now()));
            }
        })
        .unwrap();

    let mut register = Vec::with_capacity(SAMPLES);
    let mut end_to_end = Vec::with_capacity(SAMPLES);
    let mut after_return = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let addr = format!("10.3.{}.{}:80", i / 250, i % 250 + 1);
        let start = Instant::now();
        provider
            .register(&Service::new("bench", addr.as_str()))
            .unwrap_or_else(|e| panic!("register {i} failed: {e}"));
        let returned = Instant::now();
        let (seen_addr, seen) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("watcher saw it");
        assert_eq!(seen_addr, addr);
        if i >= WARMUP {
            register.push(micros(returned - start));
            end_to_end.push(micros(seen - start));
            // Signed: the watch event may even arrive before the put's answer.
            after_return.push(
                seen.duration_since(returned).as_secs_f64() * 1e6
                    - returned.duration_since(seen).as_secs_f64() * 1e6,
            );
        }
    }
    provider.close().unwrap();

    for v in [&mut put, &mut register, &mut end_to_end, &mut after_return] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "propagation, {SAMPLES} samples, etcd {} on loopback, {} cores",
        harness::etcd_version(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("  {:<44} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    let row = |name: &str, v: &[f64]| {
        println!("  {name:<44} {:>10.1} {:>10.1}", pct(v, 0.5), pct(v, 0.99))
    };
    row("etcd put, raw etcd-client (baseline)", &put);
    row("libregistry register", &register);
    row("register start -> watcher callback", &end_to_end);
    row("register returned -> watcher callback", &after_return);
    println!(
        "  the watcher adds {:.1} µs at p99 after register returns (goal: at most 200 µs); \
         end-to-end p50 is {:.2}x etcd's put p50",
        pct(&after_return, 0.99),
        pct(&end_to_end, 0.5) / pct(&put, 0.5)
    );
}
