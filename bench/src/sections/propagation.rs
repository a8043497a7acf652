//! Section 4, propagation: from register returning to a watcher seeing
//! the new instance, the watcher in another process (`bench child-watch`)
//! and then in this one (timed by propagation.rs).

use harness::stats::Summary;
use harness::Etcd;

use crate::propagation;
use crate::report::{Fig, Row, Run};

/// How many samples.
pub struct Plan {
    /// Rounds before samples are kept.
    pub warmup: usize,
    /// Samples kept, for each place of the watcher.
    pub samples: usize,
}

/// Section 4: from register returning to a watcher seeing it.
pub fn section(plan: &Plan, run: &mut Run) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let exe = std::env::current_exe().expect("own path");
    let other = propagation::WatcherAt::OtherProcess {
        exe: &exe,
        args: &["child-watch"],
    };
    run.section(4);
    for (at, place) in [
        (other, "another process"),
        (propagation::WatcherAt::SameProcess, "this process"),
    ] {
        let etcd = rt.block_on(Etcd::start());
        let p = propagation::measure(&etcd.endpoints(), plan.warmup, plan.samples, at);
        let floor = Fig::of(&Summary::of(&p.put_us));
        let after = Summary::of(&p.after_return_us);
        let tag = format!("watcher in {place}");
        run.add(Row::new(
            4,
            format!("raw etcd-client put (floor; {tag} run)"),
            "µs",
            floor,
        ));
        run.add(
            Row::new(
                4,
                "libregistry register, call to return",
                "µs",
                Fig::of(&Summary::of(&p.register_us)),
            )
            .against("raw put (floor)", floor),
        );
        run.add(
            Row::new(
                4,
                format!("register called -> {tag} sees it"),
                "µs",
                Fig::of(&Summary::of(&p.end_to_end_us)),
            )
            .against("raw put (floor)", floor)
            .panel("propagation"),
        );
        run.add(
            Row::new(
                4,
                format!("register returned -> {tag} sees it"),
                "µs",
                Fig::of(&after),
            )
            .against("raw put (floor)", floor)
            .goal(
                format!("<= 200 µs p99: {:.0}", after.p99),
                after.p99 <= 200.0,
            )
            .panel("propagation"),
        );
    }
}
