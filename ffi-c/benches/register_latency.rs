//! Register latency through the C ABI next to the Rust core's, same run,
//! same etcd, samples interleaved so drift hits both alike.
//!
//! `make bench-ffi` (release build). Prints p50/p99 of each and what the
//! C ABI adds. The timed code is `bench/src/latency.rs`, shared with
//! `make bench` (which adds the raw floor, the seed's way and the peers).

#[allow(dead_code)] // make bench uses more of it than this bench does
#[path = "../../bench/src/latency.rs"]
mod latency;

use harness::stats::{machine_line, Summary};
use harness::Etcd;
use latency::Way;

const SAMPLES: usize = 2000;
const WARMUP: usize = 200;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let results = latency::measure(&etcd.endpoints(), &[Way::Core, Way::CAbi], WARMUP, SAMPLES);
    let register =
        |w: usize| Summary::of(&results[w].iter().map(|s| s.register_us).collect::<Vec<_>>());
    let (core, c_abi) = (register(0), register(1));

    println!(
        "register latency, {SAMPLES} samples each, {}",
        machine_line()
    );
    println!("  {:<22} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!(
        "  {:<22} {:>10.1} {:>10.1}",
        "Rust core (baseline)", core.p50, core.p99
    );
    println!("  {:<22} {:>10.1} {:>10.1}", "C ABI", c_abi.p50, c_abi.p99);
    println!(
        "  C ABI adds {:+.1} µs at p50 (ratio {:.3}); goal: at most +20 µs",
        c_abi.p50 - core.p50,
        c_abi.ratio_p50(&core)
    );
}
