//! The go-zero and kratos layouts against a real etcd: the bytes each
//! writes, what each refuses, discovery of what the frameworks themselves
//! write, other layouts' values under the same range skipped, healing and
//! watching in every layout. (The seed layout's bytes: wire_format.rs; the
//! frameworks' own clients reading ours: tests/interop/frameworks.)

use std::time::Duration;

use harness::{dump, spawn_provider, wait_until, Etcd};
use libregistry::{Change, Client, Layout, Options, Service, Watcher};

const TTL: u32 = 2;

fn options(etcd: &Etcd, layout: Layout) -> Options {
    Options::new()
        .endpoints(etcd.endpoints())
        .ttl_secs(TTL)
        .request_timeout(Duration::from_secs(1))
        .layout(layout)
}

async fn connect(etcd: &Etcd, layout: Layout) -> Client {
    Client::connect(options(etcd, layout))
        .await
        .expect("connect")
}

async fn next(watcher: &Watcher) -> Change {
    tokio::time::timeout(Duration::from_secs(10), watcher.next_change())
        .await
        .expect("a change within 10 s")
        .expect("watcher running")
}

#[tokio::test(flavor = "multi_thread")]
async fn go_zero_writes_the_address_alone_under_name_slash_id() {
    let etcd = Etcd::start().await;
    let client = connect(&etcd, Layout::GoZero).await;
    let plain = client
        .register(&Service::new("greeter.rpc", "127.0.0.1:4000"))
        .await
        .unwrap();
    let with_id = client
        .register(
            &Service::new("greeter.rpc", "127.0.0.1:4001")
                .with("id", "42")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(plain.key(), "greeter.rpc/127.0.0.1:4000");
    assert_eq!(with_id.key(), "greeter.rpc/42");
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "greeter.rpc/").await;
    let lease = client.lease_id().unwrap();
    assert_eq!(
        held["greeter.rpc/127.0.0.1:4000"],
        ("127.0.0.1:4000".into(), lease)
    );
    assert_eq!(held["greeter.rpc/42"], ("127.0.0.1:4001".into(), lease));
    assert_eq!(held.len(), 2);

    // Metadata has no room here: refused, naming the layout, nothing written.
    let err = client
        .register(&Service::new("greeter.rpc", "127.0.0.1:4002").zone("z1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("go-zero layout") && err.to_string().contains("zone"),
        "{err}"
    );
    let err = plain.update([("weight", "0")]).await.unwrap_err();
    assert!(err.to_string().contains("go-zero layout"), "{err}");
    assert_eq!(dump(&mut raw, "greeter.rpc/").await.len(), 2);
    // The id is part of the key: changing it is refused, not half-done.
    let err = with_id.update([("id", "43")]).await.unwrap_err();
    assert!(err.to_string().contains("invalid id"), "{err}");

    // With a prefix: go-zero's EtcdConf.Key is then `{prefix}/{name}`.
    let prefixed = Client::connect(options(&etcd, Layout::GoZero).prefix("/prod"))
        .await
        .unwrap();
    let reg = prefixed
        .register(&Service::new("greeter.rpc", "127.0.0.1:4003"))
        .await
        .unwrap();
    assert_eq!(reg.key(), "/prod/greeter.rpc/127.0.0.1:4003");
    prefixed.close().await.unwrap();
    client.close().await.unwrap();
    assert!(dump(&mut raw, "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn kratos_writes_a_service_instance_with_string_metadata() {
    let etcd = Etcd::start().await;
    let client = connect(&etcd, Layout::Kratos).await;
    let service = Service::new("greeter", "127.0.0.1:9000")
        .zone("zone1")
        .weight(300)
        .app_version("v1.2.0")
        .with("id", "greeter-1")
        .unwrap();
    let reg = client.register(&service).await.unwrap();
    assert_eq!(reg.key(), "/microservices/greeter/greeter-1");
    let expected = format!(
        concat!(
            r#"{{"id":"greeter-1","name":"greeter","version":"v1.2.0","metadata":{{"#,
            r#""appVersion":"v1.2.0","frameVersion":"{version}","ip":"127.0.0.1","port":"9000","#,
            r#""scheme":"grpc","startTime":"{start}","weight":"300","zone":"zone1"}},"#,
            r#""endpoints":["grpc://127.0.0.1:9000"]}}"#
        ),
        version = libregistry::VERSION,
        start = libregistry::timefmt::process_start_time(),
    );
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/microservices/").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[reg.key()], (expected, client.lease_id().unwrap()));

    // An update rewrites the value in place, the weight still a string.
    reg.update([("weight", "0")]).await.unwrap();
    let held = dump(&mut raw, "/microservices/").await;
    assert!(held[reg.key()].0.contains(r#""weight":"0""#), "{held:?}");

    // What kratos cannot carry is refused before anything is written.
    let err = client
        .register(&Service::new("greeter", "127.0.0.1:9001").scheme("thrift"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kratos layout"), "{err}");
    let err = client
        .register(
            &Service::new("greeter", "127.0.0.1:9001")
                .with("id", "a/b")
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid id"), "{err}");
    assert_eq!(dump(&mut raw, "/microservices/").await.len(), 1);

    // Without an id: the address. Another namespace: the prefix.
    let other = Client::connect(options(&etcd, Layout::Kratos).prefix("/kratos-prod"))
        .await
        .unwrap();
    let reg = other
        .register(&Service::new("greeter", "127.0.0.1:9002"))
        .await
        .unwrap();
    assert_eq!(reg.key(), "/kratos-prod/greeter/127.0.0.1:9002");
    other.close().await.unwrap();
    client.close().await.unwrap();
}

/// A value as a framework's own code writes it, under its own lease.
async fn put_foreign(raw: &mut etcd_client::Client, key: &str, value: &str) -> i64 {
    let lease = raw.lease_grant(30, None).await.unwrap().id();
    let options = etcd_client::PutOptions::new().with_lease(lease);
    raw.put(key, value, Some(options)).await.unwrap();
    lease
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_reads_what_the_frameworks_write_and_skips_the_rest() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    // go-zero's publisher: its lease ID in decimal; foreign and unreadable values beside it.
    put_foreign(&mut raw, "greeter.rpc/7587890385633127685", "10.0.0.1:8080").await;
    put_foreign(
        &mut raw,
        "greeter.rpc/1",
        r#"{"Addr":"10.0.0.9:1","Metadata":null}"#,
    )
    .await;
    put_foreign(&mut raw, "greeter.rpc_other/1", "10.0.0.8:1").await;
    put_foreign(&mut raw, "/greeter.rpc/10.0.0.7:1", "10.0.0.7:1").await;
    // kratos's registry: an instance with an HTTP and a gRPC endpoint; other layouts' values.
    let kratos = r#"{"id":"6b1c","name":"greeter","version":"v1","metadata":{"weight":"50"},"endpoints":["http://10.0.0.5:8000","grpc://10.0.0.5:9000"]}"#;
    put_foreign(&mut raw, "/microservices/greeter/6b1c", kratos).await;
    put_foreign(&mut raw, "/microservices/greeter/x", "10.0.0.6:1").await;
    put_foreign(&mut raw, "/microservices/greeter_other/6b1c", kratos).await;

    let gozero = connect(&etcd, Layout::GoZero).await;
    let found = gozero.discover("greeter.rpc").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].addr, "10.0.0.1:8080");
    assert_eq!(found[0].key, "greeter.rpc/7587890385633127685");
    let kr = connect(&etcd, Layout::Kratos).await;
    let found = kr.discover("greeter").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].addr, "10.0.0.5:9000");
    assert_eq!(found[0].weight(), 50);
    assert_eq!(found[0].meta("version").as_deref(), Some("v1"));
    // The seed layout finds none of it.
    let seed = connect(&etcd, Layout::Seed).await;
    assert!(seed.discover("greeter").await.unwrap().is_empty());

    // A watcher follows the frameworks' writes; unreadable puts are no instances.
    let watcher = gozero.watch("greeter.rpc").await.unwrap();
    assert!(matches!(next(&watcher).await, Change::Added(i) if i.addr == "10.0.0.1:8080"));
    put_foreign(&mut raw, "greeter.rpc/2", "10.0.0.2:8080").await;
    assert!(matches!(next(&watcher).await, Change::Added(i) if i.addr == "10.0.0.2:8080"));
    put_foreign(&mut raw, "greeter.rpc/2", "garbage").await;
    assert!(matches!(next(&watcher).await, Change::Removed(i) if i.addr == "10.0.0.2:8080"));
    assert_eq!(
        watcher.pick().map(|i| i.addr).as_deref(),
        Some("10.0.0.1:8080")
    );
    for client in [gozero, kr, seed] {
        client.close().await.unwrap();
    }
}

/// Register, watch, heal a deleted key and a revoked lease, deregister: the
/// same in every layout, with other layouts' keys beside ours left alone.
#[tokio::test(flavor = "multi_thread")]
async fn every_layout_registers_watches_and_heals_alike() {
    let etcd = Etcd::start().await;
    let mut raw = etcd.raw().await;
    for layout in Layout::ALL {
        let provider = connect(&etcd, layout).await;
        let consumer = connect(&etcd, layout).await;
        let name = "svc";
        // Someone else's keys in the same range: a foreign value, and a sibling name.
        let range = layout.service_prefix(layout.default_prefix(), name);
        let foreign = format!("{range}foreign");
        put_foreign(&mut raw, &foreign, "not an instance").await;
        let sibling = Service::new("svc_other", "127.0.0.1:5999");
        provider.register(&sibling).await.unwrap();

        let regs = provider
            .register_many(&[
                Service::new(name, "127.0.0.1:5000"),
                Service::new(name, "127.0.0.1:5001"),
            ])
            .await
            .unwrap();
        let watcher = consumer.watch(name).await.unwrap();
        let addrs = |w: &Watcher| {
            w.instances()
                .iter()
                .map(|i| i.addr.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            addrs(&watcher),
            ["127.0.0.1:5000", "127.0.0.1:5001"],
            "{layout}"
        );
        let original = dump(&mut raw, regs[0].key()).await;

        // Deleted from outside: put back, byte for byte.
        raw.delete(regs[0].key(), None).await.unwrap();
        wait_until(Duration::from_secs(5), "the deleted key is back", || {
            let mut raw = raw.clone();
            let original = original.clone();
            let key = regs[0].key().to_string();
            async move {
                let now = dump(&mut raw, &key).await;
                now.get(&key).map(|v| &v.0) == original.get(&key).map(|v| &v.0)
            }
        })
        .await;

        // The lease revoked: everything rewritten under a new one.
        let lease = provider.lease_id().unwrap();
        raw.lease_revoke(lease).await.unwrap();
        let took = wait_until(
            Duration::from_secs(10),
            "rewritten under a new lease",
            || {
                let mut raw = raw.clone();
                let provider = provider.clone();
                let keys: Vec<String> = regs.iter().map(|r| r.key().to_string()).collect();
                async move {
                    let now = provider.lease_id();
                    let held = dump(&mut raw, "").await;
                    now.is_some_and(|l| l != lease)
                        && keys
                            .iter()
                            .all(|k| held.get(k).is_some_and(|v| Some(v.1) == now))
                }
            },
        )
        .await;
        println!("layouts[{layout}]: a revoked lease's keys rewritten after {took:?}");
        wait_until(Duration::from_secs(5), "the watcher holds both", || async {
            addrs(&watcher).len() == 2
        })
        .await;

        // What healing caused, until quiet.
        let quiet = Some(Duration::from_millis(300));
        while let Ok(Some(_)) = watcher.next_change_within(quiet).await {}
        regs[1].deregister().await.unwrap();
        assert!(matches!(next(&watcher).await, Change::Removed(i) if i.addr == "127.0.0.1:5001"));
        assert_eq!(
            watcher.pick().map(|i| i.addr).as_deref(),
            Some("127.0.0.1:5000")
        );
        provider.close().await.unwrap();
        consumer.close().await.unwrap();
        // Only the foreign key is left: ours went with the lease, theirs untouched.
        let left = dump(&mut raw, "").await;
        assert_eq!(left.keys().collect::<Vec<_>>(), [&foreign], "{layout}");
        raw.delete(foreign.as_str(), None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_layout_from_the_environment() {
    let etcd = Etcd::start().await;
    let endpoints = etcd.endpoints_csv();
    let exe = env!("CARGO_BIN_EXE_provider");
    // Metadata from the environment is not written in the go-zero layout (only refused when given).
    let env = [
        ("REGISTRY_ENDPOINTS", endpoints.as_str()),
        ("REGISTRY_LAYOUT", "go-zero"),
        ("REGISTRY_ZONE", "zone1"),
    ];
    let (mut child, line) = spawn_provider(exe, "greeter.rpc", "127.0.0.1:7000", &env);
    assert_eq!(line, "registered greeter.rpc/127.0.0.1:7000");
    let mut raw = etcd.raw().await;
    assert_eq!(
        dump(&mut raw, "greeter.rpc/").await["greeter.rpc/127.0.0.1:7000"].0,
        "127.0.0.1:7000"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let out = std::process::Command::new(exe)
        .args(["greeter", "127.0.0.1:7001"])
        .env("REGISTRY_ENDPOINTS", &endpoints)
        .env("REGISTRY_LAYOUT", "gozero")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid REGISTRY_LAYOUT") && stderr.contains("\"gozero\""),
        "{stderr}"
    );
}
