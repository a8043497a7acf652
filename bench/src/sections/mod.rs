//! One module per section of the benchmark: each runs its measurements
//! (timed by the module of the same name one level up, which other
//! benchmarks include too), prints its rows and keeps them in the run.
//! `main` runs them in order with its plan.

pub mod bulk;
pub mod crash;
pub mod footprint;
pub mod latency;
pub mod peers;
pub mod propagation;
pub mod recovery;
