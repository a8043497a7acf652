//! Discovery: one-shot reads and watchers, against real etcd and real
//! provider processes, through restarts, wipes and compaction.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use harness::{spawn_provider, wait_until, Etcd};
use libregistry::{Change, Client, Instance, Options, PickPolicy, Service, Watcher};

const TTL: u32 = 2;

fn opts(endpoints: Vec<String>) -> Options {
    Options::new()
        .endpoints(endpoints)
        .ttl_secs(TTL)
        .request_timeout(Duration::from_secs(1))
}

async fn next(watcher: &Watcher) -> Change {
    tokio::time::timeout(Duration::from_secs(10), watcher.next_change())
        .await
        .expect("a change within 10 s")
        .expect("watcher running")
}

fn addrs(instances: &[Instance]) -> Vec<&str> {
    instances.iter().map(|i| i.addr.as_str()).collect()
}

/// The watcher's cache equals a fresh read, eventually.
async fn converges(watcher: &Watcher, reader: &Client, name: &str, what: &str) {
    let took = wait_until(Duration::from_secs(20), what, || async {
        match reader.discover(name).await {
            Ok(fresh) => *watcher.instances() == fresh,
            Err(_) => false,
        }
    })
    .await;
    println!("discovery[{what}]: watcher cache equals a fresh discover after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_follows_add_update_deregister_and_a_killed_provider() {
    let etcd = Etcd::start().await;
    let provider = Client::connect(opts(etcd.endpoints())).await.unwrap();
    let consumer = Client::connect(opts(etcd.endpoints())).await.unwrap();
    let first = provider
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();

    let watcher = consumer.watch("micro").await.unwrap();
    assert_eq!(addrs(&watcher.instances()), ["127.0.0.1:4000"]);
    assert!(matches!(next(&watcher).await, Change::Added(i) if i.addr == "127.0.0.1:4000"));

    let second = provider
        .register(&Service::new("micro", "127.0.0.1:4001").zone("z1"))
        .await
        .unwrap();
    match next(&watcher).await {
        Change::Added(i) => {
            assert_eq!(i.key, "/micro/127.0.0.1:4001");
            assert_eq!(i.zone(), Some("z1"));
        }
        other => panic!("expected Added, got {other:?}"),
    }

    second.update([("weight", "0")]).await.unwrap();
    assert!(matches!(next(&watcher).await, Change::Updated(i) if i.weight() == 0));

    first.deregister().await.unwrap();
    assert!(matches!(next(&watcher).await, Change::Removed(i) if i.addr == "127.0.0.1:4000"));
    assert_eq!(addrs(&watcher.instances()), ["127.0.0.1:4001"]);

    // A provider process killed with SIGKILL: gone from the cache after about the TTL.
    let (mut child, _) = spawn_provider(
        env!("CARGO_BIN_EXE_provider"),
        "micro",
        "127.0.0.1:4002",
        &[
            ("REGISTRY_ENDPOINTS", &etcd.endpoints_csv()),
            ("REGISTRY_TTL", "2"),
        ],
    );
    assert!(matches!(next(&watcher).await, Change::Added(i) if i.addr == "127.0.0.1:4002"));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    assert!(matches!(next(&watcher).await, Change::Removed(i) if i.addr == "127.0.0.1:4002"));
    println!(
        "discovery[killed provider]: removed from the watcher {:?} after SIGKILL (TTL {TTL} s)",
        killed.elapsed()
    );
    assert!(killed.elapsed() < Duration::from_secs(u64::from(TTL) + 3));
    provider.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn similar_names_stay_apart_and_foreign_values_are_handled() {
    let etcd = Etcd::start().await;
    let client = Client::connect(opts(etcd.endpoints())).await.unwrap();
    client
        .register(&Service::new("foo", "10.0.0.1:1"))
        .await
        .unwrap();
    client
        .register(&Service::new("foo_other", "10.0.0.2:1"))
        .await
        .unwrap();
    client
        .register(&Service::new("foo.v2", "10.0.0.3:1"))
        .await
        .unwrap();
    let mut raw = etcd.raw().await;
    // Written by Go's naming/endpoints, and something that is no instance at all.
    raw.put(
        "/foo/10.0.0.9:1",
        r#"{"Op":0,"Addr":"10.0.0.9:1","Metadata":null}"#,
        None,
    )
    .await
    .unwrap();
    raw.put("/foo/garbage", "not json", None).await.unwrap();

    let found = client.discover("foo").await.unwrap();
    assert_eq!(
        addrs(&found),
        ["10.0.0.1:1", "10.0.0.9:1"],
        "no foo_other, no garbage"
    );
    assert_eq!(found[1].weight(), 100, "Go entries get the default weight");
    let watcher = client.watch("foo").await.unwrap();
    assert_eq!(addrs(&watcher.instances()), ["10.0.0.1:1", "10.0.0.9:1"]);
    assert!(matches!(
        client.discover("../foo").await,
        Err(libregistry::Error::InvalidArgument { .. })
    ));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_matches_a_fresh_read_after_restart_and_wipe() {
    let mut etcd = Etcd::start().await;
    let provider = Client::connect(opts(etcd.endpoints())).await.unwrap();
    let consumer = Client::connect(opts(etcd.endpoints())).await.unwrap();
    let _regs = provider
        .register_many(&[
            Service::new("micro", "10.0.0.1:1"),
            Service::new("micro", "10.0.0.2:1"),
        ])
        .await
        .unwrap();
    let watcher = consumer.watch("micro").await.unwrap();
    assert_eq!(watcher.instances().len(), 2);

    etcd.member().kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    etcd.restart_member(0).await;
    converges(&watcher, &consumer, "micro", "restart").await;
    assert_eq!(watcher.instances().len(), 2);

    etcd.wipe_and_restart().await;
    wait_until(
        Duration::from_secs(20),
        "provider healed after the wipe",
        || async {
            consumer
                .discover("micro")
                .await
                .is_ok_and(|found| found.len() == 2)
        },
    )
    .await;
    converges(&watcher, &consumer, "micro", "wiped").await;
    assert_eq!(
        watcher.instances().len(),
        2,
        "the provider healed, the watcher followed"
    );
    provider.close().await.unwrap();
    converges(&watcher, &consumer, "micro", "provider closed").await;
    assert!(watcher.instances().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_while_the_watcher_is_cut_off_reports_the_true_difference() {
    let mut etcd = Etcd::cluster(3).await;
    let endpoints = etcd.endpoints();
    // The watcher reaches etcd through one follower only; the provider through
    // the other members, which keep quorum and leader while it is cut off.
    let cut = (etcd.leader().await + 1) % 3;
    let others: Vec<String> = (0..3)
        .filter(|i| *i != cut)
        .map(|i| endpoints[i].clone())
        .collect();
    let consumer = Client::connect(opts(vec![endpoints[cut].clone()]))
        .await
        .unwrap();
    let provider = Client::connect(opts(others.clone())).await.unwrap();
    let regs = provider
        .register_many(&[
            Service::new("micro", "10.0.0.1:1"),
            Service::new("micro", "10.0.0.2:1"),
            Service::new("micro", "10.0.0.3:1"),
        ])
        .await
        .unwrap();
    let watcher = consumer.watch("micro").await.unwrap();
    let mut view: HashMap<String, Instance> = HashMap::new();
    for _ in 0..3 {
        if let Change::Added(i) = next(&watcher).await {
            view.insert(i.key.clone(), i);
        }
    }

    etcd.members[cut].kill();
    // While the watcher is cut off: one removed, one updated, one added, history compacted.
    regs[0].deregister().await.unwrap();
    regs[1].update([("weight", "5")]).await.unwrap();
    provider
        .register(&Service::new("micro", "10.0.0.4:1"))
        .await
        .unwrap();
    let mut raw = etcd_client::Client::connect(&others, None).await.unwrap();
    let rev = raw
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    raw.compact(
        rev,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    etcd.members[cut].start_again();
    etcd.wait_member_ready(cut).await;

    converges(&watcher, &provider, "micro", "compacted while cut off").await;
    // Replaying the reported changes on the old view gives the new one: no stale, no duplicate.
    while let Some(change) = watcher.try_next_change() {
        match change {
            Change::Added(i) => assert!(view.insert(i.key.clone(), i).is_none(), "duplicate add"),
            Change::Updated(i) => {
                assert!(view.insert(i.key.clone(), i).is_some(), "update of unknown")
            }
            Change::Removed(i) => assert!(view.remove(&i.key).is_some(), "removal of unknown"),
        }
    }
    let mut replayed: Vec<Instance> = view.into_values().collect();
    replayed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(replayed, *watcher.instances());
    assert_eq!(addrs(&replayed), ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"]);
    assert_eq!(replayed[0].weight(), 5);
    provider.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pick_follows_weights_zones_and_drains() {
    let etcd = Etcd::start().await;
    let client = Client::connect(opts(etcd.endpoints())).await.unwrap();
    client
        .register_many(&[
            Service::new("svc", "10.0.0.1:1").weight(100).zone("z1"),
            Service::new("svc", "10.0.0.2:1").weight(300).zone("z1"),
            Service::new("svc", "10.0.0.3:1").weight(0).zone("z1"),
            Service::new("svc", "10.0.0.4:1").weight(1000).zone("z2"),
        ])
        .await
        .unwrap();
    let policy = PickPolicy {
        zone: Some("z1".into()),
        ..PickPolicy::default()
    };
    let watcher = client.watch_with("svc", policy).await.unwrap();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let start = Instant::now();
    for _ in 0..100_000 {
        *counts.entry(watcher.pick().unwrap().addr).or_default() += 1;
    }
    println!("pick: 100,000 picks in {:?}: {counts:?}", start.elapsed());
    assert!(!counts.contains_key("10.0.0.3:1"), "weight 0 never picked");
    assert!(!counts.contains_key("10.0.0.4:1"), "own zone preferred");
    let share = f64::from(counts["10.0.0.2:1"]) / 100_000.0;
    assert!(
        (share - 0.75).abs() <= 0.75 * 0.05,
        "weight 300 of 400 got {share}"
    );

    watcher.set_policy(PickPolicy {
        zone: Some("z9".into()),
        ..PickPolicy::default()
    });
    let mut far = 0;
    for _ in 0..10_000 {
        if watcher.pick().unwrap().addr == "10.0.0.4:1" {
            far += 1;
        }
    }
    assert!(far > 7_000, "without a zone match, weights over all: {far}");
    client.close().await.unwrap();
}

#[test]
fn a_wait_that_times_out_loses_no_later_change() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let client = libregistry::blocking::Client::connect(opts(etcd.endpoints())).unwrap();
    let watcher = client.watch("micro").unwrap();
    for _ in 0..3 {
        assert_eq!(
            watcher
                .next_change_blocking(Duration::from_millis(50))
                .unwrap(),
            None
        );
    }
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .unwrap();
    let change = watcher
        .next_change_blocking(Duration::from_secs(5))
        .unwrap();
    assert!(matches!(change, Some(Change::Added(i)) if i.addr == "127.0.0.1:4000"));
    client.close().unwrap();
}
