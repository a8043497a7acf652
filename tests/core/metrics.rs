//! Metrics: a client's counters, read while etcd goes through faults, move
//! by exactly what happened (a lease lost and granted again, its keys
//! written back), and the text is Prometheus's format.

use std::time::Duration;

use harness::{wait_until, Etcd};
use libregistry::{Client, Event, Metrics, Options, Service};

const TTL: u32 = 2;
const SERVICES: usize = 3;

fn value(m: &Metrics, id: &str) -> f64 {
    m.get(id)
        .unwrap_or_else(|| panic!("no sample {id} in\n{}", m.to_text()))
}

/// Leases lost for any reason (which one a revoke shows as depends on
/// whether keepalive or healing hears of it first).
fn leases_lost(m: &Metrics) -> f64 {
    ["expired", "not_found", "timeout", "stream_broken"]
        .iter()
        .map(|r| {
            value(
                m,
                &format!("libregistry_leases_lost_total{{reason=\"{r}\"}}"),
            )
        })
        .sum()
}

/// Waits for the client's next `Restored` event.
async fn restored(events: &mut libregistry::EventStream) {
    let waited = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.next().await {
            if matches!(event, Event::Restored { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "registrations not restored in 15 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_by_what_a_revoke_and_a_wipe_did() {
    let mut etcd = Etcd::start().await;
    let client = Client::connect(
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(TTL)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let services: Vec<Service> = (0..SERVICES)
        .map(|i| Service::new("metered", format!("127.0.0.1:{}", 4000 + i)))
        .collect();
    let _regs = client.register_many(&services).await.unwrap();
    let mut events = client.events();

    let m = client.metrics();
    assert_eq!(value(&m, "libregistry_registrations"), SERVICES as f64);
    assert_eq!(value(&m, "libregistry_lease_grants_total"), 1.0);
    assert_eq!(leases_lost(&m), 0.0);
    assert_eq!(value(&m, "libregistry_keys_restored_total"), 0.0);
    assert!(
        value(
            &m,
            "libregistry_requests_total{kind=\"txn\",outcome=\"ok\"}"
        ) >= 1.0
    );
    assert_eq!(value(&m, "libregistry_outage_seconds_total"), 0.0);
    // Keepalives every TTL/3, each answer timed.
    wait_until(Duration::from_secs(5), "two keepalive answers", || async {
        client
            .metrics()
            .get("libregistry_keepalive_rtt_seconds_count")
            .is_some_and(|n| n >= 2.0)
    })
    .await;
    let m = client.metrics();
    assert_eq!(
        value(&m, "libregistry_keepalives_sent_total"),
        client.keepalives_sent() as f64
    );
    assert!(value(&m, "libregistry_keepalive_rtt_seconds_sum") > 0.0);

    // A watcher counts while it lives.
    let watcher = client.watch("metered").await.unwrap();
    assert_eq!(value(&client.metrics(), "libregistry_watchers"), 1.0);
    drop(watcher);
    wait_until(
        Duration::from_secs(5),
        "the watcher no longer counted",
        || async { client.metrics().get("libregistry_watchers") == Some(0.0) },
    )
    .await;

    // 1. The lease revoked from outside: lost once, granted once more, every key written back.
    let mut raw = etcd.raw().await;
    raw.lease_revoke(client.lease_id().unwrap()).await.unwrap();
    restored(&mut events).await;
    let m = client.metrics();
    println!("metrics[revoked]:\n{}", m.to_text());
    assert_eq!(leases_lost(&m), 1.0);
    assert_eq!(value(&m, "libregistry_lease_grants_total"), 2.0);
    assert_eq!(
        value(&m, "libregistry_keys_restored_total"),
        SERVICES as f64
    );
    assert!(value(&m, "libregistry_heal_attempts_total") >= 1.0);
    let outage_after_revoke = value(&m, "libregistry_outage_seconds_total");
    assert!(outage_after_revoke > 0.0);

    // 2. etcd wiped: lost again, granted again, written back again; the
    // outage counted on top of the first.
    etcd.wipe_and_restart().await;
    restored(&mut events).await;
    let m = client.metrics();
    println!("metrics[wiped]:\n{}", m.to_text());
    assert_eq!(leases_lost(&m), 2.0);
    assert_eq!(value(&m, "libregistry_lease_grants_total"), 3.0);
    assert_eq!(
        value(&m, "libregistry_keys_restored_total"),
        2.0 * SERVICES as f64
    );
    assert!(value(&m, "libregistry_outage_seconds_total") > outage_after_revoke);
    assert!(
        value(&m, "libregistry_watch_restarts_total") >= 1.0,
        "own watch broke"
    );
    assert_eq!(value(&m, "libregistry_registrations"), SERVICES as f64);
    let keys: Vec<String> = services.iter().map(|s| client.key_of(s)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(etcd.holds_exactly(&keys, client.lease_id()).await);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_text_has_every_metric_with_help_and_type() {
    let etcd = Etcd::start().await;
    let client = Client::connect(Options::new().endpoints(etcd.endpoints()))
        .await
        .unwrap();
    let text = client.metrics_text();
    for name in [
        "libregistry_registrations gauge",
        "libregistry_lease_grants_total counter",
        "libregistry_leases_lost_total counter",
        "libregistry_keys_restored_total counter",
        "libregistry_orphan_keys_removed_total counter",
        "libregistry_heal_attempts_total counter",
        "libregistry_heal_failures_total counter",
        "libregistry_keepalive_rtt_seconds histogram",
        "libregistry_requests_total counter",
        "libregistry_watch_restarts_total counter",
        "libregistry_watchers gauge",
        "libregistry_outage_seconds_total counter",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name}\n")),
            "{name} in\n{text}"
        );
    }
    // The connect probe was one read.
    assert!(text.contains("libregistry_requests_total{kind=\"range\",outcome=\"ok\"} 1\n"));
    client.close().await.unwrap();
}
