"""Events: every state change of a Registry, delivered to its ``on_event``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Type

__all__ = ["LeaseId", "Event", "Registered", "LeaseLost", "Restored", "KeyRestored", "Deregistered", "Conflict", "TookOver", "Withdrawn", "Reinstated", "Closed", "Unknown"]


class LeaseId(int):
    """A lease ID: an ``int`` that prints in hex (``repr``, ``str``, an
    f-string without a format), as etcdctl and the library's logs print it
    (``694d7b1d3d0a2c0f``). ``int(lease)`` is the number."""

    __slots__ = ()

    def __repr__(self) -> str:
        return int.__format__(self, "x")

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return int.__format__(self, spec or "x")


_LEASE_FIELDS = ("lease_id", "other_lease", "from_lease")


@dataclass(frozen=True)
class Event:
    """Base class of every event; ``kind`` names the event in snake_case."""

    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class Registered(Event):
    """A registration was confirmed by etcd."""

    kind: ClassVar[str] = "registered"
    key: str


@dataclass(frozen=True)
class LeaseLost(Event):
    """The lease was lost (expired, unknown to etcd, keepalive timed out or
    its stream broke); every registration is being put back."""

    kind: ClassVar[str] = "lease_lost"
    lease_id: int  # a LeaseId
    reason: str


@dataclass(frozen=True)
class Restored(Event):
    """Every registration is back in etcd under the new lease ``lease_id``;
    ``outage`` is the time in seconds from noticing the loss to being back."""

    kind: ClassVar[str] = "restored"
    lease_id: int  # a LeaseId
    registrations: int
    outage: float


@dataclass(frozen=True)
class KeyRestored(Event):
    """A key deleted by someone else was put back."""

    kind: ClassVar[str] = "key_restored"
    key: str


@dataclass(frozen=True)
class Deregistered(Event):
    """A registration was removed by ``deregister()``."""

    kind: ClassVar[str] = "deregistered"
    key: str


@dataclass(frozen=True)
class Conflict(Event):
    """Another process wrote ``key`` under its own lease; it is left to them."""

    kind: ClassVar[str] = "conflict"
    key: str
    other_lease: int  # a LeaseId


@dataclass(frozen=True)
class TookOver(Event):
    """This Registry registered ``key``, which another process's lease
    ``from_lease`` held: the newest registration wins (the other process
    gets a :class:`Conflict`)."""

    kind: ClassVar[str] = "took_over"
    key: str
    from_lease: int  # a LeaseId


@dataclass(frozen=True)
class Withdrawn(Event):
    """``key`` was taken out of etcd but kept (``withdraw()`` or a failing
    health check; ``reason`` says which) until it is reinstated."""

    kind: ClassVar[str] = "withdrawn"
    key: str
    reason: str


@dataclass(frozen=True)
class Reinstated(Event):
    """A withdrawn ``key`` is back in etcd (``reason`` says why)."""

    kind: ClassVar[str] = "reinstated"
    key: str
    reason: str


@dataclass(frozen=True)
class Closed(Event):
    """The Registry was closed and its lease revoked."""

    kind: ClassVar[str] = "closed"


@dataclass(frozen=True)
class Unknown(Event):
    """An event of a newer core that this package does not know by name."""

    kind: ClassVar[str] = "unknown"
    text: str


_BY_KIND: Dict[str, Type[Event]] = {
    cls.kind: cls
    for cls in (Registered, LeaseLost, Restored, KeyRestored, Deregistered, Conflict, TookOver, Withdrawn, Reinstated, Closed, Unknown)
}


def make_event(kind: str, fields: Dict[str, Any]) -> Event:
    """Builds the event class named by ``kind`` from the native fields."""
    cls = _BY_KIND.get(kind)
    if cls is None or cls is Unknown:
        return Unknown(text=f"{kind} {fields}")
    return cls(**{k: LeaseId(v) if k in _LEASE_FIELDS else v for k, v in fields.items()})
