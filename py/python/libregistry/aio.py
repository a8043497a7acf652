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
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar

from . import _dispatch, _errors, _native
from ._discovery import Change, ChangeCallback, Instance, WatcherBase, make_change
from ._events import Event
from ._registry import Metadata, RegistrationInfo, RegistryBase, ServiceSpec

__all__ = ["AsyncRegistry", "AsyncRegistration", "AsyncWatcher"]

_T = TypeVar("_T")


class AsyncRegistration(RegistrationInfo):
    """One registered service; see :class:`libregistry.Registration`.
    ``async with`` deregisters on exit."""

    __slots__ = ()

    async def update(self, changes: Metadata) -> None:
        """Changes metadata entries and rewrites the value in place."""
        await self._native.update(changes).future()

    async def withdraw(self) -> None:
        """Takes the key out of etcd, keeping it; see :meth:`libregistry.Registration.withdraw`."""
        await self._native.withdraw().future()

    async def restore(self) -> None:
        """Writes a withdrawn registration back."""
        await self._native.restore().future()

    async def deregister(self) -> None:
        """Deletes the key; calling it again does nothing."""
        await self._native.deregister().future()

    async def __aenter__(self) -> AsyncRegistration:
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.deregister()


def _in_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[_T], Any]) -> Callable[[_T], None]:
    """Wraps ``callback`` so that it runs in ``loop``; a coroutine it
    returns is scheduled as a task."""

    def call(item: _T) -> None:
        result = callback(item)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)

    def deliver(item: _T) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(call, item)

    return deliver


class AsyncWatcher(WatcherBase):
    """asyncio twin of :class:`libregistry.Watcher`: the same cache,
    :meth:`instances`, :meth:`pick` and policy (plain methods: they never
    wait), and ``async for change in watcher`` until it is closed.
    ``async with`` closes it on exit.

    Waiting never blocks the event loop, and a cancelled wait (a timeout, a
    cancelled task) loses no change: the next wait gets it.
    """

    __slots__ = ("_pending", "_lock")

    def __init__(self, native: _native.Watcher) -> None:
        super().__init__(native)
        # The wait in flight, kept across cancellations of its awaiters.
        self._pending: Optional[asyncio.Future[Any]] = None
        self._lock = asyncio.Lock()

    async def next_change(self, timeout: Optional[float] = None) -> Optional[Change]:
        """The next change, waiting up to ``timeout`` seconds (``None``: no
        limit); ``None`` on timeout. Raises :class:`~libregistry.ClosedError`
        once closed, and ``RuntimeError`` when changes go to ``on_change``."""
        async with self._lock:
            if self._pending is None:
                self._pending = self._native.next_change(timeout).future()
            # Shielded: cancelling the awaiter leaves the change to the next wait.
            got = await asyncio.shield(self._pending)
            self._pending = None
            return None if got is None else make_change(*got)

    def __aiter__(self) -> AsyncWatcher:
        return self

    async def __anext__(self) -> Change:
        try:
            change = None
            while change is None:  # a wait handed over by a cancelled caller may have had a timeout
                change = await self.next_change()
            return change
        except _errors.ClosedError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stops watching (no I/O, so not a coroutine); see :meth:`libregistry.Watcher.close`."""
        super().close()
        pending = self._pending
        if pending is not None:
            # Nobody may await it again: consume its ClosedError quietly.
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def __aenter__(self) -> AsyncWatcher:
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()


class AsyncRegistry(RegistryBase):
    """asyncio twin of :class:`libregistry.Registry`, with the same options
    (:class:`~libregistry.RegistryBase`). Creating it does no I/O:
    ``await registry.connect()`` or ``async with AsyncRegistry(...) as
    registry`` connects (and the first call that needs etcd connects if
    neither was done). ``on_event`` is called in the event loop that
    connected; it may be a coroutine function.
    """

    __slots__ = ("_connecting",)

    def _start(self) -> None:
        self._connecting: Optional[asyncio.Future[_native.Client]] = None

    async def connect(self) -> AsyncRegistry:
        """Connects (once); returns ``self``."""
        await self._client()
        return self

    async def _client(self) -> _native.Client:
        if self._native is not None:
            return self._native
        if self._connecting is None:
            _dispatch.ensure_running()  # it hands every outcome to the loop
            options = dict(self._options)
            if options["on_event"] is not None:
                options["on_event"] = _in_loop(asyncio.get_running_loop(), options["on_event"])
            self._connecting = _native.Client.connect(**options).future()
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
    ) -> AsyncRegistration:
        """Registers service ``name`` at ``addr``; see :meth:`libregistry.Registry.register`."""
        client = await self._client()
        checks = (check, check_interval, check_timeout, check_fails, check_passes)
        return AsyncRegistration(await client.register(name, addr, metadata, checks).future())

    async def register_many(self, services: Iterable[ServiceSpec]) -> List[AsyncRegistration]:
        """Registers many services at once, all or nothing."""
        client = await self._client()
        return [AsyncRegistration(r) for r in await client.register_many(services).future()]

    async def discover(self, name: str) -> List[Instance]:
        """Every instance of service ``name``, read once; see :meth:`libregistry.Registry.discover`."""
        client = await self._client()
        return await client.discover(name).future()

    async def watch(
        self,
        name: str,
        *,
        zone: Optional[str] = None,
        region: Optional[str] = None,
        env: Optional[str] = None,
        deployment: Optional[str] = None,
        round_robin: bool = False,
        on_change: Optional[ChangeCallback] = None,
    ) -> AsyncWatcher:
        """Starts an :class:`AsyncWatcher` on service ``name`` once its first
        read is done; the keywords are those of :meth:`libregistry.Registry.watch`.
        ``on_change`` is called in the running event loop and may be a
        coroutine function."""
        if on_change is not None and not callable(on_change):
            raise TypeError(f"on_change must be callable or None, not {type(on_change).__name__}")
        client = await self._client()
        callback = None
        if on_change is not None:
            callback = _in_loop(asyncio.get_running_loop(), on_change)
        policy: Dict[str, Any] = dict(zone=zone, region=region, env=env, deployment=deployment, round_robin=round_robin)
        return AsyncWatcher(await client.watch(name, **policy, on_change=callback).future())

    async def close(self) -> None:
        """Revokes the lease: every registration vanishes at once. Does
        nothing if never connected."""
        if self._native is None and self._connecting is not None:
            try:
                await self._client()
            except Exception:
                return
        if self._native is not None:
            await self._native.close().future()

    @property
    def connected(self) -> bool:
        """Whether ``connect`` finished."""
        return self._native is not None

    async def __aenter__(self) -> AsyncRegistry:
        return await self.connect()

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()
