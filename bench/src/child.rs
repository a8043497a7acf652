//! `bench child ENDPOINTS KIND`: a process holding registrations for the
//! footprint measurement, speaking the driver protocol (`hold N`,
//! `release`, `info`, `quit`; see driver.rs). KIND is `libregistry` (one
//! client, `register_many`) or `seed` (the seed's way with raw etcd-client:
//! a lease, a put and a keepalive stream per registration, each lease kept
//! alive every TTL/3 as Go's client does).

use std::io::BufRead;
use std::time::Duration;

use libregistry::{blocking, Options, Service};
use serde_json::json;

use crate::driver::threads_and_rss;
use crate::latency::seed_register;

/// TTL of every registration a child holds (the library's default).
pub const TTL_SECS: u32 = 10;

/// The address of registration `i` (distinct for up to 3,000,000).
pub fn addr(i: usize) -> String {
    format!(
        "127.0.{}.{}:{}",
        i / 60_000 / 250,
        1 + i / 60_000 % 250,
        1 + i % 60_000
    )
}

enum Held {
    Nothing,
    Library(blocking::Client),
    Seed(Box<SeedHeld>),
}

/// The seed's way: a runtime keeping one keepalive task per lease.
struct SeedHeld {
    rt: tokio::runtime::Runtime,
    raw: etcd_client::Client,
    leases: Vec<i64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs the child until `quit` or the end of its input.
pub fn main(endpoints_csv: &str, kind: &str) {
    let (threads_before, rss_before) = threads_and_rss();
    let endpoints: Vec<String> = endpoints_csv.split(',').map(str::to_string).collect();
    let mut held = Held::Nothing;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines().map_while(Result::ok).take(10_000) {
        let mut words = line.split_whitespace();
        let answer = match (
            words.next(),
            words.next().and_then(|n| n.parse::<usize>().ok()),
        ) {
            (Some("info"), _) => json!({"client": kind, "version": libregistry::VERSION}),
            (Some("hold"), Some(n)) => {
                held = match kind {
                    "seed" => hold_seed(&endpoints, n),
                    _ => hold_library(&endpoints, n),
                };
                let (threads, rss_kb) = threads_and_rss();
                json!({"threads": threads, "rss_kb": rss_kb,
                       "threads_before": threads_before, "rss_kb_before": rss_before})
            }
            (Some("release"), _) => {
                release(std::mem::replace(&mut held, Held::Nothing));
                json!({})
            }
            (Some("quit"), _) => break,
            _ => json!({"error": format!("unknown command {line:?}")}),
        };
        println!("{answer}");
    }
    release(held);
}

fn hold_library(endpoints: &[String], n: usize) -> Held {
    let client = blocking::Client::connect(
        Options::new()
            .endpoints(endpoints.to_vec())
            .ttl_secs(TTL_SECS)
            // 100,000 registrations in one call take ~800 transactions.
            .request_timeout(Duration::from_secs(10)),
    )
    .expect("connect");
    let services: Vec<Service> = (0..n).map(|i| Service::new("footprint", addr(i))).collect();
    client.register_many(&services).expect("register_many");
    Held::Library(client)
}

fn hold_seed(endpoints: &[String], n: usize) -> Held {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let raw = rt
        .block_on(etcd_client::Client::connect(endpoints, None))
        .expect("connect");
    let value = "x".repeat(330);
    let every = Duration::from_millis(u64::from(TTL_SECS) * 1000 / 3);
    // Registered 32 at a time (the seed registers one at a time; only the
    // holding is measured here, so the order does not matter).
    let (leases, tasks) = rt.block_on(async {
        let mut leases = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for chunk_start in (0..n).step_by(32) {
            let batch: Vec<_> = (chunk_start..n.min(chunk_start + 32))
                .map(|i| {
                    let mut raw = raw.clone();
                    let value = value.clone();
                    tokio::spawn(async move {
                        let key = format!("/footprint-seed/{}", addr(i));
                        let ttl = i64::from(TTL_SECS);
                        let (lease, keeper, stream) =
                            seed_register(&mut raw, &key, value.into_bytes(), ttl).await;
                        (lease, keeper, stream)
                    })
                })
                .collect();
            for b in batch {
                let (lease, keeper, stream) = b.await.expect("register task");
                leases.push(lease);
                tasks.push(keep_alive(keeper, stream, every));
            }
        }
        (leases, tasks)
    });
    Held::Seed(Box::new(SeedHeld {
        rt,
        raw,
        leases,
        tasks,
    }))
}

fn release(held: Held) {
    match held {
        Held::Nothing => {}
        Held::Library(client) => {
            let _ = client.close();
        }
        Held::Seed(seed) => {
            for t in &seed.tasks {
                t.abort();
            }
            seed.rt.block_on(revoke_all(&seed.raw, &seed.leases));
        }
    }
}

/// The seed's keepalive: one request `every` TTL/3 on the lease's own
/// stream, each answer awaited; stops at the first failure (the seed then
/// gives up).
pub fn keep_alive(
    mut keeper: etcd_client::LeaseKeeper,
    mut stream: etcd_client::LeaseKeepAliveStream,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if keeper.keep_alive().await.is_err() {
                break;
            }
            if !matches!(stream.message().await, Ok(Some(_))) {
                break;
            }
        }
    })
}

/// Revokes `leases`, 64 at a time.
pub async fn revoke_all(raw: &etcd_client::Client, leases: &[i64]) {
    for chunk in leases.chunks(64) {
        let revokes: Vec<_> = chunk
            .iter()
            .map(|&id| {
                let mut raw = raw.clone();
                tokio::spawn(async move {
                    let _ = raw.lease_revoke(id).await;
                })
            })
            .collect();
        for r in revokes {
            let _ = r.await;
        }
    }
}
