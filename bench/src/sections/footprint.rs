//! Section 7, footprint: threads, resident memory and keepalive requests
//! of a process holding registrations, libregistry's and the seed's way's,
//! each in a `bench child` process (timed by footprint.rs).

use std::process::Command;
use std::time::Duration;

use harness::Etcd;

use crate::child;
use crate::driver::Driver;
use crate::footprint::{self, Foot};
use crate::report::{self, Fig, Row, Run};

/// Which sizes, and how long keepalives are counted.
pub struct Plan {
    /// Registrations held, one row group each (the seed's way runs up to 1,000).
    pub sizes: [usize; 3],
    /// How long etcd's keepalive counter is watched.
    pub window: Duration,
}

/// libregistry's footprint at 1,000, for the peers' rows.
pub struct Footprints {
    /// libregistry holding 1,000 (`None` when that failed).
    pub library1000: Option<Foot>,
}

/// Section 7: libregistry and the seed's way holding registrations, in
/// `bench child` processes.
pub fn section(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) -> Footprints {
    run.section(7);
    let etcd = rt.block_on(Etcd::start());
    let exe = std::env::current_exe().expect("own path");
    let spawn_child = |kind: &str| {
        let mut cmd = Command::new(&exe);
        cmd.args(["child", &etcd.endpoints_csv(), kind]);
        Driver::spawn(kind, cmd)
    };
    let mut out = Footprints { library1000: None };
    for n in plan.sizes {
        let label = report::count(n);
        let lib = spawn_child("libregistry")
            .and_then(|mut d| footprint::measure(&etcd, &mut d, n, plan.window));
        let computed = n <= 1_000;
        let seed = if computed {
            spawn_child("seed").and_then(|mut d| footprint::measure(&etcd, &mut d, n, plan.window))
        } else {
            Err("not run".into())
        };
        let lib = match lib {
            Ok(f) => f,
            Err(e) => {
                run.note(format!("libregistry footprint at {label} failed: {e}"));
                continue;
            }
        };
        if n == 1_000 {
            out.library1000 = Some(lib);
        }
        // The seed's way at 100,000 (100,000 leases and keepalive streams)
        // is not run: its keepalive rate is computed, N x 3 / TTL.
        let (seed_name, seed_foot) = match seed {
            Ok(f) => (format!("seed's way, {label}"), Some(f)),
            Err(_) => (
                format!("seed's way, {label} (computed: N x 3 / TTL, not run)"),
                None,
            ),
        };
        let computed_ka = n as f64 * 3.0 / f64::from(child::TTL_SECS);
        let mut threads = Row::new(
            7,
            format!(
                "libregistry, {}: extra threads ({} in all)",
                report::registrations(n),
                lib.threads
            ),
            "threads",
            Fig::one(lib.extra_threads),
        )
        .goal("<= 2 extra threads", lib.extra_threads <= 2.0);
        let mut rss = Row::new(
            7,
            format!("libregistry, {}: RSS", report::registrations(n)),
            "MiB",
            Fig::one(lib.rss_mib),
        );
        let ka = Row::new(
            7,
            format!(
                "libregistry, {}: keepalive requests",
                report::registrations(n)
            ),
            "msg/s",
            Fig::one(lib.keepalive_per_s),
        )
        .panel("keepalive");
        let ka = match seed_foot {
            Some(s) => {
                threads = threads.against(seed_name.clone(), Fig::one(s.extra_threads));
                rss = rss.against(seed_name.clone(), Fig::one(s.rss_mib));
                ka.against(seed_name, Fig::one(s.keepalive_per_s))
            }
            None => ka.against(seed_name, Fig::one(computed_ka)),
        };
        run.add(threads);
        run.add(rss);
        run.add(ka);
    }
    run.note(format!(
        "keepalive requests are counted by etcd ({}) over {:.0} s with TTL {} s; RSS is the holding process's VmRSS",
        "grpc_server_msg_received_total, LeaseKeepAlive",
        plan.window.as_secs_f64(),
        child::TTL_SECS
    ));
    out
}
