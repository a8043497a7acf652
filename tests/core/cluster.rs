//! A 3-node etcd cluster on loopback: registrations survive losing the member
//! the client talks to and losing the leader.

use std::time::{Duration, Instant};

use harness::{dump, wait_until, Etcd};
use libregistry::{Client, Options, Service};

const TTL: u32 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn survives_losing_its_member_and_the_leader() {
    let mut etcd = Etcd::cluster(3).await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(TTL)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
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
