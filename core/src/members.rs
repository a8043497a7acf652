//! The etcd members a client talks to: one connection each, and which one
//! to use. Requests go to one member while it answers; a member that fails
//! or does not answer in time is passed over for a while (longer each time
//! it fails again), and taken back once that while is over and it answers.
//!
//! One connection per member (rather than one balanced channel over all of
//! them) is what lets the client see which member is at fault: a member
//! restarted and accepting connections before it serves, cut off from its
//! peers, frozen or killed under a request is steered around within a
//! fraction of a deadline instead of being picked again by a balancer that
//! only knows whether a connection is up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::metrics::Recorder;
use crate::options::Resolved;

/// HTTP/2 pings detect a dead connection; etcd refuses pings more often than every 5 s.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a member is passed over after its first failure; doubled for
/// each failure in a row.
const FIRST_AVOIDANCE: Duration = Duration::from_millis(250);
/// The longest a member is passed over.
const MAX_AVOIDANCE: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Health {
    /// Failures in a row.
    strikes: u32,
    /// Passed over until then.
    avoid_until: Option<Instant>,
}

struct Member {
    endpoint: String,
    /// Built on first use: with credentials, building one authenticates.
    client: tokio::sync::Mutex<Option<etcd_client::Client>>,
    health: Mutex<Health>,
}

/// The members of one client.
pub(crate) struct Members {
    list: Vec<Member>,
    options: etcd_client::ConnectOptions,
    /// The member requests go to while it answers.
    current: AtomicUsize,
    /// The client's counters (failovers here; requests and keepalives by
    /// those who hold the members).
    recorder: Arc<Recorder>,
}

impl Members {
    /// The members of `endpoints`. Each client starts on a member of its
    /// own (chosen at random), so that a fleet sharing one endpoint list
    /// spreads over the cluster instead of all talking to its first member.
    pub(crate) fn new(
        endpoints: &[String],
        options: etcd_client::ConnectOptions,
        recorder: Arc<Recorder>,
    ) -> Members {
        let start = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish() as usize % endpoints.len().max(1)
        };
        Members {
            list: endpoints
                .iter()
                .map(|endpoint| Member {
                    endpoint: endpoint.clone(),
                    client: tokio::sync::Mutex::new(None),
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            options,
            current: AtomicUsize::new(start),
            recorder,
        }
    }

    pub(crate) fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn endpoint(&self, member: usize) -> &str {
        &self.list[member].endpoint
    }

    fn health(&self, member: usize) -> std::sync::MutexGuard<'_, Health> {
        self.list[member]
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The member to use now: the current one unless it is passed over,
    /// else the next that is not, else the one passed over the shortest.
    pub(crate) fn pick(&self) -> usize {
        let now = Instant::now();
        let n = self.list.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut soonest = (start, None::<Instant>);
        for step in 0..n {
            let member = (start + step) % n;
            match self.health(member).avoid_until {
                Some(until) if until > now => {
                    if soonest.1.is_none_or(|s| until < s) {
                        soonest = (member, Some(until));
                    }
                }
                _ => {
                    self.current.store(member, Ordering::Relaxed);
                    return member;
                }
            }
        }
        self.current.store(soonest.0, Ordering::Relaxed);
        soonest.0
    }

    /// Whether every member is passed over right now.
    pub(crate) fn all_avoided(&self) -> bool {
        let now = Instant::now();
        (0..self.list.len()).all(|m| self.health(m).avoid_until.is_some_and(|u| u > now))
    }

    /// `member` answered.
    pub(crate) fn answered(&self, member: usize) {
        let mut health = self.health(member);
        if health.strikes > 0 {
            tracing::debug!(endpoint = %self.list[member].endpoint, "member answers again");
        }
        *health = Health::default();
    }

    /// `member` failed or did not answer in time: pass it over for a while.
    pub(crate) fn failed(&self, member: usize, why: &str) {
        Recorder::add(&self.recorder.member_failovers, 1);
        let mut health = self.health(member);
        health.strikes = health.strikes.saturating_add(1);
        let avoid = FIRST_AVOIDANCE
            .saturating_mul(1 << (health.strikes - 1).min(8))
            .min(MAX_AVOIDANCE);
        health.avoid_until = Some(Instant::now() + avoid);
        tracing::debug!(
            endpoint = %self.list[member].endpoint,
            strikes = health.strikes,
            ?avoid,
            why,
            "passing over an etcd member"
        );
    }

    /// The connection to `member`, built (and, with credentials,
    /// authenticated) on first use, within `until`.
    pub(crate) async fn client(
        &self,
        member: usize,
        until: Instant,
    ) -> Result<etcd_client::Client> {
        let mut slot = self.list[member].client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let endpoint = &self.list[member].endpoint;
        let connect = etcd_client::Client::connect([endpoint.as_str()], Some(self.options.clone()));
        let client = match tokio::time::timeout_at(until, connect).await {
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "no answer from {endpoint} while connecting"
                )))
            }
            Ok(result) => result.map_err(|e| crate::error::from_member(e, endpoint))?,
        };
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// How each member's connection is made: deadlines, HTTP/2 pings, only a
/// member with a leader answers, TLS and credentials as configured.
pub(crate) fn connect_options(resolved: &Resolved) -> Result<etcd_client::ConnectOptions> {
    let mut connect = etcd_client::ConnectOptions::new()
        .with_connect_timeout(resolved.request_timeout)
        .with_keep_alive(HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT)
        .with_require_leader(true);
    if let Some(files) = &resolved.tls {
        connect = connect.with_tls(files.load()?);
    }
    if let Some(creds) = &resolved.credentials {
        // etcd's tokens expire: etcd-client authenticates again on
        // "invalid auth token" and retries, for every request and
        // stream it opens (keepalive, watches, healing).
        connect = connect
            .with_user(creds.user.clone(), creds.password.expose())
            .with_auto_token_refresh(true);
    }
    Ok(connect)
}
