//! Every request to etcd, with its deadline, sent to one member at a time
//! ([`crate::members`]). Every request the library sends is safe to repeat:
//! puts carry the whole value under our lease, deletes and updates are
//! guarded by compares, reads are reads, and a lease granted twice costs
//! nothing lasting (the spare one holds no key and expires). So a request
//! whose member fails (connection refused or reset, no leader) or does not
//! answer within a third of the deadline is sent to another member, until
//! one answers or the deadline passes: one member that is down, frozen,
//! cut off from its peers or restarted before it serves never costs a call
//! its deadline while another can answer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    GetOptions, GetResponse, KeyValue, LeaseGrantResponse, Txn, TxnResponse, WatchOptions,
    WatchStream,
};
use tokio::time::Instant;

use crate::error::{from_member, Error, Result};
use crate::members::Members;
use crate::metrics::{Outcome, Recorder, RequestKind};

/// Longest pause between two tries while every member is passed over.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A member gets at least this long to answer before another is tried.
const MIN_PATIENCE: Duration = Duration::from_millis(250);

/// A client's connection to etcd: its members, and requests that each have
/// a deadline and move to another member when theirs fails or stalls.
#[derive(Clone)]
pub(crate) struct BoundedEtcd {
    members: Arc<Members>,
}

impl BoundedEtcd {
    pub(crate) fn new(members: Members) -> Self {
        BoundedEtcd {
            members: Arc::new(members),
        }
    }

    /// The members, for streams that manage their own deadlines (keepalive).
    pub(crate) fn members(&self) -> &Arc<Members> {
        &self.members
    }

    /// The client's counters.
    pub(crate) fn recorder(&self) -> &Arc<Recorder> {
        self.members.recorder()
    }

    pub(crate) async fn txn(
        &self,
        op: &'static str,
        after: Duration,
        txn: Txn,
    ) -> Result<TxnResponse> {
        self.request(RequestKind::Txn, op, after, |client| {
            let txn = txn.clone();
            async move { client.kv_client().txn(txn).await }
        })
        .await
    }

    pub(crate) async fn get_prefix(
        &self,
        op: &'static str,
        after: Duration,
        prefix: &str,
    ) -> Result<GetResponse> {
        self.request(RequestKind::Range, op, after, |client| {
            let prefix = prefix.to_string();
            async move {
                let options = GetOptions::new().with_prefix();
                client.kv_client().get(prefix, Some(options)).await
            }
        })
        .await
    }

    /// Reads every key under `prefix` (key, lease, revisions and value),
    /// `page` keys per request, all pages at the revision of the first. Not
    /// keys-only: etcd 3.7 answers a keys-only read from its index, which
    /// has no lease (every key comes back with lease 0; etcd-io/etcd#22209),
    /// and the lease is what this read is for. A page etcd's answer is too
    /// large for (big values) is read again in halves.
    pub(crate) async fn list_keys(
        &self,
        op: &'static str,
        after: Duration,
        prefix: &str,
        page: i64,
    ) -> Result<Vec<KeyValue>> {
        let until = Instant::now() + after;
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut page = page.max(1);
        let mut found = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(page);
            if revision != 0 {
                options = options.with_revision(revision);
            }
            let left = until.saturating_duration_since(Instant::now());
            let read = self
                .request(RequestKind::Range, op, left, |client| {
                    let (from, options) = (from.clone(), options.clone());
                    async move { client.kv_client().get(from, Some(options)).await }
                })
                .await;
            let mut resp = match read {
                Err(Error::Etcd(why)) if page > 1 && is_too_large(&why) => {
                    page /= 2;
                    continue;
                }
                other => other?,
            };
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            match kvs.last() {
                Some(last) if more => {
                    // The next page starts just after the last key of this one.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => {
                    found.extend(kvs);
                    return Ok(found);
                }
            }
            found.extend(kvs);
        }
    }

    /// Reads single keys, all at once; returns each key's value, if any.
    pub(crate) async fn get_keys(
        &self,
        op: &'static str,
        after: Duration,
        keys: &[String],
    ) -> Result<Vec<Option<KeyValue>>> {
        let mut reads = tokio::task::JoinSet::new();
        for (index, key) in keys.iter().enumerate() {
            let etcd = self.clone();
            let key = key.clone();
            reads.spawn(async move {
                let got = etcd
                    .request(RequestKind::Range, op, after, |client| {
                        let key = key.clone();
                        async move { client.kv_client().get(key, None).await }
                    })
                    .await;
                (index, got)
            });
        }
        let mut found = vec![None; keys.len()];
        while let Some(joined) = reads.join_next().await {
            let (index, got) = joined.map_err(|e| Error::Etcd(format!("read task failed: {e}")))?;
            found[index] = got?.take_kvs().into_iter().next();
        }
        Ok(found)
    }

    /// Checks that etcd answers a linearizable read (so a leader exists)
    /// within `after`, the way `etcdctl endpoint health` does: a refusal to
    /// read the key still proves the cluster answers.
    pub(crate) async fn probe(&self, after: Duration) -> Result<()> {
        let result = self
            .request(RequestKind::Range, "connect", after, |client| async move {
                let options = GetOptions::new().with_count_only();
                client.kv_client().get("health", Some(options)).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // A role that may not read the key: etcd answered. Refused
            // credentials are not that.
            Err(Error::PermissionDenied(why)) if !is_auth_failure(&why) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn grant(&self, after: Duration, ttl_secs: i64) -> Result<LeaseGrantResponse> {
        self.request(
            RequestKind::LeaseGrant,
            "lease grant",
            after,
            |client| async move { client.lease_client().grant(ttl_secs, None).await },
        )
        .await
    }

    /// Revokes `id`; a lease etcd no longer knows counts as revoked.
    pub(crate) async fn revoke(&self, op: &'static str, after: Duration, id: i64) -> Result<()> {
        let result = self
            .request(RequestKind::LeaseRevoke, op, after, |client| async move {
                client.lease_client().revoke(id).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::Etcd(m)) if is_lease_missing(&m) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether etcd still holds lease `id` (a wiped etcd does not).
    pub(crate) async fn lease_alive(&self, after: Duration, id: i64) -> Result<bool> {
        let asked = self
            .request(
                RequestKind::LeaseTtl,
                "checking the lease",
                after,
                |client| async move { client.lease_client().time_to_live(id, None).await },
            )
            .await;
        match asked {
            Ok(answer) => Ok(answer.ttl() > 0),
            Err(Error::Etcd(m)) if is_lease_missing(&m) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn watch(
        &self,
        op: &'static str,
        after: Duration,
        key: &str,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        self.request(RequestKind::Watch, op, after, |client| {
            let (key, options) = (key.to_string(), options.clone());
            async move { client.watch_client().watch(key, Some(options)).await }
        })
        .await
    }

    /// Runs `attempt` as [`BoundedEtcd::try_members`] does, and counts
    /// how it ended under `kind`.
    pub(crate) async fn request<T, F, Fut>(
        &self,
        kind: RequestKind,
        op: &'static str,
        after: Duration,
        attempt: F,
    ) -> Result<T>
    where
        F: FnMut(etcd_client::Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let result = self.try_members(op, after, attempt).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(Error::Timeout { .. }) => Outcome::Timeout,
            Err(_) => Outcome::Error,
        };
        self.recorder().request(kind, outcome);
        result
    }

    /// Runs `attempt` on a member until one answers (an answer may be an
    /// error of etcd's, such as permission denied) or `after` has passed.
    /// A member that fails, or does not answer within a third of `after`
    /// while another member could, is passed over and the attempt made on
    /// another.
    async fn try_members<T, F, Fut>(
        &self,
        op: &'static str,
        after: Duration,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(etcd_client::Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let until = Instant::now() + after;
        let timed_out = || Error::Timeout {
            operation: op,
            after,
        };
        let mut pause = Duration::from_millis(10);
        // Why the last try failed, when a member said so (refused, reset, no
        // leader): at the deadline that says more than "timed out" does.
        let mut last_refusal: Option<Error> = None;
        loop {
            let member = self.members.pick();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last_refusal.unwrap_or_else(timed_out));
            }
            let patience = if self.members.len() > 1 {
                (after / 3).max(MIN_PATIENCE).min(left)
            } else {
                left
            };
            let client = match self.members.client(member, until).await {
                Ok(client) => client,
                Err(e) if e.is_transient() => {
                    self.members.failed(member, &e.to_string());
                    if Instant::now() + pause >= until {
                        return Err(e);
                    }
                    last_refusal = Some(e);
                    if self.members.all_avoided() {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let err = match tokio::time::timeout(patience, attempt(client)).await {
                Ok(Ok(value)) => {
                    self.members.answered(member);
                    return Ok(value);
                }
                // Out of time: the member's last refusal, if it refused before, says more.
                Err(_) if Instant::now() >= until => {
                    return Err(last_refusal.unwrap_or_else(timed_out))
                }
                Err(_) => {
                    self.members.failed(member, "no answer in time");
                    last_refusal = None;
                    continue;
                }
                Ok(Err(err)) => err,
            };
            let endpoint = self.members.endpoint(member);
            if !is_member_trouble(&err) {
                return Err(map_timeout(from_member(err, endpoint), op, after));
            }
            self.members.failed(member, &crate::error::describe(&err));
            let failure = map_timeout(from_member(err, endpoint), op, after);
            // A refusal seen before says more than a timeout (a channel to a
            // member that refused may wait out its deadline the next time).
            let failure = match (failure, last_refusal.take()) {
                (Error::Timeout { .. }, Some(refusal)) => refusal,
                (failure, _) => failure,
            };
            if Instant::now() + pause >= until {
                return Err(failure);
            }
            if !matches!(failure, Error::Timeout { .. }) {
                last_refusal = Some(failure);
            }
            if self.members.all_avoided() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's convention:
/// the prefix with its last byte below 0xff increased; "\0" for everything).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether an answer was refused for its size (gRPC's decoding limit).
fn is_too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("message length too large")
        || m.contains("resourceexhausted")
        || m.contains("resource exhausted")
}

/// Whether etcd reported that a lease does not exist (expired, revoked, wiped).
pub(crate) fn is_lease_missing(message: &str) -> bool {
    message.contains("lease not found")
}

/// Runs one attempt of `fut` with a deadline (for what must not be repeated).
pub(crate) async fn bounded<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Err(_) => Err(Error::Timeout {
            operation: op,
            after,
        }),
        Ok(result) => result.map_err(Error::from),
    }
}

/// Whether a failure is the member's (its connection, its view of the
/// cluster) rather than an answer about the request itself: worth trying
/// another member. A failed TLS handshake is not: another cannot help.
pub(crate) fn is_member_trouble(err: &etcd_client::Error) -> bool {
    use tonic::Code;
    let member = match err {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable
                | Code::Cancelled
                | Code::Unknown
                | Code::DeadlineExceeded
                | Code::Aborted
        ),
        _ => false,
    };
    member && !crate::error::is_tls_failure(&crate::error::describe(err))
}

/// Whether etcd refused the credentials themselves (not a permission).
fn is_auth_failure(message: &str) -> bool {
    message.contains("authentication failed") || message.contains("user name is empty")
}

/// A timeout reported by etcd itself, renamed for what was being done.
fn map_timeout(err: Error, op: &'static str, after: Duration) -> Error {
    match err {
        Error::Timeout { .. } => Error::Timeout {
            operation: op,
            after,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end("/micro/svc/"), b"/micro/svc0".to_vec());
        assert_eq!(prefix_end("/é"), vec![b'/', 0xc3, 0xaa]);
        assert_eq!(prefix_end(""), vec![0]);
    }
}
