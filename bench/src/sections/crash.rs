//! Section 5, crash detection: a provider process (tests/bin/provider.rs)
//! SIGKILLed, until a watcher sees its registration removed (timed by
//! crash.rs).

use std::path::PathBuf;

use harness::stats::Summary;
use harness::Etcd;

use crate::crash;
use crate::report::{Fig, Row, Run};

/// Which TTLs, and how many kills at each.
pub struct Plan {
    /// (TTL in seconds, providers killed) per row; a count of 0 leaves the row out.
    pub runs: [(u32, usize); 3],
}

fn provider_exe() -> PathBuf {
    let own = std::env::current_exe().expect("own path");
    own.with_file_name("provider")
}

/// Section 5: a provider SIGKILLed, until a watcher sees its key removed.
pub fn section(rt: &tokio::runtime::Runtime, plan: &Plan, run: &mut Run) {
    run.section(5);
    let exe = provider_exe();
    if !exe.exists() {
        run.note(format!(
            "crash detection not measured: {} is missing (cargo build --release -p libregistry-tests --bin provider)",
            exe.display()
        ));
        return;
    }
    let etcd = rt.block_on(Etcd::start());
    for (ttl, count) in plan.runs {
        if count == 0 {
            continue;
        }
        let secs = crash::measure(&etcd.endpoints(), &exe, ttl, count);
        let s = Summary::of(&secs);
        let limit = f64::from(ttl) + 0.6;
        let mut what = format!("TTL {ttl} s: SIGKILL -> removal seen");
        if secs.len() < count {
            what.push_str(&format!(" ({} of {count} seen)", secs.len()));
        }
        run.add(
            Row::new(5, what, "s", Fig::of(&s))
                .against(format!("the TTL, {ttl} s"), Fig::one(f64::from(ttl)))
                .goal(
                    format!("<= TTL + 0.6 s at p99: {:+.2}", s.p99 - f64::from(ttl)),
                    s.p99 <= limit && secs.len() == count,
                )
                .panel("crash"),
        );
    }
}
