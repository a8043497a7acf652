"""The exception tree rooted at :class:`RegistryError`: one class per
failure a caller handles differently. The native module raises them by the
kind of the core's error (one table, ``py/src/errors.rs``)."""

from __future__ import annotations

__all__ = [
    "RegistryError", "InvalidArgumentError", "UnavailableError", "RequestTimeoutError", "TlsError",
    "PermissionDeniedError", "AlreadyRegisteredError", "NotRegisteredError", "ConflictError", "ClosedError",
    "ForkedError", "EtcdError",
]  # fmt: skip


class RegistryError(Exception):
    """Root of every error libregistry raises."""


class InvalidArgumentError(RegistryError, ValueError):
    """Input was refused before anything was sent; ``field`` names what was wrong, ``reason`` why."""

    field: str
    reason: str


class UnavailableError(RegistryError):
    """No etcd endpoint could be reached, or the cluster has no leader."""


class RequestTimeoutError(RegistryError):
    """etcd did not answer within the deadline; ``operation`` and ``after`` (seconds) say which."""

    operation: str
    after: float


class TlsError(RegistryError):
    """The TLS connection to etcd failed (unknown CA, refused client certificate, ...)."""


class PermissionDeniedError(RegistryError):
    """etcd refused the request for lack of permission, or refused the credentials."""


class AlreadyRegisteredError(RegistryError):
    """This registry already holds a registration under ``key``."""

    key: str


class NotRegisteredError(RegistryError):
    """The registration under ``key`` was deregistered."""

    key: str


class ConflictError(RegistryError):
    """Another process holds ``key`` under its own lease (``other_lease``); it was left alone."""

    key: str
    other_lease: int  # a LeaseId: prints in hex


class ClosedError(RegistryError):
    """The registry (or watcher) was closed; make a new one."""


class ForkedError(RegistryError):
    """Made in process ``created_in`` before ``fork()``; make a new one in this process (``now_in``)."""

    created_in: int
    now_in: int


class EtcdError(RegistryError):
    """Any other error reported by etcd."""


# Shown as `libregistry.ClosedError` in tracebacks and reprs, where users import them from.
for _name in __all__:
    globals()[_name].__module__ = "libregistry"
