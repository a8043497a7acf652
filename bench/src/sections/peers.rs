//! Section 8, peers doing the same job on the same etcd in the same run:
//! etcd-sdk-python and Go's etcd client, each in its driver process
//! (bench/python, bench/go): latency in blocks, bulk rounds next to the
//! floor's and libregistry's, and the footprint at 1,000.

use std::process::Command;
use std::time::Duration;

use harness::stats::Summary;
use harness::Etcd;
use serde_json::Value;

use super::footprint::Footprints;
use super::latency::Latency;
use crate::bulk;
use crate::driver::{blocks, number, python_driver, BlockSizes, Driver};
use crate::footprint::{self, Foot};
use crate::report::{Fig, Row, Run};

/// How many bulk rounds, how many blocks, how long keepalives are counted.
pub struct Plan {
    /// Bulk rounds of 10,000 for the Python peer (about 20 s each) and the Go peer.
    pub bulk_rounds: [usize; 2],
    /// Latency blocks of each peer.
    pub blocks: BlockSizes,
    /// How long etcd's keepalive counter is watched.
    pub window: Duration,
}

/// Section 8: the Python and Go peers, one process at a time.
pub fn section(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    run: &mut Run,
    lat: &Latency,
    foot: &Footprints,
) {
    run.section(8);
    let etcd = rt.block_on(Etcd::start());
    let endpoints = etcd.endpoints();
    let (mut raw, value) = bulk::raw_and_value(rt, &etcd);
    // One peer process at a time: a peer alive meanwhile would add its
    // keepalives to the other's count and its load to the other's samples.
    let start_peer = |lang: &str| -> Result<Driver, String> {
        match lang {
            "Python" => python_driver("BENCH_PEER_PYTHON", "peer_etcd_sdk.py", &endpoints),
            _ => std::env::var("BENCH_GO_PEER")
                .map_err(|_| "BENCH_GO_PEER not set (scripts/bench.sh sets it)".to_string())
                .and_then(|exe| {
                    let mut cmd = Command::new(exe);
                    cmd.arg(endpoints.join(","));
                    Driver::spawn("go peer", cmd)
                }),
        }
    };
    for lang in ["Python", "Go"] {
        let mut driver = match start_peer(lang) {
            Ok(d) => d,
            Err(e) => {
                run.note(format!("{lang} peer not measured: {e}"));
                continue;
            }
        };
        let info = driver
            .ask("info", Duration::from_secs(30))
            .unwrap_or(Value::Null);
        let name = format!(
            "{} {}",
            info["client"].as_str().unwrap_or(lang),
            info["version"].as_str().unwrap_or("?")
        );
        run.peers
            .push(format!("{name}: {}", info["how"].as_str().unwrap_or("")));
        let b = blocks(rt, &endpoints, &mut driver, plan.blocks);
        let floor = Fig::of(&Summary::of(
            &b.floor.iter().map(|s| s.register_us).collect::<Vec<_>>(),
        ));
        let dfloor = Fig::of(&Summary::of(
            &b.floor.iter().map(|s| s.deregister_us).collect::<Vec<_>>(),
        ));
        run.add(
            Row::new(
                8,
                format!("{name}: register"),
                "µs",
                Fig::of(&Summary::of(&b.register)),
            )
            .against("raw put (floor, its blocks)", floor)
            .also("libregistry Rust (section 1)", lat.core_register)
            .panel("latency"),
        );
        run.add(
            Row::new(
                8,
                format!("{name}: deregister"),
                "µs",
                Fig::of(&Summary::of(&b.deregister)),
            )
            .against("raw delete (floor, its blocks)", dfloor),
        );
        // Each peer round is followed, on the same etcd, by a floor round
        // and a libregistry round of the same size.
        let (mut secs, mut floor, mut lib) = (Vec::new(), Vec::new(), Vec::new());
        let rounds = plan.bulk_rounds[usize::from(lang == "Go")];
        for _ in 0..rounds {
            match driver.ask("bulk 10000", Duration::from_secs(180)) {
                Ok(ans) => secs.push(number(&ans, "secs")),
                Err(e) => run.note(format!("{name} bulk: {e}")),
            }
            floor.push(bulk::floor_round(rt, &mut raw, "peer-floor", 10_000, &value).0);
            bulk::compact(rt, &mut raw);
            lib.push(bulk::library_round(&endpoints, 10_000).0);
            bulk::compact(rt, &mut raw);
        }
        if !secs.is_empty() {
            run.add(
                Row::new(
                    8,
                    format!("{name}: 10,000 registrations"),
                    "reg/s",
                    Fig::rate(10_000, &secs),
                )
                .against(
                    "raw txns (floor, rounds in between)",
                    Fig::rate(10_000, &floor),
                )
                .also("libregistry register_many", Fig::rate(10_000, &lib))
                .panel("bulk"),
            );
        }
        match footprint::measure(&etcd, &mut driver, 1_000, plan.window) {
            Ok(f) => {
                let lib = foot.library1000;
                let with = |row: Row, pick: fn(&Foot) -> f64| match lib {
                    Some(l) => row.against("libregistry, 1,000", Fig::one(pick(&l))),
                    None => row,
                };
                run.add(with(
                    Row::new(
                        8,
                        format!(
                            "{name}, 1,000 registrations: extra threads ({} in all)",
                            f.threads
                        ),
                        "threads",
                        Fig::one(f.extra_threads),
                    ),
                    |f| f.extra_threads,
                ));
                run.add(with(
                    Row::new(
                        8,
                        format!("{name}, 1,000 registrations: RSS"),
                        "MiB",
                        Fig::one(f.rss_mib),
                    ),
                    |f| f.rss_mib,
                ));
                run.add(with(
                    Row::new(
                        8,
                        format!("{name}, 1,000 registrations: keepalive requests"),
                        "msg/s",
                        Fig::one(f.keepalive_per_s),
                    ),
                    |f| f.keepalive_per_s,
                ));
            }
            Err(e) => run.note(format!("{name} footprint: {e}")),
        }
    }
}
