//! Closing a client that holds many registrations on a loaded machine: the
//! lease revoke deletes every key in one etcd step whose length grows with
//! them, so the close budget grows too (2 s plus 1 s per 10,000).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Etcd;
use libregistry::{Client, Options, Service};

/// Two threads spinning on the machine's two cores while the close runs.
struct BusyLoops {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl BusyLoops {
    fn start(n: usize) -> BusyLoops {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                    spins
                })
            })
            .collect();
        BusyLoops { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_100000_registrations_under_cpu_load_succeeds_and_leaves_nothing() {
    const N: usize = 100_000;
    let etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(30)
            .request_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let services: Vec<Service> = (0..N)
        .map(|i| {
            Service::new(
                "close",
                format!("10.{}.{}.{}:80", i / 65_536, i / 256 % 256, i % 256),
            )
        })
        .collect();
    let started = Instant::now();
    client.register_many(&services).await.unwrap();
    println!(
        "close: {N} registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(client.registration_count(), N as u64);

    let busy = BusyLoops::start(2);
    let started = Instant::now();
    let closed = client.close().await;
    let took = started.elapsed();
    busy.stop();
    println!(
        "close: {N} registrations closed in {:.2} s with two busy loops on the CPU (budget {} s: 2 s + 1 s per 10,000)",
        took.as_secs_f64(),
        2 + N / 10_000
    );
    closed.unwrap();

    let mut raw = etcd.raw().await;
    let left = raw
        .get(
            "/close/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap()
        .count();
    assert_eq!(left, 0, "every key went with the lease");
    let leases = raw.leases().await.unwrap();
    assert!(leases.leases().is_empty(), "the lease is revoked");
}

/// A close that cannot finish in time (etcd frozen) says so, and what
/// becomes of the keys: they expire with the lease.
#[tokio::test(flavor = "multi_thread")]
async fn a_close_past_its_timeout_says_the_keys_expire_with_the_lease() {
    let mut etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(5)
            .close_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    client
        .register(&Service::new("close", "10.0.0.1:80"))
        .await
        .unwrap();
    etcd.member().freeze();
    let started = Instant::now();
    let closed = client.close().await;
    let took = started.elapsed();
    etcd.member().thaw();
    let err = closed.expect_err("etcd was frozen");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("expire with the lease"), "{err}");
    assert!(
        took < Duration::from_secs(3),
        "bounded by close_timeout: {took:?}"
    );
}
