//! `bench child-core ENDPOINTS`: the Rust core, driven from another process
//! so that Python's benchmarks can set the core's figures next to their own
//! (same etcd, same machine load, calls alternating) without shipping
//! benchmark helpers in the Python package. One JSON command per line on
//! stdin, one JSON answer per line on stdout:
//!
//! - `{"register": [NAME, ADDR, {METADATA}]}` -> `{"ns": N}`: the blocking
//!   register, timed in this process around the call alone;
//! - `{"watch": NAME}` -> `{"ok": true}`: a core watcher whose callback
//!   notes when it saw each instance added;
//! - `{"next": SECONDS}` -> `{"addr": A, "ns": T}` (T on CLOCK_MONOTONIC,
//!   the clock of Python's `time.perf_counter_ns()`) or `{"none": true}`;
//! - `quit`, or the end of input: closes the client and exits.

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libregistry::{blocking, Change, Options, PickPolicy, Service, Watcher};
use serde_json::{json, Value};

/// Now on CLOCK_MONOTONIC, in nanoseconds.
fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn service(args: &Value) -> Result<Service, String> {
    let name = args[0].as_str().ok_or("register: NAME is not a string")?;
    let addr = args[1].as_str().ok_or("register: ADDR is not a string")?;
    let mut service = Service::new(name, addr);
    if let Some(metadata) = args[2].as_object() {
        for (key, value) in metadata {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            service.set(key, text).map_err(|e| e.to_string())?;
        }
    }
    Ok(service)
}

pub fn main(endpoints: &str) {
    let client =
        blocking::Client::connect(Options::new().endpoints_csv(endpoints)).expect("connect");
    let mut watchers: Vec<Watcher> = Vec::new();
    let (added_tx, added_rx) = mpsc::channel::<(String, i64)>();
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "quit" {
            break;
        }
        let command: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let answer = if let Some(args) = command.get("register") {
            match service(args) {
                Ok(service) => {
                    let start = Instant::now();
                    match client.register(&service) {
                        Ok(_) => json!({"ns": start.elapsed().as_nanos() as u64}),
                        Err(e) => json!({"error": e.to_string()}),
                    }
                }
                Err(e) => json!({"error": e}),
            }
        } else if let Some(name) = command.get("watch").and_then(Value::as_str) {
            match client.watch_with(name, PickPolicy::default()) {
                Ok(watcher) => {
                    let tx = added_tx.clone();
                    let callback = watcher.on_change(move |change| {
                        if let Change::Added(i) = change {
                            let _ = tx.send((i.addr.clone(), monotonic_ns()));
                        }
                    });
                    watchers.push(watcher);
                    match callback {
                        Ok(()) => json!({"ok": true}),
                        Err(e) => json!({"error": e.to_string()}),
                    }
                }
                Err(e) => json!({"error": e.to_string()}),
            }
        } else if let Some(secs) = command.get("next").and_then(Value::as_f64) {
            match added_rx.recv_timeout(Duration::from_secs_f64(secs.max(0.0))) {
                Ok((addr, ns)) => json!({"addr": addr, "ns": ns}),
                Err(_) => json!({"none": true}),
            }
        } else {
            json!({"error": format!("unknown command {line:?}")})
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    drop(watchers);
    let _ = client.close();
}
