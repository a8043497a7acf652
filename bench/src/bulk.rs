//! Bulk registration from one process: libregistry's `register_many`
//! against the floor (raw etcd-client: one lease, then transactions of 128
//! puts one after the other, as many operations per transaction as etcd
//! allows) and against the seed's way (grant, put, keepalive per
//! registration, one registration after the other). Also closing a client
//! that holds them all (one revoke) against a raw revoke of the floor's lease.

use std::time::{Duration, Instant};

use etcd_client::{PutOptions, Txn, TxnOp};
use harness::Etcd;
use libregistry::{blocking, Options, Service};

use crate::child::{addr, keep_alive, revoke_all};
use crate::latency::{library_value, seed_register, SEED_TTL_SECS};

/// etcd's default limit of operations in one transaction.
pub const TXN_OPS: usize = 128;

/// A client for many registrations at once: each transaction of 128 gets
/// the request timeout, raised to 10 s for a loaded machine.
pub fn bulk_client(endpoints: &[String]) -> blocking::Client {
    blocking::Client::connect(
        Options::new()
            .endpoints(endpoints.to_vec())
            .request_timeout(Duration::from_secs(10)),
    )
    .expect("connect")
}

/// One libregistry round: connect (untimed), `register_many` of `n`
/// services (timed), `close` (timed). Returns (register secs, close secs).
pub fn library_round(endpoints: &[String], n: usize) -> (f64, f64) {
    let client = bulk_client(endpoints);
    let services: Vec<Service> = (0..n)
        .map(|i| crate::latency::service_at("bulk", &addr(i)))
        .collect();
    let start = Instant::now();
    client.register_many(&services).expect("register_many");
    let register = start.elapsed().as_secs_f64();
    let start = Instant::now();
    client.close().expect("close");
    (register, start.elapsed().as_secs_f64())
}

/// One floor round: grant one lease and write `n` keys of `value` under it
/// in transactions of 128 (timed), then revoke the lease (timed).
/// Returns (write secs, revoke secs).
pub fn floor_round(
    rt: &tokio::runtime::Runtime,
    raw: &mut etcd_client::Client,
    prefix: &str,
    n: usize,
    value: &[u8],
) -> (f64, f64) {
    let keys: Vec<String> = (0..n).map(|i| format!("/{prefix}/{}", addr(i))).collect();
    rt.block_on(async {
        let start = Instant::now();
        let lease = raw
            .lease_grant(SEED_TTL_SECS, None)
            .await
            .expect("grant")
            .id();
        for chunk in keys.chunks(TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::put(k.as_str(), value, Some(PutOptions::new().with_lease(lease))))
                .collect();
            raw.txn(Txn::new().and_then(ops)).await.expect("txn");
        }
        let write = start.elapsed().as_secs_f64();
        let start = Instant::now();
        raw.lease_revoke(lease).await.expect("revoke");
        (write, start.elapsed().as_secs_f64())
    })
}

/// What the seed's way did in one bounded run.
pub struct SeedRun {
    /// Registrations done (fewer than asked when the time limit struck).
    pub done: usize,
    /// Seconds spent registering them.
    pub secs: f64,
    /// Each registration's latency, µs.
    pub each_us: Vec<f64>,
}

/// The seed's way, `n` registrations one after the other, each with its
/// own lease and keepalive stream kept alive every TTL/3 while the rest
/// register; stops early at `limit`. Everything is revoked afterwards (untimed).
pub fn seed_run(
    rt: &tokio::runtime::Runtime,
    raw: &mut etcd_client::Client,
    n: usize,
    value: &[u8],
    limit: Duration,
) -> SeedRun {
    let every = Duration::from_millis(SEED_TTL_SECS as u64 * 1000 / 3);
    rt.block_on(async {
        let mut leases = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let mut each_us = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            if start.elapsed() > limit {
                break;
            }
            let t = Instant::now();
            let key = format!("/bulk-seed/{}", addr(i));
            let (lease, keeper, stream) =
                seed_register(raw, &key, value.to_vec(), SEED_TTL_SECS).await;
            each_us.push(t.elapsed().as_secs_f64() * 1e6);
            leases.push(lease);
            tasks.push(keep_alive(keeper, stream, every));
        }
        let secs = start.elapsed().as_secs_f64();
        for t in &tasks {
            t.abort();
        }
        revoke_all(raw, &leases).await;
        SeedRun {
            done: leases.len(),
            secs,
            each_us,
        }
    })
}

/// etcd's counter of Range (read) requests started.
pub const RANGE_METRIC: &str = "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}";

/// What a fresh client does after `register_many` of `n` returned: how
/// many read requests etcd then receives, and for how long (until none
/// came for a second, at most `limit`). Returns (reads, secs, register secs).
pub fn reads_after_register(
    endpoints: &[String],
    member: &harness::Member,
    n: usize,
    limit: Duration,
) -> (f64, f64, f64) {
    let client = bulk_client(endpoints);
    let services: Vec<Service> = (0..n)
        .map(|i| crate::latency::service_at("bulk-reads", &addr(i)))
        .collect();
    let reads = || member.metric(RANGE_METRIC).unwrap_or(f64::NAN);
    let before = reads();
    let start = Instant::now();
    client.register_many(&services).expect("register_many");
    let returned = Instant::now();
    let register = (returned - start).as_secs_f64();
    let (mut last, mut last_change) = (reads(), Instant::now());
    while returned.elapsed() < limit && last_change.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
        let now = reads();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let busy = (last_change - returned).as_secs_f64();
    client.close().expect("close");
    (last - before, busy, register)
}

/// A raw client on `etcd` and the bytes libregistry writes for one
/// service there (read back from a throwaway client's registration).
pub fn raw_and_value(rt: &tokio::runtime::Runtime, etcd: &Etcd) -> (etcd_client::Client, Vec<u8>) {
    let mut raw = rt.block_on(etcd.raw());
    let core = libregistry::blocking::Client::connect(
        libregistry::Options::new().endpoints(etcd.endpoints()),
    )
    .expect("connect");
    let value = library_value(rt, &mut raw, &core);
    let _ = core.close();
    (raw, value)
}

/// Compacts etcd's history up to now, so bulk rounds do not pile it up.
pub fn compact(rt: &tokio::runtime::Runtime, raw: &mut etcd_client::Client) {
    rt.block_on(async {
        if let Ok(resp) = raw.get("/", None).await {
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            if rev > 0 {
                let _ = raw.compact(rev, None).await;
            }
        }
    });
}
