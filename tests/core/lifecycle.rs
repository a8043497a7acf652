//! Register, update, deregister and close, checked through etcd itself.

use std::time::{Duration, Instant};

use harness::{dump, wait_until, Etcd};
use libregistry::{blocking, Client, Error, Event, Options, Service};

fn opts(etcd: &Etcd) -> Options {
    Options::new().endpoints(etcd.endpoints()).ttl_secs(5)
}

#[tokio::test(flavor = "multi_thread")]
async fn register_update_deregister_close_are_visible_in_etcd() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let mut events = client.events();

    let a = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    assert_eq!(client.granted_ttl_secs(), 5);
    let b = client
        .register(&Service::new("micro", "127.0.0.1:4001"))
        .await
        .unwrap();
    let held = dump(&mut raw, "/micro/").await;
    assert_eq!(
        held.keys().collect::<Vec<_>>(),
        ["/micro/127.0.0.1:4000", "/micro/127.0.0.1:4001"]
    );
    // One lease for the whole client.
    let lease = client.lease_id().unwrap();
    assert!(held.values().all(|(_, l)| *l == lease));
    assert_eq!(
        events.next().await,
        Some(Event::Registered {
            key: a.key().into()
        })
    );

    // Update rewrites in place: same key, same lease, new weight.
    a.update([("weight", "0"), ("appVersion", "v2")])
        .await
        .unwrap();
    let held = dump(&mut raw, "/micro/").await;
    let (value, l) = &held["/micro/127.0.0.1:4000"];
    assert!(
        value.contains(r#""weight":0"#) && value.contains(r#""appVersion":"v2""#),
        "{value}"
    );
    assert_eq!(*l, lease);

    a.deregister().await.unwrap();
    a.deregister().await.unwrap(); // twice is harmless
    assert!(matches!(
        a.update([("weight", "1")]).await,
        Err(Error::NotRegistered { .. })
    ));
    let held = dump(&mut raw, "/micro/").await;
    assert_eq!(held.keys().collect::<Vec<_>>(), ["/micro/127.0.0.1:4001"]);

    client.close().await.unwrap();
    assert!(
        dump(&mut raw, "/").await.is_empty(),
        "close revokes the lease"
    );
    assert!(matches!(
        client.register(&Service::new("x", "h:1")).await,
        Err(Error::Closed)
    ));
    drop(b);
}

/// A consumer-only client (discover and watch, no register) holds no lease:
/// etcd lists none, and no keepalive is sent. The first registration grants
/// one; closing revokes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_only_discovers_and_watches_holds_no_lease() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    let provider = Client::connect(opts(&etcd)).await.unwrap();
    let _reg = provider
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let leases = |raw: &mut etcd_client::Client| {
        let mut raw = raw.clone();
        async move {
            let listed = raw.leases().await.unwrap();
            listed.leases().iter().map(|l| l.id()).collect::<Vec<_>>()
        }
    };
    let provider_lease = provider.lease_id().unwrap();

    let consumer = Client::connect(opts(&etcd)).await.unwrap();
    assert_eq!(consumer.discover("micro").await.unwrap().len(), 1);
    let watcher = consumer.watch("micro").await.unwrap();
    assert_eq!(watcher.instances().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await; // more than TTL/3
    assert_eq!(
        leases(&mut raw).await,
        [provider_lease],
        "only the provider's lease"
    );
    assert_eq!(consumer.lease_id(), None);
    assert_eq!(consumer.keepalives_sent(), 0);

    let reg = consumer
        .register(&Service::new("micro", "127.0.0.1:4001"))
        .await
        .unwrap();
    let consumer_lease = consumer
        .lease_id()
        .expect("granted with the first registration");
    let mut listed = leases(&mut raw).await;
    listed.sort();
    let mut expected = vec![provider_lease, consumer_lease];
    expected.sort();
    assert_eq!(listed, expected);
    reg.deregister().await.unwrap();
    consumer.close().await.unwrap();
    assert_eq!(leases(&mut raw).await, [provider_lease]);
    provider.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_each_hold_their_own_lease() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    let one = Client::connect(opts(&etcd)).await.unwrap();
    let two = Client::connect(opts(&etcd)).await.unwrap();
    one.register(&Service::new("a", "h:1")).await.unwrap();
    two.register(&Service::new("a", "h:2")).await.unwrap();
    assert_ne!(one.lease_id(), two.lease_id());
    one.close().await.unwrap();
    let held = dump(&mut raw, "/").await;
    assert_eq!(held.keys().collect::<Vec<_>>(), ["/a/h:2"]);
    two.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_refused_and_leftovers_taken_over() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    // A crashed predecessor left its key behind (no lease at all here).
    raw.put("/micro/127.0.0.1:4000", "stale", None)
        .await
        .unwrap();
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let svc = Service::new("micro", "127.0.0.1:4000");
    client.register(&svc).await.unwrap();
    let held = dump(&mut raw, "/").await;
    assert_eq!(held["/micro/127.0.0.1:4000"].1, client.lease_id().unwrap());
    match client.register(&svc).await {
        Err(Error::AlreadyRegistered { key }) => assert_eq!(key, "/micro/127.0.0.1:4000"),
        other => panic!("expected AlreadyRegistered, got {other:?}"),
    }
    let twice = [Service::new("b", "h:1"), Service::new("b", "h:1")];
    assert!(matches!(
        client.register_many(&twice).await,
        Err(Error::AlreadyRegistered { .. })
    ));
    assert_eq!(
        dump(&mut raw, "/b/").await.len(),
        0,
        "a refused batch writes nothing"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_anything_is_sent() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let cases: Vec<(Service, &str)> = vec![
        (Service::new("../etc", "h:1"), "name"),
        (Service::new("a b", "h:1"), "name"),
        (Service::new("ok", "h"), "addr"),
        (Service::new("ok", "h:0"), "addr"),
        (Service::new("ok", "h:1").weight(10_001), "weight"),
        (
            Service::new("ok", "h:1")
                .with("note", "x".repeat(70_000))
                .unwrap(),
            "metadata",
        ),
    ];
    for (svc, field) in cases {
        match client.register(&svc).await {
            Err(Error::InvalidArgument { field: f, reason }) => {
                assert_eq!(f, field, "{reason}");
            }
            other => panic!("{svc:?}: expected invalid {field}, got {other:?}"),
        }
    }
    assert!(dump(&mut raw, "/").await.is_empty());
    for (options, field) in [
        (opts(&etcd).ttl_secs(1), "ttl"),
        (opts(&etcd).prefix("nope"), "prefix"),
        (Options::new().endpoints(["127.0.0.1:2379"]), "endpoints"),
    ] {
        match Client::connect(options).await {
            Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_register_shares_one_lease() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    let client = Client::connect(opts(&etcd)).await.unwrap();
    let services: Vec<Service> = (0..1000)
        .map(|i| Service::new("bulk", format!("10.0.0.1:{}", 1000 + i)))
        .collect();
    let regs = client.register_many(&services).await.unwrap();
    assert_eq!(regs.len(), 1000);
    let held = dump(&mut raw, "/bulk/").await;
    assert_eq!(held.len(), 1000);
    let lease = client.lease_id().unwrap();
    assert!(held.values().all(|(_, l)| *l == lease));
    let leases = raw.leases().await.unwrap();
    assert_eq!(leases.leases().len(), 1, "one lease for 1000 registrations");
    client.close().await.unwrap();
    assert!(dump(&mut raw, "/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_etcd_fails_within_the_timeout_and_close_is_bounded() {
    let mut etcd = Etcd::start().await;
    let timeout = Duration::from_millis(800);
    let client = Client::connect(opts(&etcd).request_timeout(timeout))
        .await
        .unwrap();
    etcd.member().kill();

    let start = Instant::now();
    let err = client
        .register(&Service::new("micro", "h:1"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        start.elapsed() < timeout + Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let _ = client.close().await;
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "close took {:?}",
        start.elapsed()
    );

    // A client cannot even be created against a dead etcd, and says why.
    let start = Instant::now();
    let err = Client::connect(opts(&etcd).request_timeout(timeout))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));

    // The failed register left nothing behind.
    etcd.member().start_again();
    etcd.wait_member_ready(0).await;
    let mut raw = etcd.raw().await;
    assert!(dump(&mut raw, "/").await.is_empty());
}

#[test]
fn blocking_api_refuses_to_run_inside_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async { blocking::Client::connect(Options::new()).unwrap_err() });
    assert!(matches!(err, Error::InsideRuntime), "{err}");
}

#[test]
fn blocking_api_round_trip() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = rt.block_on(Etcd::start());
    let client = blocking::Client::connect(opts(&etcd)).unwrap();
    let reg = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .unwrap();
    let mut raw = rt.block_on(etcd.raw());
    assert_eq!(rt.block_on(dump(&mut raw, "/")).len(), 1);
    reg.deregister().unwrap();
    assert_eq!(rt.block_on(dump(&mut raw, "/")).len(), 0);
    let _again = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .unwrap();
    drop(client); // dropping closes: the lease goes, and the key with it
    rt.block_on(wait_until(
        Duration::from_secs(3),
        "key gone after drop",
        || {
            let mut raw = raw.clone();
            async move { dump(&mut raw, "/").await.is_empty() }
        },
    ));
}

/// Whether `wanted` comes within 5 s.
async fn next_event(events: &mut libregistry::EventStream, wanted: &Event) -> bool {
    let found = async {
        while let Some(event) = events.next().await {
            if &event == wanted {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(5), found)
        .await
        .unwrap_or(false)
}

/// A second process registering a key a live process holds takes it over
/// (the newest registration wins) and hears of it; the first hears of the
/// conflict and leaves the key alone.
#[tokio::test(flavor = "multi_thread")]
async fn the_second_registrant_of_a_key_hears_that_it_took_it_over() {
    let etcd = Etcd::start().await;
    let first = Client::connect(opts(&etcd)).await.unwrap();
    let second = Client::connect(opts(&etcd)).await.unwrap();
    let (mut first_events, mut second_events) = (first.events(), second.events());
    let service = Service::new("micro", "127.0.0.1:4000");
    first.register(&service).await.unwrap();
    let first_lease = first.lease_id().unwrap();
    let reg = second.register(&service).await.unwrap();
    let second_lease = second.lease_id().unwrap();

    let took_over = Event::TookOver {
        key: reg.key().to_string(),
        from_lease: first_lease,
    };
    let conflict = Event::Conflict {
        key: reg.key().to_string(),
        other_lease: second_lease,
    };
    assert!(
        next_event(&mut second_events, &took_over).await,
        "the newcomer hears it took the key over"
    );
    assert!(
        next_event(&mut first_events, &conflict).await,
        "the first holder hears of the conflict"
    );
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/micro/").await;
    assert_eq!(
        held["/micro/127.0.0.1:4000"].1, second_lease,
        "the newest registration wins"
    );
    // A key rewritten under our own lease (a re-registration) is no takeover.
    reg.deregister().await.unwrap();
    second.register(&service).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Some(event) = second_events.try_next() {
        assert!(!matches!(event, Event::TookOver { .. }), "{event:?}");
    }
    first.close().await.unwrap();
    second.close().await.unwrap();
}
