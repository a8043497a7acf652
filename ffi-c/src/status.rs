//! `registry_status`: one named code per failure a caller handles differently.

/// The result of every fallible call. Numbers are never reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum registry_status {
    /// Success.
    REGISTRY_OK = 0,
    /// An argument was NULL, not UTF-8 or not valid; the message names it.
    REGISTRY_INVALID_ARGUMENT = 1,
    /// No etcd endpoint could be reached, or the cluster has no leader.
    REGISTRY_UNAVAILABLE = 2,
    /// etcd did not answer within the request timeout.
    REGISTRY_TIMEOUT = 3,
    /// etcd refused the request (authentication or role permissions).
    REGISTRY_PERMISSION_DENIED = 4,
    /// This client already holds a registration under this key.
    REGISTRY_ALREADY_REGISTERED = 5,
    /// The registration was deregistered already.
    REGISTRY_NOT_REGISTERED = 6,
    /// Another process holds this key under its own lease; it was left alone.
    REGISTRY_CONFLICT = 7,
    /// The client was freed or closed.
    REGISTRY_CLOSED = 8,
    /// The client was created before fork(); create a new one in this process.
    REGISTRY_FORKED = 9,
    /// A blocking call was made from inside an async runtime thread.
    REGISTRY_INSIDE_RUNTIME = 10,
    /// Any other error reported by etcd.
    REGISTRY_ETCD_ERROR = 11,
    /// A bug inside libregistry was caught at the boundary; the message says where.
    REGISTRY_PANIC = 12,
    /// Nothing matched (for example, no instance qualifies for a pick).
    REGISTRY_NOT_FOUND = 13,
    /// The TLS connection to etcd failed (unknown CA, client certificate refused).
    REGISTRY_TLS_ERROR = 14,
}

impl registry_status {
    /// The status of a core error: one arm per kind, no catch-all, so a new
    /// kind fails to compile until it has a status of its own.
    pub(crate) fn from_error(err: &libregistry::Error) -> Self {
        use libregistry::ErrorKind as K;
        match err.kind() {
            K::InvalidArgument => Self::REGISTRY_INVALID_ARGUMENT,
            K::Unavailable => Self::REGISTRY_UNAVAILABLE,
            K::Timeout => Self::REGISTRY_TIMEOUT,
            K::PermissionDenied => Self::REGISTRY_PERMISSION_DENIED,
            K::AlreadyRegistered => Self::REGISTRY_ALREADY_REGISTERED,
            K::NotRegistered => Self::REGISTRY_NOT_REGISTERED,
            K::Conflict => Self::REGISTRY_CONFLICT,
            K::Closed => Self::REGISTRY_CLOSED,
            K::Forked => Self::REGISTRY_FORKED,
            K::InsideRuntime => Self::REGISTRY_INSIDE_RUNTIME,
            K::Tls => Self::REGISTRY_TLS_ERROR,
            K::Etcd => Self::REGISTRY_ETCD_ERROR,
        }
    }
}
