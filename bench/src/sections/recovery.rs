//! Section 6, recovery: etcd restarted on a wiped data dir, until every
//! registration is back (timed by recovery.rs).

use harness::stats::Summary;
use harness::Etcd;

use crate::recovery;
use crate::report::{self, Fig, Row, Run};

/// How many registrations, how many times.
pub struct Plan {
    /// Registrations held by the client when etcd is wiped.
    pub registrations: usize,
    /// Wipes.
    pub rounds: usize,
}

/// Section 6: etcd restarted on a wiped data dir, until every registration
/// is back.
pub fn section(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    let mut etcd = rt.block_on(Etcd::start());
    let r = recovery::measure(rt, &mut etcd, plan.registrations, plan.rounds);
    run.section(6);
    let label = report::count(plan.registrations);
    let floor = Fig::of(&Summary::of(&r.floor_secs));
    let mut what = format!("{label} registrations back, from etcd answering");
    if r.incomplete > 0 {
        what.push_str(&format!(" ({} rounds not back in 30 s)", r.incomplete));
    }
    run.add(Row::new(
        6,
        format!("raw write of {label} keys into the fresh etcd (floor)"),
        "s",
        floor,
    ));
    run.add(
        Row::new(6, what, "s", Fig::of(&Summary::of(&r.back_secs)))
            .against("raw write (floor)", floor)
            .panel("recovery"),
    );
    run.add(
        Row::new(
            6,
            "   of which: until its first lease grant reached etcd",
            "s",
            Fig::of(&Summary::of(&r.first_grant_secs)),
        )
        .against("all back", Fig::of(&Summary::of(&r.back_secs))),
    );
    run.add(
        Row::new(
            6,
            "   read requests the client sent meanwhile",
            "reads",
            Fig::of(&Summary::of(&r.client_reads)),
        )
        .against("the floor's reads", Fig::one(0.0)),
    );
}
