//! Withdraw and restore, and health-gated registration: a service with a
//! check is registered once its probe passes, withdrawn while it fails,
//! and written back when it passes again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{dump, wait_until, Etcd};
use libregistry::health::Check;
use libregistry::{Client, Event, Options, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts(etcd: &Etcd) -> Options {
    Options::new().endpoints(etcd.endpoints()).ttl_secs(2)
}

/// A tiny HTTP server whose `/healthz` answers 200 while `healthy`, else 503.
async fn health_server(healthy: Arc<AtomicBool>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let healthy = healthy.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let status = if healthy.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

async fn held(etcd: &Etcd, key: &str) -> bool {
    let mut raw = etcd.raw().await;
    dump(&mut raw, key).await.contains_key(key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_registration_stays_out_until_restored() {
    let etcd = Etcd::start().await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let mut events = client.events();
    let reg = client
        .register(&Service::new("drain", "127.0.0.1:4000"))
        .await
        .unwrap();
    let key = reg.key().to_string();
    reg.withdraw().await.unwrap();
    assert!(reg.is_withdrawn() && !held(&etcd, &key).await);
    // Healing leaves it out, even after a lost lease.
    let mut raw = etcd.raw().await;
    raw.lease_revoke(client.lease_id().unwrap()).await.unwrap();
    client
        .register(&Service::new("drain", "127.0.0.1:4001"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !held(&etcd, &key).await,
        "a withdrawn key is not healed back"
    );
    // An update while withdrawn is kept for the restore.
    reg.update([("weight", "7")]).await.unwrap();
    reg.restore().await.unwrap();
    assert!(!reg.is_withdrawn());
    let got = dump(&mut raw, &key).await;
    assert!(got[&key].0.contains("\"weight\":7"), "{got:?}");
    let mut seen = Vec::new();
    while let Some(event) = events.try_next() {
        seen.push(event);
    }
    assert!(seen.contains(&Event::Withdrawn {
        key: key.clone(),
        reason: "withdrawn by the application".into()
    }));
    assert!(seen.contains(&Event::Reinstated {
        key: key.clone(),
        reason: "restored by the application".into()
    }));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checked_service_is_registered_when_ready_withdrawn_while_failing() {
    let etcd = Etcd::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let server = health_server(healthy.clone()).await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let mut check = Check::parse(&format!("http://{server}/healthz")).unwrap();
    check.interval = Duration::from_millis(100);
    check.timeout = Duration::from_millis(100);
    let service = Service::new("checked", "127.0.0.1:4100").check(check);
    let key = client.key_of(&service);
    let mut events = client.events();

    // Register only when ready: the call waits for the first passing probe.
    let became_healthy = {
        let healthy = healthy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            healthy.store(true, Ordering::SeqCst);
            Instant::now()
        })
    };
    let started = Instant::now();
    let reg = client.register(&service).await.unwrap();
    let ready_at = became_healthy.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before ready"
    );
    println!(
        "health: registered {} ms after the probe first passed",
        ready_at.elapsed().as_millis()
    );
    assert!(held(&etcd, &key).await);

    // Failing: withdrawn within interval x fails + 1 s; back within an interval or so.
    healthy.store(false, Ordering::SeqCst);
    let gone = wait_until(Duration::from_millis(300 + 1000), "withdrawn", || async {
        !held(&etcd, &key).await
    })
    .await;
    assert!(reg.is_withdrawn());
    healthy.store(true, Ordering::SeqCst);
    let passing = Instant::now();
    wait_until(Duration::from_secs(2), "back", || async {
        held(&etcd, &key).await
    })
    .await;
    println!(
        "health: withdrawn {} ms after the check began failing (3 x 100 ms), back {} ms after it passed again",
        gone.as_millis(),
        passing.elapsed().as_millis()
    );
    assert!(!reg.is_withdrawn());
    let mut reasons = Vec::new();
    while let Some(event) = events.try_next() {
        match event {
            Event::Withdrawn { reason, .. } => reasons.push(format!("withdrawn: {reason}")),
            Event::Reinstated { reason, .. } => reasons.push(format!("reinstated: {reason}")),
            _ => {}
        }
    }
    let url = format!("http://{server}/healthz");
    assert_eq!(
        reasons,
        [
            format!("withdrawn: health check {url} failed 3 times in a row: HTTP status 503"),
            format!("reinstated: health check {url} passes again"),
        ]
    );
    reg.deregister().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_is_not_undone_by_a_passing_check() {
    let etcd = Etcd::start().await;
    let server = health_server(Arc::new(AtomicBool::new(true))).await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let mut check = Check::parse(&format!("tcp://{server}")).unwrap();
    check.interval = Duration::from_millis(20);
    let reg = client
        .register(&Service::new("drained", "127.0.0.1:4300").check(check))
        .await
        .unwrap();
    reg.withdraw().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // 15 passing probes
    assert!(reg.is_withdrawn());
    assert!(
        !held(&etcd, reg.key()).await,
        "the check wrote a drained key back"
    );
    reg.restore().await.unwrap();
    assert!(held(&etcd, reg.key()).await);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_never_ready_is_not_registered() {
    let etcd = Etcd::start().await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut check = Check::parse(&format!("tcp://{closed}")).unwrap();
    check.interval = Duration::from_millis(50);
    check.ready_timeout = Duration::from_millis(300);
    let err = client
        .register(&Service::new("never", "127.0.0.1:4200").check(check))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("first passing health check"),
        "{err}"
    );
    assert!(!held(&etcd, "/never/127.0.0.1:4200").await);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_probes_speak_the_standard_health_service() {
    // etcd serves grpc.health.v1.Health itself: a real server to probe.
    let etcd = Etcd::start().await;
    let at = etcd.endpoints()[0]
        .trim_start_matches("http://")
        .to_string();
    let serving = Check::parse(&format!("grpc://{at}")).unwrap();
    assert_eq!(serving.probe().await, Ok(()));
    let unknown = Check::parse(&format!("grpc://{at}/no.such.Service")).unwrap();
    let why = unknown.probe().await.unwrap_err();
    assert!(why.starts_with("health check refused"), "{why}");
    drop(etcd);
    let why = serving.probe().await.unwrap_err();
    assert!(
        why.contains("connect") || why.contains("no answer"),
        "{why}"
    );
}
