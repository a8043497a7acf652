//! Healing: whatever etcd goes through, a living client's registrations come
//! back, and etcd ends up holding exactly the expected keys. Each case prints
//! the time from the fault's end to the key being back.

use std::time::{Duration, Instant};

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
