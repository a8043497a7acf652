//! Sample statistics shared by the benchmarks (`make bench`, `bench-ffi`,
//! `bench-propagation`): percentiles, summaries, time conversions and a
//! runner that interleaves contenders call by call so that whatever the
//! machine does meanwhile (other builds on a shared box) hits all alike.

use std::time::{Duration, Instant};

/// Nearest-rank percentile of `sorted` (ascending), `p` in `0.0..=1.0`:
/// the sample at rank `round((n - 1) * p)`. NaN for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[rank]
}

/// What a set of samples looks like, in the samples' own unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile (the maximum below 100 samples or so).
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (any order). All NaN for no samples.
    pub fn of(samples: &[f64]) -> Summary {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = if n == 0 {
            f64::NAN
        } else {
            sorted.iter().sum::<f64>() / n as f64
        };
        Summary {
            n,
            p50: percentile(&sorted, 0.5),
            p99: percentile(&sorted, 0.99),
            mean,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `self.p50 / baseline.p50`.
    pub fn ratio_p50(&self, baseline: &Summary) -> f64 {
        self.p50 / baseline.p50
    }
}

/// A duration in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `later - earlier` in microseconds, negative when `later` came first.
pub fn signed_micros(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        micros(later - earlier)
    } else {
        -micros(earlier - later)
    }
}

/// Runs `warmup + samples` rounds; every round calls each contender once
/// with the round's index, in an order shuffled afresh each round (a fixed
/// seed: the same orders every run), and keeps what each returned after the
/// warm-up: `result[c]` holds contender `c`'s `samples` results in order.
/// Shuffling matters: with a fixed or rotating order a contender always
/// follows the same other one and inherits its after-effects (a runtime
/// thread still awake, or parked).
pub fn interleaved<T>(
    warmup: usize,
    samples: usize,
    contenders: &mut [&mut dyn FnMut(usize) -> T],
) -> Vec<Vec<T>> {
    let count = contenders.len();
    let mut results: Vec<Vec<T>> = (0..count).map(|_| Vec::with_capacity(samples)).collect();
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..warmup + samples {
        // Fisher-Yates with xorshift64: no dependency, same orders every run.
        for i in (1..count).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &c in &order {
            let out = (contenders[c])(round);
            if round >= warmup {
                results[c].push(out);
            }
        }
    }
    results
}

/// The machine, for the first line of a benchmark's output: cores and the etcd version.
pub fn machine_line() -> String {
    format!(
        "{} cores, etcd {} on loopback",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        crate::etcd_version()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let sum = Summary::of(&s);
        assert_eq!(sum.p50, 51.0); // rank round(99 * 0.5) = 50 (0-based)
        assert_eq!(sum.p99, 99.0);
        assert_eq!(sum.min, 1.0);
        assert_eq!(sum.max, 100.0);
        assert!(Summary::of(&[]).p50.is_nan());
    }

    #[test]
    fn interleaving_calls_each_once_per_round_and_drops_warmup() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut a = |i: usize| {
            order.borrow_mut().push(('a', i));
            i
        };
        let mut b = |i: usize| {
            order.borrow_mut().push(('b', i));
            i * 10
        };
        let out = interleaved(1, 40, &mut [&mut a, &mut b]);
        assert_eq!(out[0], (1..=40).collect::<Vec<_>>());
        assert_eq!(out[1], (1..=40).map(|i| i * 10).collect::<Vec<_>>());
        let order = order.into_inner();
        assert_eq!(order.len(), 82);
        // Each round holds both, in either order, and both orders occur.
        let firsts: Vec<char> = order.chunks(2).map(|r| r[0].0).collect();
        assert!(order
            .chunks(2)
            .all(|r| r[0].1 == r[1].1 && r[0].0 != r[1].0));
        assert!(firsts.contains(&'a') && firsts.contains(&'b'));
    }
}
