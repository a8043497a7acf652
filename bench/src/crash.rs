//! Crash detection: provider processes (tests/bin/provider.rs) SIGKILLed
//! one by one, their kills spread evenly over one TTL so that every phase
//! of the keepalive cycle is sampled; a watcher in this process (another
//! client) times each removal from the kill.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::spawn_provider;
use libregistry::{blocking, Change, Options};

/// Seconds from each SIGKILL to the watcher seeing that provider removed.
pub fn measure(endpoints: &[String], provider_exe: &Path, ttl_secs: u32, count: usize) -> Vec<f64> {
    let name = format!("crash-ttl{ttl_secs}");
    let consumer =
        blocking::Client::connect(Options::new().endpoints(endpoints.to_vec())).expect("consumer");
    let watcher = consumer.watch(&name).expect("watch");
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    watcher
        .on_change(move |change| {
            if let Change::Removed(i) = change {
                let _ = tx.send((i.addr.clone(), Instant::now()));
            }
        })
        .expect("on_change");

    let csv = endpoints.join(",");
    let ttl = ttl_secs.to_string();
    let env = [
        ("REGISTRY_ENDPOINTS", csv.as_str()),
        ("REGISTRY_TTL", ttl.as_str()),
    ];
    let exe = provider_exe.to_str().expect("UTF-8 path");
    let mut providers: Vec<(String, std::process::Child)> = (0..count)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 5000 + i);
            let (child, line) = spawn_provider(exe, &name, &addr, &env);
            assert!(line.starts_with("registered"), "provider said {line:?}");
            (addr, child)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.instances().len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }

    let start = Instant::now();
    let spacing = Duration::from_secs_f64(f64::from(ttl_secs) / count as f64);
    let mut killed: HashMap<String, Instant> = HashMap::new();
    for (k, (addr, child)) in providers.iter_mut().enumerate() {
        let at = start + spacing * k as u32;
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = child.kill();
        killed.insert(addr.clone(), Instant::now());
        let _ = child.wait();
    }
    let mut detection = Vec::with_capacity(count);
    let limit = Instant::now() + Duration::from_secs(u64::from(ttl_secs) * 2 + 5);
    while detection.len() < count {
        let Some(left) = limit.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok((addr, seen)) => {
                if let Some(kill) = killed.get(&addr) {
                    detection.push(seen.duration_since(*kill).as_secs_f64());
                }
            }
            Err(_) => break,
        }
    }
    drop(watcher);
    let _ = consumer.close();
    detection
}
