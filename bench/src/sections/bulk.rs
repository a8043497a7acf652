//! Section 3, bulk registration from one process (libregistry's
//! register_many, raw transactions, the seed's way one by one), and the
//! rows of section 2 on closing a client that holds them (timed by
//! bulk.rs).

use std::time::Duration;

use harness::stats::Summary;
use harness::Etcd;

use crate::bulk;
use crate::report::{self, Fig, Row, Run};

/// How many rounds, and how long the seed's way and the reads may take.
pub struct Plan {
    /// Rounds of 10,000 registrations.
    pub rounds_10k: usize,
    /// Rounds of 100,000 registrations.
    pub rounds_100k: usize,
    /// The seed's way, one by one, stops after this at 10,000...
    pub seed_limit_10k: Duration,
    /// ... and after this at 100,000.
    pub seed_limit_100k: Duration,
    /// How long to watch etcd's read requests after register_many returned.
    pub reads_limit: Duration,
}

/// Section 3 (bulk registration) and the close rows of section 2.
pub fn section(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    run.section(3);
    let mut closes: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
    for (n, rounds, seed_limit) in [
        (10_000, plan.rounds_10k, plan.seed_limit_10k),
        (100_000, plan.rounds_100k, plan.seed_limit_100k),
    ] {
        // A fresh etcd for each size: no history from the other.
        let etcd = rt.block_on(Etcd::start());
        let endpoints = etcd.endpoints();
        let (mut raw, value) = bulk::raw_and_value(rt, &etcd);
        let (mut lib, mut floor, mut lib_close, mut floor_close) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (reg, close) = bulk::library_round(&endpoints, n);
            lib.push(reg);
            lib_close.push(close * 1e3);
            bulk::compact(rt, &mut raw);
            let (write, revoke) = bulk::floor_round(rt, &mut raw, "bulk-floor", n, &value);
            floor.push(write);
            floor_close.push(revoke * 1e3);
            bulk::compact(rt, &mut raw);
        }
        let seed = bulk::seed_run(rt, &mut raw, n, &value, seed_limit);
        let (lib_fig, floor_fig) = (Fig::rate(n, &lib), Fig::rate(n, &floor));
        let seed_fig = Fig::one(seed.done as f64 / seed.secs);
        let of_floor = lib_fig.p50 / floor_fig.p50;
        let label = report::count(n);
        run.add(
            Row::new(
                3,
                format!("raw txns of 128 under one lease, {label} (floor)"),
                "reg/s",
                floor_fig,
            )
            .panel("bulk"),
        );
        let seed_what = if seed.done < n {
            format!(
                "seed's way, one by one, {label} (stopped at the {:.0} s limit after {})",
                seed_limit.as_secs_f64(),
                report::count(seed.done)
            )
        } else {
            format!("seed's way, one by one, {label}")
        };
        run.add(
            Row::new(3, seed_what, "reg/s", seed_fig)
                .against("raw txns (floor)", floor_fig)
                .panel("bulk"),
        );
        run.add(Row::new(
            3,
            format!(
                "   its registrations, each ({} of them)",
                report::count(seed.done)
            ),
            "µs",
            Fig::of(&Summary::of(&seed.each_us)),
        ));
        let met = lib_fig.p50 >= 40_000.0 && of_floor >= 0.9;
        run.add(
            Row::new(
                3,
                format!("libregistry register_many, {label}"),
                "reg/s",
                lib_fig,
            )
            .against("raw txns (floor)", floor_fig)
            .also("seed", seed_fig)
            .goal(format!(">= 40,000/s and >= 0.9 floor: {of_floor:.2}"), met)
            .panel("bulk"),
        );
        let gap_us = 1e6 / lib_fig.p50 - 1e6 / floor_fig.p50;
        run.add(
            Row::new(
                3,
                "   time per registration over the floor's",
                "µs",
                Fig::one(gap_us),
            )
            .against("the floor's", Fig::one(1e6 / floor_fig.p50)),
        );
        if n == 10_000 {
            // After a fresh client's first registration of a name, the
            // library checks every key it wrote, one read request per key.
            let (reads, busy, register) =
                bulk::reads_after_register(&endpoints, &etcd.members[0], n, plan.reads_limit);
            run.add(
                Row::new(
                    3,
                    format!("   read requests etcd gets after register_many of {label} returned"),
                    "reads",
                    Fig::one(reads),
                )
                .against("the floor's reads", Fig::one(0.0)),
            );
            run.add(
                Row::new(
                    3,
                    "   ... for how long after it returned",
                    "s",
                    Fig::one(busy),
                )
                .against("register_many itself", Fig::one(register)),
            );
        }
        closes.push((n, lib_close, floor_close));
    }
    run.section(2);
    for (n, lib, floor) in closes {
        let label = report::count(n);
        let floor_fig = Fig::of(&Summary::of(&floor));
        run.add(Row::new(
            2,
            format!("raw revoke of a lease holding {label} keys (floor)"),
            "ms",
            floor_fig,
        ));
        run.add(
            Row::new(
                2,
                format!("libregistry close() holding {label} registrations"),
                "ms",
                Fig::of(&Summary::of(&lib)),
            )
            .against(format!("raw revoke, {label} keys (floor)"), floor_fig),
        );
    }
}
