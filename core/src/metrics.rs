//! What a client has done, counted as it happens (by a recorder shared by
//! the supervisor, keepalive, requests and watchers) and read as a snapshot
//! ([`Metrics`]) with Prometheus names, the same in Rust, C and Python
//! (docs/METRICS.md lists them).
//!
//! Counting is a relaxed atomic add on paths that already wait for etcd:
//! nothing is locked on the hot path and no thread is added.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::events::LostReason;

/// What a request to etcd was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Txn,
    Range,
    LeaseGrant,
    LeaseRevoke,
    LeaseTtl,
    Watch,
}

const KINDS: [(RequestKind, &str); 6] = [
    (RequestKind::Txn, "txn"),
    (RequestKind::Range, "range"),
    (RequestKind::LeaseGrant, "lease_grant"),
    (RequestKind::LeaseRevoke, "lease_revoke"),
    (RequestKind::LeaseTtl, "lease_ttl"),
    (RequestKind::Watch, "watch"),
];

/// How a request ended: answered, refused or failed, or out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Timeout,
}

const OUTCOMES: [(Outcome, &str); 3] = [
    (Outcome::Ok, "ok"),
    (Outcome::Error, "error"),
    (Outcome::Timeout, "timeout"),
];

/// Reasons a lease is lost, as labels.
const LOST_REASONS: [&str; 4] = ["expired", "not_found", "timeout", "stream_broken"];

fn lost_index(reason: &LostReason) -> usize {
    match reason {
        LostReason::Expired => 0,
        LostReason::NotFound => 1,
        LostReason::Timeout => 2,
        LostReason::StreamBroken(_) => 3,
    }
}

/// Upper bounds of the keepalive round-trip buckets, in seconds.
const RTT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The counters of one client.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub registrations: AtomicU64,
    pub lease_grants: AtomicU64,
    leases_lost: [AtomicU64; 4],
    pub keys_restored: AtomicU64,
    pub orphans_removed: AtomicU64,
    pub conflicts: AtomicU64,
    pub heal_attempts: AtomicU64,
    pub heal_failures: AtomicU64,
    pub keepalives_sent: AtomicU64,
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len()],
    rtt_count: AtomicU64,
    rtt_sum_nanos: AtomicU64,
    requests: [[AtomicU64; OUTCOMES.len()]; KINDS.len()],
    pub member_failovers: AtomicU64,
    pub watch_restarts: AtomicU64,
    watchers: AtomicI64,
    outage: Mutex<Outage>,
}

#[derive(Debug, Default)]
struct Outage {
    ended_total: Duration,
    since: Option<Instant>,
}

impl Recorder {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn lease_lost(&self, reason: &LostReason) {
        Recorder::add(&self.leases_lost[lost_index(reason)], 1);
    }

    pub(crate) fn keepalive_answered(&self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        if let Some(i) = RTT_BUCKETS.iter().position(|&le| secs <= le) {
            Recorder::add(&self.rtt_buckets[i], 1);
        }
        Recorder::add(&self.rtt_count, 1);
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        Recorder::add(&self.rtt_sum_nanos, nanos);
    }

    pub(crate) fn request(&self, kind: RequestKind, outcome: Outcome) {
        let k = KINDS.iter().position(|(x, _)| *x == kind).unwrap_or(0);
        let o = OUTCOMES
            .iter()
            .position(|(x, _)| *x == outcome)
            .unwrap_or(0);
        Recorder::add(&self.requests[k][o], 1);
    }

    /// A watcher's task started; it counts until the guard is dropped.
    pub(crate) fn watcher_running(self: &std::sync::Arc<Self>) -> WatcherRunning {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherRunning(self.clone())
    }

    /// Registrations are unreachable in etcd from now (no-op if already so).
    pub(crate) fn outage_began(&self, at: Instant) {
        self.outage().since.get_or_insert(at);
    }

    /// The outage is over.
    pub(crate) fn outage_ended(&self) {
        let mut outage = self.outage();
        if let Some(since) = outage.since.take() {
            outage.ended_total += since.elapsed();
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outage_seconds(&self) -> f64 {
        let outage = self.outage();
        let running = outage.since.map(|s| s.elapsed()).unwrap_or_default();
        (outage.ended_total + running).as_secs_f64()
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut m = Metrics::default();
        m.gauge(
            "libregistry_registrations",
            "Registrations the client holds.",
            get(&self.registrations),
        );
        m.counter(
            "libregistry_lease_grants_total",
            "Leases granted (the first, and one after each loss).",
            get(&self.lease_grants),
        );
        let lost = m.family(
            "libregistry_leases_lost_total",
            "Leases lost, by reason.",
            Kind::Counter,
        );
        for (i, reason) in LOST_REASONS.iter().enumerate() {
            lost.push(Sample::new(
                "libregistry_leases_lost_total",
                &[("reason", reason)],
                get(&self.leases_lost[i]),
            ));
        }
        for (name, help, counter) in [
            (
                "libregistry_keys_restored_total",
                "Keys healing wrote back (missing from etcd, or moved to a new lease).",
                &self.keys_restored,
            ),
            (
                "libregistry_orphan_keys_removed_total",
                "Keys under a lease of ours that no registration holds (deregistered during an outage, late writes), deleted.",
                &self.orphans_removed,
            ),
            (
                "libregistry_conflicts_total",
                "Keys of ours found held by another process's lease, and left to it.",
                &self.conflicts,
            ),
            (
                "libregistry_heal_attempts_total",
                "Healing steps run.",
                &self.heal_attempts,
            ),
            (
                "libregistry_heal_failures_total",
                "Healing steps that failed (retried after a backoff).",
                &self.heal_failures,
            ),
            (
                "libregistry_keepalives_sent_total",
                "Keepalive requests sent (one per client every TTL/3, whatever it registers).",
                &self.keepalives_sent,
            ),
        ] {
            m.counter(name, help, get(counter));
        }
        let rtt = m.family(
            "libregistry_keepalive_rtt_seconds",
            "Time from a keepalive request to etcd's answer.",
            Kind::Histogram,
        );
        let mut below = 0.0;
        for (i, le) in RTT_BUCKETS.iter().enumerate() {
            below += get(&self.rtt_buckets[i]);
            rtt.push(Sample::new(
                "libregistry_keepalive_rtt_seconds_bucket",
                &[("le", &le.to_string())],
                below,
            ));
        }
        let count = get(&self.rtt_count);
        rtt.push(Sample::new(
            "libregistry_keepalive_rtt_seconds_bucket",
            &[("le", "+Inf")],
            count,
        ));
        rtt.push(Sample::new(
            "libregistry_keepalive_rtt_seconds_sum",
            &[],
            get(&self.rtt_sum_nanos) / 1e9,
        ));
        rtt.push(Sample::new(
            "libregistry_keepalive_rtt_seconds_count",
            &[],
            count,
        ));
        let requests = m.family(
            "libregistry_requests_total",
            "Requests to etcd (after any retries on other members), by kind and outcome.",
            Kind::Counter,
        );
        for (k, (_, kind)) in KINDS.iter().enumerate() {
            for (o, (_, outcome)) in OUTCOMES.iter().enumerate() {
                requests.push(Sample::new(
                    "libregistry_requests_total",
                    &[("kind", kind), ("outcome", outcome)],
                    get(&self.requests[k][o]),
                ));
            }
        }
        for (name, help, counter) in [
            (
                "libregistry_member_failovers_total",
                "Times an etcd member failed or stalled and was passed over for another.",
                &self.member_failovers,
            ),
            (
                "libregistry_watch_restarts_total",
                "Times a watch broke and was opened again (after listing again).",
                &self.watch_restarts,
            ),
        ] {
            m.counter(name, help, get(counter));
        }
        m.gauge(
            "libregistry_watchers",
            "Watchers running.",
            self.watchers.load(Ordering::Relaxed) as f64,
        );
        m.counter(
            "libregistry_outage_seconds_total",
            "Time the client's registrations were not known to be in etcd (lease lost or own watch broken).",
            self.outage_seconds(),
        );
        m
    }
}

/// Counts a running watcher until dropped.
pub(crate) struct WatcherRunning(std::sync::Arc<Recorder>);

impl Drop for WatcherRunning {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A metric's type, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (while the client lives).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le=...}`), `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One value: the sample's name (a histogram's carry `_bucket`, `_sum`,
/// `_count`), its labels, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name, e.g. `libregistry_keepalive_rtt_seconds_bucket`.
    pub name: &'static str,
    /// Label names and values, in order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    fn new(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Sample {
        Sample {
            name,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        }
    }

    /// The sample as Prometheus writes it before its value, e.g.
    /// `libregistry_leases_lost_total{reason="expired"}`: the key of
    /// [`Metrics::get`] and of Python's `Registry.metrics()`.
    pub fn id(&self) -> String {
        if self.labels.is_empty() {
            return self.name.to_string();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// A metric: its name, help text, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric's name, e.g. `libregistry_leases_lost_total`.
    pub name: &'static str,
    /// What it counts, one line.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its samples: one per label set (a histogram's buckets, sum and count).
    pub samples: Vec<Sample>,
}

/// A snapshot of a client's metrics ([`crate::Client::metrics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Every metric, in a fixed order.
    pub families: Vec<Family>,
}

impl Metrics {
    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> &mut Vec<Sample> {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        &mut self.families.last_mut().expect("just pushed").samples
    }

    fn counter(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.family(name, help, Kind::Counter)
            .push(Sample::new(name, &[], value));
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.family(name, help, Kind::Gauge)
            .push(Sample::new(name, &[], value));
    }

    /// Every sample, in order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The value of the sample `id` (as [`Sample::id`] writes it).
    pub fn get(&self, id: &str) -> Option<f64> {
        self.samples().find(|s| s.id() == id).map(|s| s.value)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for s in &f.samples {
                let _ = writeln!(out, "{} {}", s.id(), s.value);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let r = Recorder::default();
        for ms in [1, 3, 3, 40, 7000] {
            r.keepalive_answered(Duration::from_millis(ms));
        }
        let m = r.snapshot();
        let bucket = |le: &str| {
            m.get(&format!(
                "libregistry_keepalive_rtt_seconds_bucket{{le=\"{le}\"}}"
            ))
            .unwrap()
        };
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.005"), 3.0);
        assert_eq!(bucket("0.05"), 4.0);
        assert_eq!(bucket("5"), 4.0);
        assert_eq!(bucket("+Inf"), 5.0);
        assert_eq!(m.get("libregistry_keepalive_rtt_seconds_count"), Some(5.0));
        let sum = m.get("libregistry_keepalive_rtt_seconds_sum").unwrap();
        assert!((sum - 7.047).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn text_has_help_and_type_once_per_family_and_labelled_samples() {
        let r = Recorder::default();
        r.lease_lost(&LostReason::NotFound);
        r.request(RequestKind::Txn, Outcome::Timeout);
        let text = r.snapshot().to_text();
        assert_eq!(
            text.matches("# TYPE libregistry_leases_lost_total counter\n")
                .count(),
            1
        );
        assert!(text.contains("libregistry_leases_lost_total{reason=\"not_found\"} 1\n"));
        assert!(text.contains("libregistry_leases_lost_total{reason=\"expired\"} 0\n"));
        assert!(text.contains("libregistry_requests_total{kind=\"txn\",outcome=\"timeout\"} 1\n"));
    }

    #[test]
    fn outage_seconds_grow_while_it_lasts_and_stay_after() {
        let r = Recorder::default();
        r.outage_began(Instant::now() - Duration::from_secs(2));
        let during = r.outage_seconds();
        assert!(during >= 2.0, "{during}");
        r.outage_ended();
        let after = r.outage_seconds();
        assert!(after >= during);
        r.outage_ended(); // no outage: nothing added
        assert_eq!(r.outage_seconds(), after);
    }
}
