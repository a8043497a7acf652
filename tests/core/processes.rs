//! Whole processes: a SIGKILLed provider disappears after about its TTL.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{dump, spawn_provider, wait_until, Etcd};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_provider_disappears_after_about_its_ttl() {
    let etcd = Etcd::start().await;
    let ttl = 2;
    let (mut provider, line) = spawn_provider(
        env!("CARGO_BIN_EXE_provider"),
        "micro",
        "127.0.0.1:4000",
        &[
            ("REGISTRY_ENDPOINTS", &etcd.endpoints_csv()),
            ("REGISTRY_TTL", "2"),
        ],
    );
    assert_eq!(line, "registered /micro/127.0.0.1:4000");
    let mut raw = etcd.raw().await;
    assert_eq!(dump(&mut raw, "/micro/").await.len(), 1);

    provider.kill().unwrap(); // SIGKILL: no chance to deregister
    provider.wait().unwrap();
    let killed = Instant::now();
    let took = wait_until(
        Duration::from_secs(ttl + 5),
        "killed provider's key gone",
        || {
            let mut raw = raw.clone();
            async move { dump(&mut raw, "/micro/").await.is_empty() }
        },
    )
    .await;
    println!("SIGKILLed provider gone from etcd after {took:?} (TTL {ttl} s)");
    assert!(
        killed.elapsed() >= Duration::from_millis(500),
        "the lease, not a goodbye, removed it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_variables_fill_options_and_metadata() {
    let etcd = Etcd::start().await;
    let (mut provider, line) = spawn_provider(
        env!("CARGO_BIN_EXE_provider"),
        "micro",
        "127.0.0.1:4000",
        &[
            ("REGISTRY_ENDPOINTS", &etcd.endpoints_csv()),
            ("REGISTRY_TTL", "7"),
            ("REGISTRY_PREFIX", "/prod"),
            ("REGISTRY_ENV", "staging"),
            ("REGISTRY_REGION", "beijing"),
            ("REGISTRY_ZONE", "zone1"),
            ("REGISTRY_DEPLOYMENT", "red"),
            ("REGISTRY_SCHEME", "http"),
            ("REGISTRY_WEIGHT", "42"),
            ("REGISTRY_APP_VERSION", "v9"),
            ("REGISTRY_BUILD_TIME", "2020-10-14T10:00:00Z"),
        ],
    );
    assert_eq!(line, "registered /prod/micro/127.0.0.1:4000");
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/prod/").await;
    let (value, lease) = &held["/prod/micro/127.0.0.1:4000"];
    for part in [
        r#""env":"staging","region":"beijing","zone":"zone1","ip":"127.0.0.1","port":4000,"scheme":"http","weight":42,"deployment":"red""#,
        r#""appVersion":"v9","buildTime":"2020-10-14T10:00:00Z""#,
    ] {
        assert!(value.contains(part), "{value} lacks {part}");
    }
    let ttl = raw.lease_time_to_live(*lease, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 7, "REGISTRY_TTL sets the lease TTL");
    provider.kill().unwrap();
    provider.wait().unwrap();
}

#[test]
fn a_bad_environment_variable_is_named_in_the_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_provider"))
        .args(["micro", "127.0.0.1:4000"])
        .env("REGISTRY_ENDPOINTS", "http://127.0.0.1:1")
        .env("REGISTRY_WEIGHT", "heavy")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid REGISTRY_WEIGHT"), "{err}");
}
