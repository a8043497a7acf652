//! Healing: whatever etcd goes through, a living client's registrations come
//! back, and etcd ends up holding exactly the expected keys. Each case prints
//! the time from the fault's end to the key being back.

use std::time::{Duration, Instant};

use harness::proxy::{Mode, Proxy};
use harness::{dump, wait_until, Etcd};
use libregistry::{Client, Event, Options, Service};

const TTL: u32 = 2;
const KEYS: [&str; 2] = ["/micro/127.0.0.1:4000", "/micro/127.0.0.1:4001"];

async fn setup() -> (Etcd, Client, Vec<libregistry::Registration>) {
    let etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(TTL)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let regs = client
        .register_many(&[
            Service::new("micro", "127.0.0.1:4000"),
            Service::new("micro", "127.0.0.1:4001"),
        ])
        .await
        .unwrap();
    (etcd, client, regs)
}

/// Waits until etcd holds exactly `KEYS`, all under the client's current lease.
async fn wait_healed(etcd: &Etcd, client: &Client, case: &str, fault_end: Instant) {
    let limit = Duration::from_secs(20);
    wait_until(limit, case, || etcd.holds_exactly(&KEYS, client.lease_id())).await;
    println!(
        "healing[{case}]: keys back {:?} after the fault ended",
        fault_end.elapsed()
    );
}

/// The lease still alive after healing: nothing vanishes a TTL later.
async fn assert_stays(etcd: &Etcd) {
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 1)).await;
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/").await;
    assert!(held.keys().map(String::as_str).eq(KEYS), "{held:?}");
    assert_eq!(
        raw.leases().await.unwrap().leases().len(),
        1,
        "old leases are revoked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_killed_and_restarted_on_the_same_data() {
    let (mut etcd, client, _regs) = setup().await;
    etcd.member().kill();
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 1)).await;
    etcd.restart_member(0).await;
    wait_healed(&etcd, &client, "restart", Instant::now()).await;
    assert_stays(&etcd).await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_restarted_on_a_wiped_data_dir() {
    let (mut etcd, client, _regs) = setup().await;
    let mut events = client.events();
    let old_lease = client.lease_id().unwrap();
    etcd.wipe_and_restart().await;
    let end = Instant::now();
    wait_healed(&etcd, &client, "wiped", end).await;
    assert_ne!(client.lease_id(), Some(old_lease));
    // The events tell the story: lost, then restored with both registrations.
    let mut saw_lost = false;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(3), events.next()).await {
        match event {
            Event::LeaseLost { lease_id, .. } => saw_lost |= lease_id == old_lease,
            Event::Restored { registrations, .. } => {
                assert!(saw_lost);
                assert_eq!(registrations, 2);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_lost, "no LeaseLost event");
    assert_stays(&etcd).await;
    client.close().await.unwrap();
}

/// After a wipe nothing is read: the lease is asked about first (when the
/// watch comes back, if keepalive has not found it gone already), and the
/// keys go back in one write under a new lease, none refused.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_wipe_the_keys_go_back_without_being_read() {
    let (mut etcd, client, _regs) = setup().await;
    let before = client.metrics();
    etcd.wipe_and_restart().await;
    wait_healed(&etcd, &client, "wiped, nothing read", Instant::now()).await;
    let after = client.metrics();
    let moved = |id: &str| after.get(id).unwrap_or(0.0) - before.get(id).unwrap_or(0.0);
    let requests = |kind: &str, outcome: &str| {
        moved(&format!(
            "libregistry_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"
        ))
    };
    let reads = requests("range", "ok") + requests("range", "error");
    assert_eq!(reads, 0.0, "keys read after the wipe");
    assert_eq!(requests("txn", "error"), 0.0, "a write refused");
    assert_eq!(moved("libregistry_keys_restored_total"), 2.0);
    assert_eq!(moved("libregistry_lease_grants_total"), 1.0);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_frozen_longer_than_the_ttl() {
    let (mut etcd, client, _regs) = setup().await;
    etcd.member().freeze();
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) * 2)).await;
    etcd.member().thaw();
    wait_healed(&etcd, &client, "frozen", Instant::now()).await;
    assert_stays(&etcd).await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_revoked_from_outside() {
    let (etcd, client, _regs) = setup().await;
    let mut raw = etcd.raw().await;
    raw.lease_revoke(client.lease_id().unwrap()).await.unwrap();
    wait_healed(&etcd, &client, "revoked", Instant::now()).await;
    assert_stays(&etcd).await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn key_deleted_from_outside_is_put_back() {
    let (etcd, client, _regs) = setup().await;
    let mut events = client.events();
    let lease = client.lease_id();
    let mut raw = etcd.raw().await;
    raw.delete(KEYS[0], None).await.unwrap();
    wait_healed(&etcd, &client, "deleted", Instant::now()).await;
    assert_eq!(client.lease_id(), lease, "the lease was never lost");
    let event = tokio::time::timeout(Duration::from_secs(2), events.next())
        .await
        .unwrap();
    assert_eq!(
        event,
        Some(Event::KeyRestored {
            key: KEYS[0].into()
        })
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn key_overwritten_under_another_lease_is_reported_and_left() {
    let (etcd, client, regs) = setup().await;
    let mut events = client.events();
    let mut raw = etcd.raw().await;
    let other = raw.lease_grant(30, None).await.unwrap().id();
    let opts = etcd_client::PutOptions::new().with_lease(other);
    raw.put(KEYS[0], "theirs", Some(opts)).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(3), events.next())
        .await
        .unwrap();
    assert_eq!(
        event,
        Some(Event::Conflict {
            key: KEYS[0].into(),
            other_lease: other
        })
    );
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 1)).await;
    let held = dump(&mut raw, "/").await;
    assert_eq!(
        held[KEYS[0]],
        ("theirs".to_string(), other),
        "not fought over"
    );
    assert_eq!(held[KEYS[1]].1, client.lease_id().unwrap());
    // Deregistering a conflicted registration leaves the other process's key alone.
    regs[0].deregister().await.unwrap();
    assert_eq!(dump(&mut raw, "/").await[KEYS[0]].0, "theirs");
    client.close().await.unwrap();
    assert_eq!(dump(&mut raw, "/").await.len(), 1);
}

/// A key another process wrote while this client was cut off (the client's
/// lease expired meanwhile, and compaction took the history its watch would
/// have replayed) is found by the read that follows the reconnection: it
/// must be reported and left to that process, not taken back. That read
/// must see the key's lease (etcd 3.7.3 leaves it out of keys-only reads).
#[tokio::test(flavor = "multi_thread")]
async fn key_taken_while_cut_off_is_reported_and_left() {
    let etcd = Etcd::start().await;
    let proxy = Proxy::start(etcd.members[0].client_addr());
    let client = Client::connect(
        Options::new()
            .endpoints([proxy.endpoint()])
            .ttl_secs(TTL)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let _reg = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let mut events = client.events();

    proxy.set(Mode::Blackhole);
    wait_until(
        Duration::from_secs(10),
        "the cut-off client's key expired",
        || async {
            !dump(&mut etcd.raw().await, "/micro/")
                .await
                .contains_key(KEYS[0])
        },
    )
    .await;
    let mut raw = etcd.raw().await;
    let theirs = raw.lease_grant(30, None).await.unwrap().id();
    let under_their_lease = etcd_client::PutOptions::new().with_lease(theirs);
    raw.put(KEYS[0], "theirs", Some(under_their_lease))
        .await
        .unwrap();
    etcd.compact_now().await;
    proxy.set(Mode::Pass);

    let conflict = Event::Conflict {
        key: KEYS[0].into(),
        other_lease: theirs,
    };
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&conflict) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(event)) => seen.push(event),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 1)).await;
    assert_eq!(
        dump(&mut raw, "/micro/").await[KEYS[0]],
        ("theirs".to_string(), theirs),
        "not fought over (events: {seen:?})"
    );
    assert!(seen.contains(&conflict), "reported: {seen:?}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keepalive_traffic_does_not_grow_with_registrations() {
    let etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()).ttl_secs(3))
        .await
        .unwrap();
    let services: Vec<Service> = (0..2000)
        .map(|i| Service::new(format!("svc{}", i % 100), format!("10.1.0.1:{}", 1000 + i)))
        .collect();
    client.register_many(&services).await.unwrap();
    let before = client.keepalives_sent();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sent = client.keepalives_sent() - before;
    println!("keepalive: {sent} requests in 6 s for 2000 registrations at TTL 3 s");
    // One request per TTL/3 = 1 s: about 6, whatever the number of registrations.
    assert!((4..=8).contains(&sent), "{sent} keepalives in 6 s");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn healing_progresses_under_a_steady_stream_of_commands() {
    let mut etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()).ttl_secs(TTL))
        .await
        .unwrap();
    let mut events = client.events();
    // Registers back to back, each preempting healing (the watch on our own
    // keys is still being opened), then the same names over and over.
    for i in 0..300 {
        let reg = client
            .register(&Service::new(
                "steady",
                format!("10.4.0.{}:{}", i % 250 + 1, 1000 + i),
            ))
            .await
            .unwrap();
        if i % 2 == 0 {
            reg.deregister().await.unwrap();
        }
    }
    // Healing finished meanwhile: a key deleted from outside comes back.
    let mut raw = etcd.raw().await;
    raw.delete("/steady/10.4.0.2:1001", None).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Event::KeyRestored { key })) => {
                assert_eq!(key, "/steady/10.4.0.2:1001");
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("no KeyRestored: {other:?}"),
        }
    }
    assert_eq!(dump(&mut raw, "/steady/").await.len(), 150);
    // One watch on the name, however often its keys came and went.
    let watchers = etcd
        .member()
        .metric("etcd_debugging_mvcc_watcher_total")
        .unwrap();
    assert!(watchers <= 2.0, "{watchers} watchers on etcd");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_healing_of_deleted_keys_off_a_deleted_key_stays_deleted() {
    let etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(TTL)
            .heal_deleted_keys(false),
    )
    .await
    .unwrap();
    let reg = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let mut raw = etcd.raw().await;
    // At once: the watch on own keys may still be opening, and its first
    // re-read must not put the key back either.
    raw.delete(reg.key(), None).await.unwrap();
    let marker = client
        .register(&Service::new("micro", "127.0.0.1:4001"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = dump(&mut raw, "/micro/").await;
    assert_eq!(held.keys().collect::<Vec<_>>(), [marker.key()]);
    assert!(matches!(
        reg.update([("weight", "1")]).await,
        Err(libregistry::Error::NotRegistered { .. })
    ));
    reg.deregister().await.unwrap();
    client.close().await.unwrap();
}

/// A write under our lease that we never saw land (a register whose caller
/// was told it failed, a healing write cut short), made while we did not
/// watch its name, is found by the ranged read that follows every opened
/// watch and removed: the lease would otherwise keep it as long as the
/// client lives.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_under_our_lease_that_we_do_not_hold_is_removed() {
    let etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()).ttl_secs(TTL))
        .await
        .unwrap();
    // A first registration gives the client its lease.
    let _first = client
        .register(&Service::new("first", "10.0.0.2:2"))
        .await
        .unwrap();
    let lease = client
        .lease_id()
        .expect("a lease with the first registration");
    let mut raw = etcd.raw().await;
    let under_our_lease = etcd_client::PutOptions::new().with_lease(lease);
    raw.put("/late/10.0.0.9:9", "{}", Some(under_our_lease))
        .await
        .unwrap();
    // Another process's key of the same name is not ours to touch.
    let theirs = raw.lease_grant(30, None).await.unwrap().id();
    let under_their_lease = etcd_client::PutOptions::new().with_lease(theirs);
    raw.put("/late/10.0.0.8:8", "{}", Some(under_their_lease))
        .await
        .unwrap();

    let _reg = client
        .register(&Service::new("late", "10.0.0.1:1"))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the stray key removed", || async {
        !dump(&mut etcd.raw().await, "/late/")
            .await
            .contains_key("/late/10.0.0.9:9")
    })
    .await;
    let held = dump(&mut raw, "/late/").await;
    let leases: Vec<(&str, i64)> = held.iter().map(|(k, (_, l))| (k.as_str(), *l)).collect();
    assert_eq!(
        leases,
        [("/late/10.0.0.1:1", lease), ("/late/10.0.0.8:8", theirs)]
    );
    assert_eq!(client.lease_id(), Some(lease), "the lease was never lost");
    client.close().await.unwrap();
}

/// After a lost lease, a client re-reads its keys with one ranged read per
/// service name, not one read per key.
#[tokio::test(flavor = "multi_thread")]
async fn healing_reads_each_service_name_once_not_each_key() {
    const RANGE_REQUESTS: &str = "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}";
    let mut etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()).ttl_secs(TTL))
        .await
        .unwrap();
    let services: Vec<Service> = (0..1000)
        .map(|i| Service::new("many", format!("10.5.{}.{}:80", i / 250, i % 250 + 1)))
        .collect();
    let _regs = client.register_many(&services).await.unwrap();
    let first = client.lease_id().unwrap();
    // Let the first healing step (the watch on the new name) finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = etcd.member().metric(RANGE_REQUESTS).unwrap();

    let mut events = client.events();
    let mut raw = etcd.raw().await;
    raw.lease_revoke(first).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(Event::Restored { registrations, .. })) => {
                assert_eq!(registrations, 1000);
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("not restored: {other:?}"),
        }
    }
    let reads = etcd.member().metric(RANGE_REQUESTS).unwrap() - before;
    let lease = client.lease_id().unwrap();
    let held = dump(&mut raw, "/many/").await;
    assert_eq!(held.len(), 1000);
    assert!(
        held.values().all(|(_, l)| *l == lease),
        "all under {lease:x}"
    );
    println!("healing[ranged reads]: {reads} read requests to heal 1,000 keys");
    assert!(reads <= 10.0, "{reads} reads to heal 1,000 keys");
    client.close().await.unwrap();
}

/// A register that timed out without knowing whether its write landed
/// leaves nothing, even when its write (or any write under our lease)
/// lands after the client cleaned up: the client watches that name from then on.
#[tokio::test(flavor = "multi_thread")]
async fn a_register_unsure_of_its_write_leaves_nothing_however_late_it_lands() {
    let mut etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(10)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let _first = client
        .register(&Service::new("first", "10.0.0.2:2"))
        .await
        .unwrap();
    let lease = client.lease_id().unwrap();
    etcd.member().freeze();
    let failed = client
        .register(&Service::new("unsure", "10.0.0.1:1"))
        .await
        .map(|_| ());
    etcd.member().thaw();
    assert!(
        failed.as_ref().is_err_and(|e| e.is_transient()),
        "{failed:?}"
    );
    let nothing_left = || async { dump(&mut etcd.raw().await, "/unsure/").await.is_empty() };
    wait_until(Duration::from_secs(5), "nothing left", nothing_left).await;

    // As if the write landed only now (a new leader committing it, say).
    let mut raw = etcd.raw().await;
    let under_our_lease = etcd_client::PutOptions::new().with_lease(lease);
    raw.put("/unsure/10.0.0.1:1", "{}", Some(under_our_lease))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "the late write removed",
        nothing_left,
    )
    .await;
    assert_eq!(client.lease_id(), Some(lease), "the lease was never lost");
    client.close().await.unwrap();
}
