//! Recovery: etcd SIGKILLed, its data dir deleted, started again empty;
//! how long after it answers again until every registration of a
//! libregistry client is back. The floor, measured right after each round
//! on the same fresh etcd: writing as many keys with raw etcd-client (one
//! lease, transactions of 128).

use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use harness::Etcd;
use libregistry::Service;

use crate::bulk::{bulk_client, floor_round, RANGE_METRIC};
use crate::child::addr;

/// etcd's counter of lease grants received.
const GRANT_METRIC: &str = "grpc_server_started_total{grpc_method=\"LeaseGrant\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"unary\"}";

/// What each round measured, seconds.
#[derive(Default)]
pub struct Recovery {
    /// From etcd answering again to all keys back.
    pub back_secs: Vec<f64>,
    /// The floor: writing as many keys into the fresh etcd, raw.
    pub floor_secs: Vec<f64>,
    /// Rounds where not every key came back within the limit.
    pub incomplete: usize,
    /// Read requests the fresh etcd got from the client until all were back
    /// (etcd's counter, less this benchmark's own polls), per round.
    pub client_reads: Vec<f64>,
    /// From etcd answering again to the client's first lease grant reaching it.
    pub first_grant_secs: Vec<f64>,
}

/// `rounds` wipes of `etcd` while a client holds `n` registrations.
pub fn measure(rt: &tokio::runtime::Runtime, etcd: &mut Etcd, n: usize, rounds: usize) -> Recovery {
    let client = bulk_client(&etcd.endpoints());
    let services: Vec<Service> = (0..n).map(|i| Service::new("recovery", addr(i))).collect();
    client.register_many(&services).expect("register_many");
    // The floor writes the very bytes the client wrote.
    let value = rt.block_on(async {
        let mut raw = etcd.raw().await;
        let resp = raw
            .get(format!("/recovery/{}", addr(0)), None)
            .await
            .expect("read back");
        resp.kvs()
            .first()
            .map(|kv| kv.value().to_vec())
            .unwrap_or_default()
    });
    let mut out = Recovery::default();
    for _ in 0..rounds {
        rt.block_on(etcd.wipe_and_restart());
        let healthy = Instant::now();
        let mut raw = rt.block_on(etcd.raw());
        let limit = healthy + Duration::from_secs(30);
        let mut back = None;
        let mut polls = 0.0;
        let mut granted = false;
        while Instant::now() < limit {
            polls += 1.0;
            if !granted && etcd.members[0].metric(GRANT_METRIC).unwrap_or(0.0) >= 1.0 {
                granted = true;
                out.first_grant_secs.push(healthy.elapsed().as_secs_f64());
            }
            let count = rt
                .block_on(raw.get(
                    "/recovery/",
                    Some(GetOptions::new().with_prefix().with_count_only()),
                ))
                .map(|r| r.count())
                .unwrap_or(0);
            if count as usize >= n {
                back = Some(healthy.elapsed().as_secs_f64());
                // The restarted etcd counts from zero.
                let reads = etcd.members[0].metric(RANGE_METRIC).unwrap_or(f64::NAN);
                out.client_reads.push(reads - polls);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match back {
            Some(secs) => out.back_secs.push(secs),
            None => out.incomplete += 1,
        }
        let (write, _) = floor_round(rt, &mut raw, "recovery-floor", n, &value);
        out.floor_secs.push(write);
    }
    let _ = client.close();
    out
}
