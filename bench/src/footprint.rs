//! The footprint of one process holding registrations (a `bench child` or
//! a peer's driver, told `hold N`): its threads and resident memory, and
//! the keepalive requests etcd receives meanwhile.

use std::time::{Duration, Instant};

use harness::Etcd;

use crate::driver::{number, Driver};

/// etcd's counter of keepalive requests received (every client, every lease).
const KEEPALIVE_METRIC: &str = "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}";

/// A footprint measurement of one process holding registrations.
#[derive(Clone, Copy)]
pub struct Foot {
    /// Threads the registrations added.
    pub extra_threads: f64,
    /// Threads in all.
    pub threads: f64,
    /// Resident memory, MiB: the larger of right after registering and at
    /// the end of the window.
    pub rss_mib: f64,
    /// Keepalive requests etcd received per second over the window (from
    /// every client).
    pub keepalive_per_s: f64,
}

/// Asks `driver` to hold `n` registrations, then counts etcd's keepalive
/// requests over `window`.
pub fn measure(
    etcd: &Etcd,
    driver: &mut Driver,
    n: usize,
    window: Duration,
) -> Result<Foot, String> {
    let ans = driver.ask(&format!("hold {n}"), Duration::from_secs(300))?;
    let member = &etcd.members[0];
    let before = member.metric(KEEPALIVE_METRIC).unwrap_or(f64::NAN);
    let start = Instant::now();
    std::thread::sleep(window);
    let after = member.metric(KEEPALIVE_METRIC).unwrap_or(f64::NAN);
    let per_s = (after - before) / start.elapsed().as_secs_f64();
    // RSS again at the end of the window: keepalives have run meanwhile.
    let rss_end = rss_kib(driver.pid()).unwrap_or(number(&ans, "rss_kb"));
    driver.ask("release", Duration::from_secs(120))?;
    Ok(Foot {
        extra_threads: number(&ans, "threads") - number(&ans, "threads_before"),
        threads: number(&ans, "threads"),
        rss_mib: number(&ans, "rss_kb").max(rss_end) / 1024.0,
        keepalive_per_s: per_s,
    })
}

fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
