"""libregistry: register services in etcd the way gRPC-go's resolver reads
them, and never lose a registration while the process lives.

>>> import libregistry
>>> with libregistry.Registry(ttl=10) as reg:
...     r = reg.register("micro", "127.0.0.1:4000", {"region": "beijing", "weight": 100})
...     r.key
...     [i.addr for i in reg.discover("micro")]
'/micro/127.0.0.1:4000'
['127.0.0.1:4000']

Consumers read instances once (``discover``) or keep a live cache of them
(``watch``), pick one by weight, zone and region, and follow changes.

The engine is the Rust core shared with the C and Rust APIs; this package
is a thin binding over it. See ``docs/PYTHON.md``.
"""

from __future__ import annotations

from . import aio
from ._discovery import Added, Change, ChangeCallback, Instance, PickPolicy, Removed, Updated, Watcher
from ._events import (Closed, Conflict, Deregistered, Event, KeyRestored, LeaseId, LeaseLost, Registered,
                      Reinstated, Restored, TookOver, Unknown, Withdrawn)  # fmt: skip
from ._errors import (AlreadyRegisteredError, ClosedError, ConflictError, EtcdError, ForkedError,
                      InvalidArgumentError, NotRegisteredError, PermissionDeniedError, RegistryError,
                      RequestTimeoutError, TlsError, UnavailableError)  # fmt: skip
from ._native import CORE_VERSION as __version__
from ._registry import Endpoints, Metadata, PathLike, Registration, Registry, RegistryBase, SeedMetadata, ServiceSpec
from .aio import AsyncRegistration, AsyncRegistry, AsyncWatcher

__all__ = [
    "Registry", "Registration", "RegistryBase", "AsyncRegistry", "AsyncRegistration",
    "Instance", "Watcher", "AsyncWatcher", "PickPolicy", "Change", "Added", "Updated", "Removed", "ChangeCallback",
    "aio", "Endpoints", "Metadata", "SeedMetadata", "PathLike", "ServiceSpec",
    "LeaseId", "Event", "Registered", "LeaseLost", "Restored", "KeyRestored", "Deregistered", "Conflict", "TookOver",
    "Withdrawn", "Reinstated", "Closed", "Unknown",
    "RegistryError", "InvalidArgumentError", "UnavailableError", "RequestTimeoutError", "TlsError",
    "PermissionDeniedError", "AlreadyRegisteredError", "NotRegisteredError", "ConflictError", "ClosedError",
    "ForkedError", "EtcdError",
    "__version__",
]  # fmt: skip
