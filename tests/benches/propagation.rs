//! Propagation: from `register` returning to a watcher (another client,
//! its own connection, same process) calling back, next to etcd's own put
//! latency, in one run against one etcd. `make bench-propagation`.
//! The timed code is `bench/src/propagation.rs`, shared with `make bench`
//! (which runs the watcher in another process).

#[allow(dead_code)] // make bench uses more of it than this bench does
#[path = "../../bench/src/propagation.rs"]
mod propagation;

use harness::stats::{machine_line, Summary};
use harness::Etcd;
use propagation::WatcherAt;

const SAMPLES: usize = 2000;
const WARMUP: usize = 100;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let p = propagation::measure(&etcd.endpoints(), WARMUP, SAMPLES, WatcherAt::SameProcess);
    let (put, after) = (Summary::of(&p.put_us), Summary::of(&p.after_return_us));
    let end_to_end = Summary::of(&p.end_to_end_us);

    println!("propagation, {SAMPLES} samples, {}", machine_line());
    println!("  {:<44} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    let row = |name: &str, s: &Summary| println!("  {name:<44} {:>10.1} {:>10.1}", s.p50, s.p99);
    row("etcd put, raw etcd-client (baseline)", &put);
    row("libregistry register", &Summary::of(&p.register_us));
    row("register start -> watcher callback", &end_to_end);
    row("register returned -> watcher callback", &after);
    println!(
        "  the watcher adds {:.1} µs at p99 after register returns (goal: at most 200 µs); \
         end-to-end p50 is {:.2}x etcd's put p50",
        after.p99,
        end_to_end.ratio_p50(&put)
    );
}
