"""The asyncio API: :class:`AsyncRegistry` and :class:`AsyncRegistration`,
the same methods as the blocking ones, as coroutines. They never block the
event loop: the work runs on the library's own runtime and its result comes
back through ``loop.call_soon_threadsafe``.

A cancelled ``register`` leaves nothing registered; a cancelled ``connect``
leaves no lease behind.
"""

from __future__ import annotations

import asyncio
import inspect
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Optional, Type

from . import _dispatch, _native
from ._events import Event
from ._registry import Endpoints, Metadata, PathLike, RegistrationInfo, ServiceSpec

__all__ = ["AsyncRegistry", "AsyncRegistration"]


class AsyncRegistration(RegistrationInfo):
    """One registered service; see :class:`libregistry.Registration`.
    ``async with`` deregisters on exit."""

    __slots__ = ()

    async def update(self, changes: Metadata) -> None:
        """Changes metadata entries and rewrites the value in place."""
        await self._native.update_async(changes)

    async def deregister(self) -> None:
        """Deletes the key; calling it again does nothing."""
        await self._native.deregister_async()

    async def __aenter__(self) -> AsyncRegistration:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.deregister()


def _in_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[Event], Any]
) -> Callable[[Event], None]:
    """Wraps ``callback`` so that it runs in ``loop``; a coroutine it
    returns is scheduled as a task."""

    def call(event: Event) -> None:
        result = callback(event)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)

    def deliver(event: Event) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(call, event)

    return deliver


class AsyncRegistry:
    """asyncio twin of :class:`libregistry.Registry`, with the same
    arguments (TLS and credentials included). Creating it does no I/O: ``await registry.connect()`` or
    ``async with AsyncRegistry(...) as registry`` connects (and the first
    ``register`` connects if neither was done).

    ``on_event`` is called in the event loop that connected; it may be a
    coroutine function.
    """

    __slots__ = ("_options", "_on_event", "_native", "_connecting")

    def __init__(
        self,
        endpoints: Optional[Endpoints] = None,
        ttl: Optional[int] = None,
        *,
        prefix: Optional[str] = None,
        request_timeout: Optional[float] = None,
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
        self._options: Dict[str, Any] = {
            "endpoints": endpoints,
            "ttl": ttl,
            "prefix": prefix,
            "request_timeout": request_timeout,
            "heal_deleted_keys": heal_deleted_keys,
            "ca_file": ca_file,
            "cert_file": cert_file,
            "key_file": key_file,
            "user": user,
            "password": password,
        }
        self._on_event = on_event
        self._native: Optional[_native.Client] = None
        self._connecting: Optional[asyncio.Future[_native.Client]] = None

    async def connect(self) -> AsyncRegistry:
        """Connects and grants the lease (once); returns ``self``."""
        await self._client()
        return self

    async def _client(self) -> _native.Client:
        if self._native is not None:
            return self._native
        if self._connecting is None:
            loop = asyncio.get_running_loop()
            callback = None if self._on_event is None else _in_loop(loop, self._on_event)
            if callback is not None:
                _dispatch.ensure_running()
            self._connecting = _native.Client.connect_async(**self._options, on_event=callback)
        connecting = self._connecting
        try:
            # Shielded: one caller's cancellation must not cancel the others' connect.
            self._native = await asyncio.shield(connecting)
        except BaseException:
            if connecting.done() and (connecting.cancelled() or connecting.exception() is not None):
                self._connecting = None  # failed: the next call tries again
            raise
        return self._native

    async def register(
        self, name: str, addr: str, metadata: Optional[Metadata] = None
    ) -> AsyncRegistration:
        """Registers service ``name`` at ``addr``; see :meth:`libregistry.Registry.register`."""
        client = await self._client()
        return AsyncRegistration(await client.register_async(name, addr, metadata))

    async def register_many(self, services: Iterable[ServiceSpec]) -> List[AsyncRegistration]:
        """Registers many services at once, all or nothing."""
        client = await self._client()
        return [AsyncRegistration(r) for r in await client.register_many_async(services)]

    async def close(self) -> None:
        """Revokes the lease: every registration vanishes at once. Does
        nothing if never connected."""
        if self._native is None and self._connecting is not None:
            try:
                await self._client()
            except Exception:
                return
        if self._native is not None:
            await self._native.close_async()

    def key_of(self, name: str, addr: str) -> str:
        """The etcd key service ``name`` at ``addr`` is registered under
        (needs a connected registry: the prefix may come from the environment)."""
        return self._connected().key_of(name, addr)

    def _connected(self) -> _native.Client:
        if self._native is None:
            raise RuntimeError("AsyncRegistry is not connected yet: await connect() first")
        return self._native

    @property
    def connected(self) -> bool:
        """Whether the lease was granted (``connect`` finished)."""
        return self._native is not None

    @property
    def lease_id(self) -> Optional[int]:
        """The lease currently held (``None`` before connecting, while healing, after close)."""
        return None if self._native is None else self._native.lease_id

    @property
    def ttl(self) -> int:
        """The lease TTL etcd granted, in seconds."""
        return self._connected().granted_ttl

    @property
    def endpoints(self) -> List[str]:
        """The etcd endpoints in use."""
        return self._connected().endpoints

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._connected().prefix

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native is not None and self._native.closed

    async def __aenter__(self) -> AsyncRegistry:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        if self._native is None:
            return "AsyncRegistry(not connected)"
        lease = "None" if self.lease_id is None else hex(self.lease_id)
        return f"AsyncRegistry(endpoints={self.endpoints!r}, prefix={self.prefix!r}, lease_id={lease})"
