//! What etcd says about its own load, read off each member's `/metrics`:
//! keepalive messages received, CPU seconds, resident memory, keys written.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One member's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// LeaseKeepAlive messages its gRPC server received.
    pub keepalives: f64,
    /// CPU seconds the process used.
    pub cpu_secs: f64,
    /// Resident memory, bytes.
    pub rss: f64,
    /// Keys written (puts, in transactions too).
    pub puts: f64,
}

/// The member's `/metrics` page (`None` when it does not answer in 5 s).
fn page(port: u16) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The sum of every sample of metric `name` whose labels contain `having`.
fn sum(page: &str, name: &str, having: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .contains(having)
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// The member on `port` now.
pub fn read(port: u16) -> Option<Reading> {
    let p = page(port)?;
    Some(Reading {
        keepalives: sum(
            &p,
            "grpc_server_msg_received_total",
            "grpc_method=\"LeaseKeepAlive\"",
        ),
        cpu_secs: sum(&p, "process_cpu_seconds_total", ""),
        rss: sum(&p, "process_resident_memory_bytes", ""),
        // 3.5 and later name it etcd_mvcc_put_total; 3.4 etcd_debugging_mvcc_put_total.
        puts: sum(&p, "etcd_mvcc_put_total", "") + sum(&p, "etcd_debugging_mvcc_put_total", ""),
    })
}

/// Every member's reading (a member that does not answer reads as zeros).
pub fn read_all(ports: &[u16]) -> Vec<Reading> {
    ports.iter().map(|&p| read(p).unwrap_or_default()).collect()
}

/// Samples the keys written every 250 ms in the background and keeps the
/// highest rate seen (the busiest member's: every member applies every write).
pub struct PeakWrites {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl PeakWrites {
    pub fn start(ports: Vec<u16>) -> PeakWrites {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            let mut last: Vec<Option<(Instant, f64)>> = vec![None; ports.len()];
            while !stopping.load(Ordering::Relaxed) {
                for (i, &port) in ports.iter().enumerate() {
                    let Some(now) = read(port) else {
                        last[i] = None; // restarted: its counter starts again
                        continue;
                    };
                    let at = Instant::now();
                    if let Some((then, puts)) = last[i] {
                        let secs = at.duration_since(then).as_secs_f64();
                        if now.puts >= puts && secs > 0.0 {
                            peak = peak.max((now.puts - puts) / secs);
                        }
                    }
                    last[i] = Some((at, now.puts));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            peak
        });
        PeakWrites { stop, thread }
    }

    /// Stops sampling; the peak rate, keys per second.
    pub fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::sum;

    #[test]
    fn sums_the_samples_whose_labels_match() {
        let page = "# HELP x y\n\
            grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_type=\"bidi_stream\"} 7\n\
            grpc_server_msg_received_total{grpc_method=\"Range\",grpc_type=\"unary\"} 100\n\
            grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_type=\"other\"} 3\n\
            process_cpu_seconds_total 1.5\n";
        let ka = sum(
            page,
            "grpc_server_msg_received_total",
            "grpc_method=\"LeaseKeepAlive\"",
        );
        assert_eq!(ka, 10.0);
        assert_eq!(sum(page, "process_cpu_seconds_total", ""), 1.5);
        assert_eq!(
            sum(page, "process_cpu_seconds", ""),
            0.0,
            "a prefix is no match"
        );
    }
}
