//! The footprint in threads: at most 2 extra, with 1 and with 10,000 registrations.
//! This file holds a single test so no other test's threads are counted.

use harness::Etcd;
use libregistry::{blocking, Options, Service};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn at_most_two_extra_threads_with_1_and_10000_registrations() {
    // The harness's own runtime runs etcd checks; count from after it exists.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let base = threads();

    let client = blocking::Client::connect(Options::new().endpoints(etcd.endpoints())).unwrap();
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .unwrap();
    let with_one = threads();

    let services: Vec<Service> = (0..10_000)
        .map(|i| {
            Service::new(
                format!("svc{}", i % 50),
                format!("10.2.{}.{}:80", i / 250, i % 250),
            )
        })
        .collect();
    client.register_many(&services).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let with_many = threads();

    println!(
        "threads: {base} before the client, {with_one} with 1 registration (+{}), {with_many} with 10,001 (+{})",
        with_one - base,
        with_many - base
    );
    assert!(
        with_one - base <= 2,
        "{} extra threads with 1 registration",
        with_one - base
    );
    assert!(
        with_many - base <= 2,
        "{} extra threads with 10,001 registrations",
        with_many - base
    );
    client.close().unwrap();
}
