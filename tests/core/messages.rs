//! What a person reads when something goes wrong: plain words that name
//! the endpoint or the field, the technical cause kept as the error's
//! source (for debug output), durations in readable units.

use std::error::Error as _;
use std::time::Duration;

use harness::Etcd;
use libregistry::{Client, Event, Options, Service};

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_etcd_is_named_in_plain_words() {
    let endpoint = "http://127.0.0.1:1";
    let err = Client::connect(
        Options::new()
            .endpoints([endpoint])
            .request_timeout(Duration::from_millis(500)),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert_eq!(
        err.to_string(),
        format!("etcd unavailable: connection to {endpoint} refused")
    );
    let cause = err.source().map(ToString::to_string).unwrap_or_default();
    assert!(
        cause.contains("Connection refused"),
        "the technical cause: {cause}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_reads_as_what_to_fix() {
    let etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()))
        .await
        .unwrap();
    let err = client
        .register(&Service::new("orders", "http://127.0.0.1:8080"))
        .await
        .expect_err("a URL is no address");
    assert_eq!(
        err.to_string(),
        r#"invalid addr: "http://127.0.0.1:8080" must be host:port, not a URL"#
    );
    let err = Options::new()
        .endpoints(etcd.endpoints())
        .request_timeout(Duration::ZERO)
        .resolve()
        .expect_err("no time at all");
    assert_eq!(
        err.to_string(),
        "invalid request_timeout: 0 s is too short (at least 10 ms)"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_says_what_happened_to_which_endpoint() {
    let mut etcd = Etcd::start().await;
    let endpoint = etcd.endpoints()[0].clone();
    let client = Client::connect(Options::new().endpoints([endpoint.clone()]).ttl_secs(2))
        .await
        .unwrap();
    let mut events = client.events();
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    etcd.member().kill();
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if let Event::LeaseLost { reason, .. } = event {
                return reason.to_string();
            }
        }
        String::new()
    })
    .await
    .expect("the lease is lost within 10 s");
    println!("messages: a lost lease reads: {reason}");
    assert!(reason.contains(&endpoint), "names the endpoint: {reason}");
    for jargon in ["grpc", "hyper", "h2 protocol", "os error"] {
        assert!(
            !reason.to_lowercase().contains(jargon),
            "{jargon} in: {reason}"
        );
    }
    etcd.member().start_again();
    client.close().await.ok();
}
