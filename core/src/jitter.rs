//! Retry pauses spread at random, so that many clients (or watchers) that
//! failed together do not retry together.

use std::time::Duration;

use tokio::time::Instant;

/// Backoff with ±25 % jitter so many clients do not retry in step.
pub(crate) fn jitter(base: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    let unit = (h.finish() % 1000) as f64 / 1000.0; // 0.0..1.0
    base.mul_f64(0.75 + unit * 0.5)
}
