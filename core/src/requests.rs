//! Every request to etcd, with its deadline. A request that could not even
//! be sent (the balancer chose a member whose connection is down) is tried
//! again until the deadline, so the balancer can pick a live member: one
//! dead member of a cluster never fails a call that another could serve.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    GetOptions, GetResponse, KeyValue, LeaseGrantResponse, Txn, TxnResponse, WatchOptions,
    WatchStream,
};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Longest pause between two tries of an unsent request.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A client's connection to etcd in which every request has a deadline
/// and an attempt that provably never left is tried again (see the module docs).
#[derive(Clone)]
pub(crate) struct BoundedEtcd {
    client: etcd_client::Client,
}

impl BoundedEtcd {
    pub(crate) fn new(client: etcd_client::Client) -> Self {
        BoundedEtcd { client }
    }

    /// The underlying client, for streams that manage their own deadlines (keepalive).
    pub(crate) fn raw(&self) -> &etcd_client::Client {
        &self.client
    }

    pub(crate) async fn txn(
        &self,
        op: &'static str,
        after: Duration,
        txn: Txn,
    ) -> Result<TxnResponse> {
        retrying(op, after, || {
            let mut kv = self.client.kv_client();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    pub(crate) async fn get_prefix(
        &self,
        op: &'static str,
        after: Duration,
        prefix: &str,
    ) -> Result<GetResponse> {
        retrying(op, after, || {
            let mut kv = self.client.kv_client();
            let prefix = prefix.to_string();
            async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
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
            let read = retrying(op, left, || {
                let mut kv = self.client.kv_client();
                let (from, options) = (from.clone(), options.clone());
                async move { kv.get(from, Some(options)).await }
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
                let got = retrying(op, after, || {
                    let mut kv = etcd.client.kv_client();
                    let key = key.clone();
                    async move { kv.get(key, None).await }
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
        let result = retrying("connect", after, || {
            let mut kv = self.client.kv_client();
            async move {
                kv.get("health", Some(GetOptions::new().with_count_only()))
                    .await
            }
        })
        .await;
        match result {
            Ok(_) | Err(Error::PermissionDenied(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn grant(&self, after: Duration, ttl_secs: i64) -> Result<LeaseGrantResponse> {
        retrying("lease grant", after, || {
            let mut lease = self.client.lease_client();
            async move { lease.grant(ttl_secs, None).await }
        })
        .await
    }

    /// Revokes `id`; a lease etcd no longer knows counts as revoked.
    pub(crate) async fn revoke(&self, op: &'static str, after: Duration, id: i64) -> Result<()> {
        let result = retrying(op, after, || {
            let mut lease = self.client.lease_client();
            async move { lease.revoke(id).await }
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::Etcd(m)) if is_lease_missing(&m) => Ok(()),
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
        retrying(op, after, || {
            let mut watch = self.client.watch_client();
            let (key, options) = (key.to_string(), options.clone());
            async move { watch.watch(key, Some(options)).await }
        })
        .await
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

/// Runs `attempt` until it succeeds, fails for a reason other than "not
/// sent", or `after` has passed.
pub(crate) async fn retrying<T, F, Fut>(
    op: &'static str,
    after: Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let until = Instant::now() + after;
    let mut pause = Duration::from_millis(10);
    loop {
        let err = match tokio::time::timeout_at(until, attempt()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    operation: op,
                    after,
                })
            }
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
        };
        if !was_not_sent(&err) || Instant::now() + pause >= until {
            return Err(match Error::from(err) {
                Error::Timeout { .. } => Error::Timeout {
                    operation: op,
                    after,
                },
                other => other,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
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

/// Errors that prove the request never reached etcd: no connection could be
/// made, or the connection closed while the request still waited in hyper's
/// queue (hyper cancels those with "connection closed" / "connection was not
/// ready" before writing a byte of them; a member behind a TCP proxy or load
/// balancer that dies looks like this, not like a refused connection).
/// A failed TLS handshake is not among them: trying again cannot help.
fn was_not_sent(err: &etcd_client::Error) -> bool {
    let no_connection = match err {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::Unavailable => s.message().contains("connect"),
            tonic::Code::Cancelled => {
                let why = crate::error::describe(err);
                why.contains("operation was canceled: connection closed")
                    || why.contains("operation was canceled: connection was not ready")
            }
            _ => false,
        },
        _ => false,
    };
    no_connection && !crate::error::is_tls_failure(&crate::error::describe(err))
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
