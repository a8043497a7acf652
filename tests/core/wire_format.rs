//! The golden test: the exact bytes of key and value that etcd holds,
//! as the seed and gRPC-go's etcd resolver expect them.

use harness::{dump, Etcd};
use libregistry::{Client, Options, Service};

#[tokio::test(flavor = "multi_thread")]
async fn registers_the_seed_example_byte_for_byte() {
    let etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()))
        .await
        .unwrap();
    let service = Service::new("micro", "127.0.0.1:4000")
        .env("dev")
        .region("beijing")
        .zone("zone1")
        .deployment("red")
        .app_version("ahkfasgasdf")
        .build_time("2020-10-14T10:00:00Z")
        .with("team", "infra")
        .unwrap();
    let reg = client.register(&service).await.unwrap();
    assert_eq!(reg.key(), "/micro/127.0.0.1:4000");

    let expected = format!(
        concat!(
            r#"{{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,"#,
            r#""Metadata":{{"env":"dev","region":"beijing","zone":"zone1","ip":"127.0.0.1","port":4000,"#,
            r#""scheme":"grpc","weight":100,"deployment":"red","frameVersion":"{version}","#,
            r#""appVersion":"ahkfasgasdf","buildTime":"2020-10-14T10:00:00Z","startTime":"{start}","#,
            r#""team":"infra"}}}}"#
        ),
        version = libregistry::VERSION,
        start = libregistry::timefmt::process_start_time(),
    );
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/").await;
    assert_eq!(held.len(), 1, "{held:?}");
    let (value, lease) = &held["/micro/127.0.0.1:4000"];
    assert_eq!(value, &expected);
    assert_eq!(Some(*lease), client.lease_id());
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn defaults_and_prefix() {
    let etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .prefix("/services"),
    )
    .await
    .unwrap();
    let reg = client
        .register(&Service::new("micro", "[::1]:80"))
        .await
        .unwrap();
    assert_eq!(reg.key(), "/services/micro/[::1]:80");
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/services/").await;
    let expected = format!(
        concat!(
            r#"{{"Addr":"[::1]:80","ServerName":"micro","Attributes":null,"Type":0,"#,
            r#""Metadata":{{"ip":"::1","port":80,"scheme":"grpc","weight":100,"#,
            r#""frameVersion":"{version}","startTime":"{start}"}}}}"#
        ),
        version = libregistry::VERSION,
        start = libregistry::timefmt::process_start_time(),
    );
    assert_eq!(held["/services/micro/[::1]:80"].0, expected);
    client.close().await.unwrap();
}
