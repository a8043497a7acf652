//! A 3-node etcd cluster on loopback: registrations survive losing the member
//! the client talks to and losing the leader.

use std::time::{Duration, Instant};

use harness::{dump, wait_until, Etcd};
use libregistry::{Client, Options, Service};

const TTL: u32 = 2;

/// A client of every member, TTL 2 s, requests with a 1 s deadline.
async fn connect(etcd: &Etcd) -> Client {
    Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(TTL)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn survives_losing_its_member_and_the_leader() {
    let mut etcd = Etcd::cluster(3).await;
    let client = connect(&etcd).await;
    let keys = ["/micro/127.0.0.1:4000", "/micro/127.0.0.1:4001"];
    client
        .register_many(&[
            Service::new("micro", keys[0][7..].to_string()),
            Service::new("micro", keys[1][7..].to_string()),
        ])
        .await
        .unwrap();
    assert!(etcd.holds_exactly(&keys, client.lease_id()).await);

    // 1. The first endpoint's member dies: the client fails over to the others.
    etcd.members[0].kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) * 2)).await;
    wait_until(
        Duration::from_secs(15),
        "registrations with member 0 down",
        || etcd.holds_exactly(&keys, client.lease_id()),
    )
    .await;
    println!(
        "cluster[member down]: all registrations held {:?} after member 0 was killed",
        killed.elapsed()
    );
    etcd.members[0].start_again();
    etcd.wait_member_ready(0).await;

    // 2. The leader dies and comes back.
    let leader = etcd.leader().await;
    etcd.members[leader].kill();
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 1)).await;
    etcd.members[leader].start_again();
    etcd.wait_member_ready(leader).await;
    let took = wait_until(
        Duration::from_secs(15),
        "registrations after leader restart",
        || etcd.holds_exactly(&keys, client.lease_id()),
    )
    .await;
    println!("cluster[leader killed]: keys back {took:?} after the leader restarted");

    client.close().await.unwrap();
    let mut raw = etcd.raw().await;
    assert!(dump(&mut raw, "/").await.is_empty());
}

/// The member the client talks to is SIGKILLed while deregisters, reads
/// and keepalives are in flight on it: every call is answered by another
/// member well within its deadline, and the lease is never lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_killed_under_requests_costs_no_call_its_deadline() {
    const N: usize = 300;
    const DEADLINE: Duration = Duration::from_secs(5);
    let mut etcd = Etcd::cluster(3).await;
    // Through a proxy per member, to see which member the client talks to.
    let proxies = etcd.proxies();
    let client = Client::connect(
        Options::new()
            .endpoints(proxies.iter().map(|p| p.endpoint()))
            .ttl_secs(TTL)
            .request_timeout(DEADLINE),
    )
    .await
    .unwrap();
    let services: Vec<Service> = (0..N)
        .map(|i| Service::new("killed", format!("10.0.{}.{}:80", i / 250, i % 250)))
        .collect();
    let regs = client.register_many(&services).await.unwrap();
    let lease = client.lease_id();
    let mut events = client.events();
    // The member carrying the client's keepalives (one every TTL/3), made a
    // follower: this is about failing over, not about an election.
    let before: Vec<u64> = proxies.iter().map(|p| p.bytes()).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let member = (0..proxies.len())
        .max_by_key(|&i| proxies[i].bytes() - before[i])
        .unwrap();
    let leader = etcd.move_leader_off(member).await;
    assert!(leader.is_some_and(|l| l != member), "leadership not moved");

    // Deregisters one after another, and reads in parallel, while that member dies.
    let deregisters = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        for reg in &regs {
            let started = Instant::now();
            reg.deregister().await.expect("deregister");
            slowest = slowest.max(started.elapsed());
        }
        slowest
    });
    let reader = client.clone();
    let reads = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        for _ in 0..N {
            let started = Instant::now();
            reader.discover("killed").await.expect("discover");
            slowest = slowest.max(started.elapsed());
        }
        slowest
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    etcd.members[member].kill();
    let killed = Instant::now();
    let slowest_deregister = deregisters.await.unwrap();
    let slowest_read = reads.await.unwrap();
    let after_kill = killed.elapsed();
    // A keepalive or two more on the other members.
    tokio::time::sleep(Duration::from_secs(u64::from(TTL))).await;
    println!(
        "cluster[member killed under requests]: slowest deregister {} ms, slowest discover {} ms (deadline {} s); calls went on {} ms after the kill",
        slowest_deregister.as_millis(),
        slowest_read.as_millis(),
        DEADLINE.as_secs(),
        after_kill.as_millis()
    );
    assert!(slowest_deregister < DEADLINE / 2);
    assert!(slowest_read < DEADLINE / 2);
    assert_eq!(
        client.lease_id(),
        lease,
        "the lease was kept alive throughout"
    );
    while let Some(event) = events.try_next() {
        assert!(
            !matches!(event, libregistry::Event::LeaseLost { .. }),
            "{event:?}"
        );
    }
    // Read from a member that lives (the harness's client balances over all).
    let live = etcd.members[(member + 1) % 3].endpoint();
    let mut raw = etcd_client::Client::connect([live], None).await.unwrap();
    assert!(
        dump(&mut raw, "/killed/").await.is_empty(),
        "every key deregistered"
    );
    client.close().await.unwrap();
}

/// Keys deregistered while quorum was lost (and with it the client's
/// lease) are deleted as soon as etcd serves again, before the client
/// rewrites its live keys under a new lease: a consumer never watches the
/// dead stay listed through the rewrite.
#[tokio::test(flavor = "multi_thread")]
async fn keys_deregistered_during_quorum_loss_go_before_the_live_are_rewritten() {
    const LIVE: usize = 600;
    const GONE: usize = 5;
    let mut etcd = Etcd::cluster(3).await;
    let client = connect(&etcd).await;
    let live: Vec<Service> = (0..LIVE)
        .map(|i| Service::new("quorum", format!("10.1.{}.{}:80", i / 250, i % 250)))
        .collect();
    let gone: Vec<Service> = (0..GONE)
        .map(|i| Service::new("quorum", format!("10.9.0.{i}:80")))
        .collect();
    let _live_regs = client.register_many(&live).await.unwrap();
    let gone_regs = client.register_many(&gone).await.unwrap();
    let old_lease = client.lease_id().unwrap();
    let mut events = client.events();
    let mut raw = etcd.raw().await;
    let before = raw
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();

    // Quorum lost for longer than the TTL: the client gives its lease up.
    etcd.members[1].kill();
    etcd.members[2].kill();
    let lost = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if matches!(event, libregistry::Event::LeaseLost { lease_id, .. } if lease_id == old_lease) {
                return;
            }
        }
    })
    .await;
    assert!(lost.is_ok(), "the client did not give its lease up");
    for reg in &gone_regs {
        assert!(reg.deregister().await.is_err(), "etcd had no quorum");
    }
    etcd.members[1].start_again();
    etcd.members[2].start_again();
    etcd.wait_member_ready(1).await;
    etcd.wait_member_ready(2).await;
    let mut live_keys: Vec<String> = live.iter().map(|s| client.key_of(s)).collect();
    live_keys.sort(); // as etcd lists them
    let live_keys: Vec<&str> = live_keys.iter().map(String::as_str).collect();
    wait_until(Duration::from_secs(15), "live keys rewritten", || {
        etcd.holds_exactly(&live_keys, client.lease_id())
    })
    .await;

    // etcd's history since: when the dead went, when the rewrite began.
    let new_lease = client.lease_id().unwrap();
    // A client made now: the first one's connection may be to a member killed since.
    let mut raw = etcd.raw().await;
    let mut history = raw
        .watch(
            "/quorum/",
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(before + 1),
            ),
        )
        .await
        .unwrap();
    let gone_keys: Vec<String> = gone.iter().map(|s| client.key_of(s)).collect();
    let (mut deleted_at, mut first_rewrite) = (Vec::new(), None::<i64>);
    while deleted_at.len() < GONE || first_rewrite.is_none() {
        let resp = tokio::time::timeout(Duration::from_secs(5), history.message())
            .await
            .expect("etcd's history")
            .unwrap()
            .unwrap();
        for event in resp.events() {
            let kv = event.kv().unwrap();
            let key = kv.key_str().unwrap();
            match event.event_type() {
                etcd_client::EventType::Delete if gone_keys.iter().any(|k| k == key) => {
                    deleted_at.push(kv.mod_revision())
                }
                etcd_client::EventType::Put if kv.lease() == new_lease => {
                    first_rewrite.get_or_insert(kv.mod_revision());
                }
                _ => {}
            }
        }
    }
    let last_delete = *deleted_at.iter().max().unwrap();
    let first_rewrite = first_rewrite.unwrap();
    println!(
        "cluster[quorum lost]: {GONE} keys deregistered meanwhile deleted by revision {last_delete}, the {LIVE} live ones rewritten from revision {first_rewrite}"
    );
    assert!(
        last_delete < first_rewrite,
        "the dead were deleted at {deleted_at:?}, after the rewrite began at {first_rewrite}"
    );
    let removed = client
        .metrics()
        .get("libregistry_orphan_keys_removed_total");
    assert_eq!(removed, Some(GONE as f64), "counted in the metrics");
    client.close().await.unwrap();
}
