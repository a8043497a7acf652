//! The one error type of the library, with a kind per failure a caller handles differently.

use std::sync::Arc;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. The C ABI and Python map each variant to a
/// status code / exception class of its own, so variants are never merged.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input was rejected before anything was sent; `field` names what was wrong.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The option, argument or metadata key that was wrong.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// No etcd endpoint could be reached (or the cluster has no leader). The
    /// text says it in plain words, naming the endpoint; the technical
    /// cause, when there is one, is the error's source.
    #[error("etcd unavailable: {0}")]
    Unavailable(String, #[source] Option<Cause>),
    /// etcd did not answer within the deadline.
    #[error("{operation} timed out after {}", crate::timefmt::human_duration(.after))]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The TLS connection to etcd failed (unknown CA, refused client certificate...).
    #[error("TLS to etcd failed: {0}")]
    Tls(String),
    /// etcd refused the request for lack of permission, or the credentials.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// This client already holds a registration under this key.
    #[error("already registered: {key}")]
    AlreadyRegistered {
        /// The etcd key.
        key: String,
    },
    /// This registration was deregistered (or never existed in this client).
    #[error("not registered: {key}")]
    NotRegistered {
        /// The etcd key.
        key: String,
    },
    /// Another process wrote this key under its own lease; this client left it alone.
    #[error("key {key} is held by another lease ({other_lease:x}); not overwritten")]
    Conflict {
        /// The etcd key.
        key: String,
        /// The lease of the process that now holds the key.
        other_lease: i64,
    },
    /// The client (or the registration) has been closed.
    #[error("client is closed")]
    Closed,
    /// The client was created in a parent process before `fork()`; make a new one in the child.
    #[error("client was created in process {created_in} before fork(); create a new client in this process ({now_in})")]
    Forked {
        /// PID of the process that created the client.
        created_in: u32,
        /// PID of the calling process.
        now_in: u32,
    },
    /// A blocking call was made from inside an async runtime, where it would deadlock.
    #[error("blocking libregistry call made inside an async runtime; use the async API instead")]
    InsideRuntime,
    /// Any other error reported by etcd.
    #[error("etcd error: {0}")]
    Etcd(String),
}

/// What kind of failure an [`Error`] is, without its details: one entry per
/// way a caller reacts. The C status codes and the Python exception classes
/// are derived from it by exhaustive matches, so a new kind fails to compile
/// until every binding handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// [`Error::Unavailable`].
    Unavailable,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Tls`].
    Tls,
    /// [`Error::PermissionDenied`].
    PermissionDenied,
    /// [`Error::AlreadyRegistered`].
    AlreadyRegistered,
    /// [`Error::NotRegistered`].
    NotRegistered,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::Closed`].
    Closed,
    /// [`Error::Forked`].
    Forked,
    /// [`Error::InsideRuntime`].
    InsideRuntime,
    /// [`Error::Etcd`].
    Etcd,
}

/// The technical cause of an error (the transport's and etcd-client's
/// chain), kept for debug output behind the plain words of the message.
#[derive(Debug, Clone)]
pub struct Cause(Arc<str>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

impl Error {
    /// The kind of this error (what a binding maps it to).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::Unavailable(..) => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Tls(_) => ErrorKind::Tls,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::AlreadyRegistered { .. } => ErrorKind::AlreadyRegistered,
            Error::NotRegistered { .. } => ErrorKind::NotRegistered,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Closed => ErrorKind::Closed,
            Error::Forked { .. } => ErrorKind::Forked,
            Error::InsideRuntime => ErrorKind::InsideRuntime,
            Error::Etcd(_) => ErrorKind::Etcd,
        }
    }

    /// Unavailable, for a reason in plain words.
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable(reason.into(), None)
    }

    /// Unavailable, in plain words, with the technical cause as its source.
    pub(crate) fn unavailable_because(reason: impl Into<String>, cause: impl Into<String>) -> Self {
        let cause: String = cause.into();
        Error::Unavailable(reason.into(), Some(Cause(cause.into())))
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether retrying later might succeed (the cause is etcd's health, not the request).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(..) | Error::Timeout { .. })
    }
}

impl From<etcd_client::Error> for Error {
    fn from(err: etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        use tonic::Code;
        match err {
            E::GRpcStatus(ref status) => {
                // The message alone ("transport error") hides the cause; add the chain.
                let msg = describe(&err);
                if is_tls_failure(&msg) {
                    return Error::Tls(msg);
                }
                match status.code() {
                    Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Aborted => {
                        Error::unavailable_because(in_words(&err, "etcd"), msg)
                    }
                    Code::DeadlineExceeded => Error::Timeout {
                        operation: "etcd request",
                        after: Duration::ZERO,
                    },
                    Code::PermissionDenied | Code::Unauthenticated => Error::PermissionDenied(msg),
                    // etcd says InvalidArgument for these; to a caller they are auth failures.
                    _ if msg.contains("authentication failed")
                        || msg.contains("user name is empty") =>
                    {
                        Error::PermissionDenied(msg)
                    }
                    _ if msg.contains("database space exceeded") => Error::Etcd(format!(
                        "etcd is out of space (its NOSPACE alarm is raised: {msg}); writes fail \
                         until an operator compacts, defragments and disarms the alarm"
                    )),
                    Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                        Error::invalid("request", msg)
                    }
                    _ => Error::Etcd(format!("{}: {msg}", status.code())),
                }
            }
            E::TransportError(_) => {
                let msg = describe(&err);
                if is_tls_failure(&msg) {
                    Error::Tls(msg)
                } else {
                    Error::unavailable_because(in_words(&err, "etcd"), msg)
                }
            }
            E::IoError(e) => Error::unavailable(e.to_string()),
            E::InvalidUri(e) => Error::invalid("endpoints", e.to_string()),
            E::InvalidArgs(e) => Error::invalid("request", e),
            other => Error::Etcd(other.to_string()),
        }
    }
}

/// An etcd-client error from one member: as [`Error::from`], with an
/// unavailable member named in the message.
pub(crate) fn from_member(err: etcd_client::Error, endpoint: &str) -> Error {
    let words = in_words(&err, endpoint);
    match Error::from(err) {
        Error::Unavailable(_, cause) => Error::Unavailable(words, cause),
        other => other,
    }
}

/// A failure to reach or use an etcd member, in plain words naming
/// `endpoint`: "connection to http://127.0.0.1:2379 refused". The technical
/// chain ([`describe`]) goes to debug logs and the error's source.
pub(crate) fn in_words(err: &etcd_client::Error, endpoint: &str) -> String {
    let full = describe(err);
    let m = full.to_ascii_lowercase();
    if m.contains("connection refused") {
        format!("connection to {endpoint} refused")
    } else if m.contains("connection reset") || m.contains("broken pipe") {
        format!("connection to {endpoint} was reset")
    } else if m.contains("no leader") {
        format!("{endpoint} has no leader (it cannot reach a quorum of its cluster)")
    } else if m.contains("dns error") || m.contains("failed to lookup") || m.contains("not known") {
        format!("the host name of {endpoint} does not resolve")
    } else if m.contains("timed out") || m.contains("deadline") || m.contains("elapsed") {
        format!("no answer from {endpoint} in time")
    } else if m.contains("leader changed") {
        format!("{endpoint}: the leader changed under the request; try again")
    } else if m.contains("closed") || m.contains("reading a body") || m.contains("not ready") {
        format!("connection to {endpoint} was closed")
    } else {
        let first = full.split(": ").next().unwrap_or(&full);
        format!("{endpoint}: {first}")
    }
}

/// An etcd-client error in words, with every cause.
pub(crate) fn describe(err: &etcd_client::Error) -> String {
    match err {
        etcd_client::Error::GRpcStatus(status) => match std::error::Error::source(status) {
            Some(cause) => {
                let causes = chain(cause);
                if causes.contains(status.message()) {
                    causes
                } else {
                    format!("{}: {causes}", status.message())
                }
            }
            None => status.message().to_string(),
        },
        etcd_client::Error::TransportError(e) => chain(e),
        other => other.to_string(),
    }
}

/// An error's message followed by its causes.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        cause = c.source();
    }
    msg
}

/// Whether a transport failure came from the TLS handshake (not worth retrying).
pub(crate) fn is_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "unknownissuer", "alert"]
        .iter()
        .any(|w| m.contains(w))
}
