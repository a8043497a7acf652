//! The line protocol between the benchmark and the processes it measures
//! (the Python and Go drivers under bench/python and bench/go, and this
//! binary's own `child` mode): one command per line on the driver's
//! standard input, one JSON object per line on its standard output.
//!
//! | command | answer |
//! |---|---|
//! | `info` | `{"client": NAME, "version": V}` |
//! | `latency N` | `{"register_us": [..], "deregister_us": [..]}` (N each; the Python binding adds `core_register_us`) |
//! | `bulk N` | `{"secs": S}`: N registrations from one process, cleaned up untimed |
//! | `hold N` | `{"threads": T, "rss_kb": R, "threads_before": T0, "rss_kb_before": R0}` with N registrations kept alive |
//! | `release` | `{}` once what `hold` registered is gone |
//! | `quit` | exits |
//!
//! Every answer is awaited with a deadline; other output lines are ignored.
//! The lines travel over the harness's child protocol (`harness::child`).
//! Also here: starting a Python driver, and latency blocks of a driver
//! alternating with the floor's (sections 1 and 8).

use std::process::Command;
use std::time::Duration;

use harness::child::{ChildError, LineChild};
use harness::workspace_root;
use serde_json::Value;

use crate::latency::{self, Sample};

/// A running driver process.
pub struct Driver {
    label: String,
    child: LineChild,
}

impl Driver {
    /// Starts `cmd` with piped standard input and output.
    pub fn spawn(label: &str, mut cmd: Command) -> Result<Driver, String> {
        let child = LineChild::spawn(&mut cmd, |line| line.starts_with('{'))
            .map_err(|e| format!("cannot start {label}: {e}"))?;
        Ok(Driver {
            label: label.to_string(),
            child,
        })
    }

    /// Sends one command and waits at most `limit` for its answer.
    pub fn ask(&mut self, command: &str, limit: Duration) -> Result<Value, String> {
        let line = self.child.ask(command, limit).map_err(|e| match e {
            ChildError::Send(e) => format!("{}: cannot send `{command}`: {e}", self.label),
            e => format!(
                "{}: no answer to `{command}` within {limit:?} ({e})",
                self.label
            ),
        })?;
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}: bad answer to `{command}`: {e}", self.label))?;
        if let Some(err) = value.get("error") {
            return Err(format!("{}: `{command}` failed: {err}", self.label));
        }
        Ok(value)
    }

    /// The driver's process ID.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

impl Drop for Driver {
    /// `quit`, 2 s to exit, then SIGKILL.
    fn drop(&mut self) {
        self.child.stop("quit", Duration::from_secs(2));
    }
}

/// How many driver blocks, and how large.
#[derive(Clone, Copy)]
pub struct BlockSizes {
    /// Rounds kept (one warm-up round comes first).
    pub rounds: usize,
    /// Registrations per block, the driver's (`latency N`) and the floor's.
    pub size: usize,
}

/// What a driver measured in blocks, with the floor's blocks in between.
#[derive(Default)]
pub struct Blocks {
    /// The driver's register times, µs.
    pub register: Vec<f64>,
    /// Its deregister times, µs.
    pub deregister: Vec<f64>,
    /// The Rust core's register times in the same process, µs (the Python
    /// binding's driver only).
    pub core_register: Vec<f64>,
    /// The floor's blocks: raw put and delete.
    pub floor: Vec<Sample>,
}

/// Rounds of one driver block (`latency N`) then one floor block of N raw
/// put+delete, after one warm-up round of each.
pub fn blocks(
    rt: &tokio::runtime::Runtime,
    endpoints: &[String],
    driver: &mut Driver,
    sizes: BlockSizes,
) -> Blocks {
    let mut raw = rt
        .block_on(etcd_client::Client::connect(endpoints, None))
        .expect("raw etcd-client");
    let value = vec![b'x'; 330];
    let mut out = Blocks::default();
    for round in 0..=sizes.rounds {
        let ans = driver
            .ask(&format!("latency {}", sizes.size), Duration::from_secs(120))
            .expect("driver latency block");
        let floor: Vec<Sample> = (0..sizes.size)
            .map(|i| latency::raw_put_delete(rt, &mut raw, &format!("/bench-floor/{i}"), &value))
            .collect();
        if round > 0 {
            out.register.extend(numbers(&ans, "register_us"));
            out.deregister.extend(numbers(&ans, "deregister_us"));
            out.core_register.extend(numbers(&ans, "core_register_us"));
            out.floor.extend(floor);
        }
    }
    out
}

/// Starts the Python driver `script` (under bench/python) with the
/// interpreter `var` names, on `endpoints`.
pub fn python_driver(var: &str, script: &str, endpoints: &[String]) -> Result<Driver, String> {
    let python =
        std::env::var(var).map_err(|_| format!("{var} not set (scripts/bench.sh sets it)"))?;
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("bench/python").join(script))
        .arg(endpoints.join(","));
    Driver::spawn(script, cmd)
}

/// `field` of `value` as numbers (missing: empty).
pub fn numbers(value: &Value, field: &str) -> Vec<f64> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// `field` of `value` as one number (missing: NaN).
pub fn number(value: &Value, field: &str) -> f64 {
    value.get(field).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// This process's thread count and resident memory (KiB), from /proc.
pub fn threads_and_rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}
