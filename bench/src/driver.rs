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

use std::process::Command;
use std::time::Duration;

use harness::child::{ChildError, LineChild};
use serde_json::Value;

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
