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
