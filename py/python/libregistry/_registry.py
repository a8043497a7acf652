"""The blocking API (:class:`Registry`, :class:`Registration`) and what the
asyncio twins in :mod:`libregistry.aio` share with it: the options, declared
once in :class:`RegistryBase`, and what a handle tells about itself."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypedDict, Union

from . import _dispatch, _native
from ._discovery import ChangeCallback, Instance, Watcher
from ._events import Event, LeaseId

__all__ = ["Registry", "Registration", "RegistryBase", "RegistrationInfo", "Endpoints", "Metadata", "SeedMetadata", "PathLike", "ServiceSpec"]

#: etcd endpoints: one URL, several comma-separated, or a list of URLs.
Endpoints = Union[str, Sequence[str]]


class SeedMetadata(TypedDict, total=False):
    """The seed's settable metadata fields, by wire name."""

    env: str
    region: str
    zone: str
    scheme: str
    weight: Union[int, str]  # 0..=10000
    deployment: str
    appVersion: str
    buildTime: str  # RFC 3339


#: Metadata by wire name: the seed's fields, or any keys (1..=64 of
#: ``[A-Za-z0-9._-]``) with ``str`` values. Type checkers take an ``int``
#: ``weight`` only among the seed's fields: next to others, write ``"100"``.
Metadata = Union[SeedMetadata, Mapping[str, str]]
#: A file path.
PathLike = Union[str, "os.PathLike[str]"]
#: One entry of :meth:`Registry.register_many`.
ServiceSpec = Union[Tuple[str, str], Tuple[str, str, Optional[Metadata]]]


class RegistrationInfo:
    """What a registration handle tells about itself; shared by
    :class:`Registration` and :class:`~libregistry.aio.AsyncRegistration`."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Registration) -> None:
        self._native = native

    @property
    def key(self) -> str:
        """The etcd key, e.g. ``/micro/127.0.0.1:4000``."""
        return self._native.key

    @property
    def name(self) -> str:
        """The service name."""
        return self._native.name

    @property
    def addr(self) -> str:
        """The address, ``host:port``."""
        return self._native.addr

    @property
    def metadata(self) -> Dict[str, str]:
        """The metadata given to ``register`` and ``update``, as text."""
        return self._native.metadata

    @property
    def registered(self) -> bool:
        """False once ``deregister`` was called or the registry closed."""
        return self._native.registered

    @property
    def withdrawn(self) -> bool:
        """Whether it is withdrawn (by ``withdraw`` or a failing health check)."""
        return self._native.withdrawn

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, registered={self.registered})"


class Registration(RegistrationInfo):
    """One registered service. It stays registered, healed by its Registry,
    until :meth:`deregister` or the Registry's :meth:`~Registry.close`;
    dropping this handle does not remove it.

    Used as a context manager, it deregisters on exit.
    """

    __slots__ = ()

    def update(self, changes: Metadata) -> None:
        """Changes metadata entries and rewrites the value in place (the key
        never disappears meanwhile). ``update({"weight": 0})`` drains."""
        self._native.update(changes).wait()

    def withdraw(self) -> None:
        """Takes the key out of etcd but keeps the registration (drain before
        a stop): neither healing nor a health check writes it back until
        :meth:`restore`. Calling it again does nothing."""
        self._native.withdraw().wait()

    def restore(self) -> None:
        """Writes a withdrawn registration back (with any update made meanwhile)."""
        self._native.restore().wait()

    def deregister(self) -> None:
        """Deletes the key (confirmed by etcd) and stops healing it. Calling
        it again does nothing."""
        self._native.deregister().wait()

    def __enter__(self) -> Registration:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.deregister()


class RegistryBase:
    """What :class:`Registry` and :class:`~libregistry.aio.AsyncRegistry`
    share: their options and what they tell about themselves.

    :param endpoints: etcd URLs; ``None``: ``REGISTRY_ENDPOINTS``, else
        ``http://127.0.0.1:2379``.
    :param ttl: lease TTL in seconds, at least 2; ``None``: ``REGISTRY_TTL``,
        else 10. The lease is granted with the first registration: a
        registry that only discovers and watches holds none.
    :param prefix: key prefix (empty, or ``/a/b``); ``None``: ``REGISTRY_PREFIX``.
    :param layout: ``"seed"`` (gRPC-go's etcd resolver reads it), ``"go-zero"``
        or ``"kratos"`` (docs/LAYOUTS.md); ``None``: ``REGISTRY_LAYOUT``, else seed.
    :param request_timeout: deadline of each request to etcd, in seconds
        (default 5).
    :param close_timeout: how long ``close`` (the lease revoke) may take, in
        seconds (default: 2 plus 1 per 10,000 registrations). When it passes,
        the keys still go: etcd removes them when the lease expires.
    :param heal_deleted_keys: put back keys deleted by someone else (default yes).
    :param on_event: called with each :class:`~libregistry.Event` of this
        registry, in order, on the ``libregistry-dispatch`` thread (for an
        ``AsyncRegistry``: in the event loop that connected; it may be a
        coroutine function).
    :param ca_file: PEM file of the CA that signed etcd's certificate, for
        ``https://`` endpoints; ``None``: ``REGISTRY_CA_FILE``.
    :param cert_file: client certificate (PEM) for mutual TLS; ``None``:
        ``REGISTRY_CERT_FILE``.
    :param key_file: its private key (PEM); ``None``: ``REGISTRY_KEY_FILE``.
    :param user: etcd user name (with ``password``); ``None``: ``REGISTRY_USER``.
    :param password: its password; ``None``: ``REGISTRY_PASSWORD``. Never logged.
    """

    __slots__ = ("_native", "_options")

    def __init__(
        self,
        endpoints: Optional[Endpoints] = None,
        ttl: Optional[int] = None,
        *,
        prefix: Optional[str] = None,
        layout: Optional[str] = None,
        request_timeout: Optional[float] = None,
        close_timeout: Optional[float] = None,
        heal_deleted_keys: Optional[bool] = None,
        on_event: Optional[Callable[[Event], Any]] = None,
        ca_file: Optional[PathLike] = None,
        cert_file: Optional[PathLike] = None,
        key_file: Optional[PathLike] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable or None, not {type(on_event).__name__}")
        self._options: Dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}  # as connect takes them
        self._native: Optional[_native.Client] = None
        self._start()

    def _start(self) -> None:
        """Connects now (blocking) or later (asyncio)."""

    def _connected(self) -> _native.Client:
        if self._native is None:
            raise RuntimeError(f"{type(self).__name__} is not connected yet: await connect() first")
        return self._native

    def key_of(self, name: str, addr: str) -> str:
        """The etcd key service ``name`` at ``addr`` is registered under."""
        return self._connected().key_of(name, addr)

    def metrics(self) -> Dict[str, float]:
        """What the registry has done so far, by Prometheus sample name, e.g.
        ``libregistry_registrations`` or ``libregistry_leases_lost_total{reason="expired"}``
        (the names Rust and C use; see ``docs/METRICS.md``)."""
        return dict(self._connected().metrics())

    def metrics_text(self) -> str:
        """The metrics in Prometheus's text format (see also :mod:`libregistry.prometheus`)."""
        return self._connected().metrics_text()

    @property
    def lease_id(self) -> Optional[LeaseId]:
        """The lease currently held (``None`` before the first registration,
        while healing, after close); it prints in hex, as etcdctl does."""
        lease = None if self._native is None else self._native.lease_id
        return None if lease is None else LeaseId(lease)

    @property
    def ttl(self) -> int:
        """The lease TTL in seconds: as etcd granted it, or as asked for
        until the first registration."""
        return self._connected().ttl

    @property
    def endpoints(self) -> List[str]:
        """The etcd endpoints in use."""
        return self._connected().settings()[0]

    @property
    def prefix(self) -> str:
        """The key prefix (empty or ``/...``)."""
        return self._connected().settings()[1]

    @property
    def layout(self) -> str:
        """The key layout: ``seed``, ``go-zero`` or ``kratos``."""
        return self._connected().settings()[2]

    @property
    def request_timeout(self) -> float:
        """The deadline of each request to etcd, in seconds."""
        return self._connected().settings()[3]

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._native is not None and self._native.closed

    def __repr__(self) -> str:
        if self._native is None:
            return f"{type(self).__name__}(not connected)"
        return f"{type(self).__name__}(endpoints={self.endpoints!r}, prefix={self.prefix!r}, lease_id={self.lease_id})"


class Registry(RegistryBase):
    """A connection to etcd holding one lease, shared by all its
    registrations, kept alive and healed in the background until closed.
    Takes the options of :class:`RegistryBase`.

    Connecting blocks (with the GIL released) until etcd answered, at most
    ``request_timeout``.
    """

    __slots__ = ()

    def _start(self) -> None:
        _dispatch.ensure_running()
        self._native = _native.Client.connect(**self._options).wait()

    def register(
        self,
        name: str,
        addr: str,
        metadata: Optional[Metadata] = None,
        *,
        check: Optional[str] = None,
        check_interval: Optional[float] = None,
        check_timeout: Optional[float] = None,
        check_fails: Optional[int] = None,
        check_passes: Optional[int] = None,
    ) -> Registration:
        """Registers service ``name`` at ``addr`` (``host:port``) with
        ``metadata``; returns once etcd confirmed it. Interrupted (Ctrl-C),
        it leaves nothing registered.

        :param check: ``tcp://HOST:PORT`` (connects), ``http://HOST:PORT/PATH``
            (2xx) or ``grpc://HOST:PORT[/SERVICE]`` (``grpc.health.v1``):
            registers after its first pass (at most 60 s), withdraws after
            ``check_fails`` failures in a row (3), writes back after
            ``check_passes`` passes (1); a probe every ``check_interval`` s
            (1), each at most ``check_timeout`` s (1). Events say when and why.
        """
        checks = (check, check_interval, check_timeout, check_fails, check_passes)
        return Registration(self._connected().register(name, addr, metadata, checks).wait())

    def register_many(self, services: Iterable[ServiceSpec]) -> List[Registration]:
        """Registers ``(name, addr)`` or ``(name, addr, metadata)`` entries at
        once, in transactions of at most 128 operations: all or nothing."""
        return [Registration(r) for r in self._connected().register_many(services).wait()]

    def discover(self, name: str) -> List[Instance]:
        """Every instance of service ``name``, read once from etcd, sorted by
        key: the keys under ``{prefix}/{name}/`` (so ``foo`` never sees
        ``foo_other``). Values that are not instances are skipped with a log line."""
        return self._connected().discover(name).wait()

    def watch(
        self,
        name: str,
        *,
        zone: Optional[str] = None,
        region: Optional[str] = None,
        env: Optional[str] = None,
        deployment: Optional[str] = None,
        round_robin: bool = False,
        on_change: Optional[ChangeCallback] = None,
    ) -> Watcher:
        """Starts a :class:`~libregistry.Watcher` on service ``name``; returns
        once its first read is done (at most ``request_timeout``).

        :param zone: prefer instances of this zone when picking; ``None``:
            ``REGISTRY_ZONE``; ``""``: no zone preference.
        :param region: then instances of this region; ``None``:
            ``REGISTRY_REGION``; ``""``: no region preference.
        :param env: pick only instances with this ``env`` (``None``: any).
        :param deployment: pick only instances of this ``deployment`` (canary routing).
        :param round_robin: pick each instance in turn instead of weighted random.
        :param on_change: called with each :class:`~libregistry.Change`, in
            order, on the ``libregistry-dispatch`` thread (then the watcher
            cannot be iterated).
        """
        if on_change is not None:
            _dispatch.ensure_running()
        policy: Dict[str, Any] = dict(zone=zone, region=region, env=env, deployment=deployment, round_robin=round_robin)
        return Watcher(self._connected().watch(name, **policy, on_change=on_change).wait())

    def close(self) -> None:
        """Revokes the lease: every registration of this Registry vanishes at
        once. Bounded even when etcd is down (``close_timeout``); calling it
        again does nothing. Watchers it made keep running until closed themselves."""
        self._connected().close().wait()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()
