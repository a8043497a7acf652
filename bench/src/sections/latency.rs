//! Section 1, register latency, and the latency rows of section 2,
//! deregister: the raw floor, the seed's way, the Rust core and the C ABI
//! (timed by latency.rs), and the Python binding (its driver, in blocks
//! alternating with the floor's).

use harness::stats::Summary;
use harness::Etcd;

use crate::driver::{blocks, python_driver, BlockSizes};
use crate::latency::{self, Sample, Way};
use crate::report::{Fig, Row, Run};

/// How many samples.
pub struct Plan {
    /// Rounds of every way before samples are kept.
    pub warmup: usize,
    /// Samples kept of every way.
    pub samples: usize,
    /// The Python binding's blocks.
    pub blocks: BlockSizes,
}

/// Figures later sections compare with.
pub struct Latency {
    /// libregistry's register through the Rust core.
    pub core_register: Fig,
}

fn column(samples: &[Sample], deregister: bool) -> Summary {
    let v: Vec<f64> = samples
        .iter()
        .map(|s| {
            if deregister {
                s.deregister_us
            } else {
                s.register_us
            }
        })
        .collect();
    Summary::of(&v)
}

/// Section 1 (register) and the latency rows of section 2 (deregister).
pub fn section(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) -> Latency {
    let etcd = rt.block_on(Etcd::start());
    let ways = [Way::RawPut, Way::Seed, Way::Core, Way::CAbi];
    let res = latency::measure(&etcd.endpoints(), &ways, plan.warmup, plan.samples);
    let [raw, seed, core, c_abi] =
        [0, 1, 2, 3].map(|w| (column(&res[w], false), column(&res[w], true)));

    run.section(1);
    let floor = Fig::of(&raw.0);
    let seed_fig = Fig::of(&seed.0);
    run.add(Row::new(1, Way::RawPut.label().replace("/delete", ""), "µs", floor).panel("latency"));
    run.add(
        Row::new(1, Way::Seed.label(), "µs", seed_fig)
            .against("raw put (floor)", floor)
            .panel("latency"),
    );
    run.add(
        Row::new(1, Way::Core.label(), "µs", Fig::of(&core.0))
            .against("raw put (floor)", floor)
            .also("seed", seed_fig)
            .panel("latency"),
    );
    // What the C ABI adds: the difference of the paired medians.
    let c_adds = c_abi.0.p50 - core.0.p50;
    run.add(
        Row::new(1, Way::CAbi.label(), "µs", Fig::of(&c_abi.0))
            .against("raw put (floor)", floor)
            .also("seed", seed_fig)
            .also("Rust core", Fig::of(&core.0))
            .goal(
                format!("adds <= 20 µs p50 over Rust: {c_adds:+.1}"),
                c_adds <= 20.0,
            )
            .panel("latency"),
    );

    // Python: its own process, in blocks alternating with floor blocks.
    let endpoints = etcd.endpoints();
    let mut py_dereg = None;
    match python_driver("BENCH_PYTHON", "libregistry_driver.py", &endpoints) {
        Ok(mut driver) => {
            let b = blocks(rt, &endpoints, &mut driver, plan.blocks);
            let pfloor = Summary::of(&b.floor.iter().map(|s| s.register_us).collect::<Vec<_>>());
            let py = Summary::of(&b.register);
            let pcore = Summary::of(&b.core_register);
            let adds = py.p50 - pcore.p50;
            run.add(
                Row::new(
                    1,
                    "libregistry, Python (Registry.register)",
                    "µs",
                    Fig::of(&py),
                )
                .against("raw put (floor, Python's blocks)", Fig::of(&pfloor))
                .also("seed", seed_fig)
                .also("Rust core in the same process", Fig::of(&pcore))
                .goal(
                    format!("adds <= 60 µs p50 over Rust: {adds:+.1}"),
                    adds <= 60.0,
                )
                .panel("latency"),
            );
            let pfloor_del =
                Summary::of(&b.floor.iter().map(|s| s.deregister_us).collect::<Vec<_>>());
            py_dereg = Some((Summary::of(&b.deregister), pfloor_del));
        }
        Err(e) => run.note(format!("Python binding not measured: {e}")),
    }

    run.section(2);
    let dfloor = Fig::of(&raw.1);
    run.add(Row::new(2, "raw etcd-client delete (floor)", "µs", dfloor));
    run.add(
        Row::new(2, "seed's way: delete the key", "µs", Fig::of(&seed.1))
            .against("raw delete (floor)", dfloor),
    );
    run.add(
        Row::new(
            2,
            "libregistry, Rust core deregister",
            "µs",
            Fig::of(&core.1),
        )
        .against("raw delete (floor)", dfloor),
    );
    run.add(
        Row::new(2, "libregistry, C ABI deregister", "µs", Fig::of(&c_abi.1))
            .against("raw delete (floor)", dfloor),
    );
    if let Some((py, pfloor)) = py_dereg {
        run.add(
            Row::new(2, "libregistry, Python deregister", "µs", Fig::of(&py))
                .against("raw delete (floor, Python's blocks)", Fig::of(&pfloor)),
        );
    }
    Latency {
        core_register: Fig::of(&core.0),
    }
}
