//! Whole processes: a SIGKILLed provider disappears after about its TTL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{dump, wait_until, Etcd};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_provider_disappears_after_about_its_ttl() {
    let etcd = Etcd::start().await;
    let ttl = 2;
    let mut provider = Command::new(env!("CARGO_BIN_EXE_provider"))
        .args(["micro", "127.0.0.1:4000"])
        .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
        .env("REGISTRY_TTL", ttl.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(provider.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "registered /micro/127.0.0.1:4000");
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
