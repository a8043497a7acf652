"""The consumer side: :class:`Instance` (what discovery finds), the changes a
watcher reports (:class:`Added`, :class:`Updated`, :class:`Removed`), its
pick policy and the blocking :class:`Watcher`."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Tuple, Type

from . import _errors, _native
from ._native import Instance

__all__ = ["Instance", "Change", "Added", "Updated", "Removed", "PickPolicy", "Watcher", "ChangeCallback"]


@dataclass(frozen=True)
class Change:
    """Base class of the changes a watcher reports, in the order etcd made
    them; ``kind`` names the change (``"added"``, ``"updated"``, ``"removed"``)."""

    kind: ClassVar[str] = "change"
    instance: Instance

    @property
    def key(self) -> str:
        """The etcd key of the instance concerned."""
        return self.instance.key

    @property
    def addr(self) -> str:
        """The address of the instance concerned."""
        return self.instance.addr


@dataclass(frozen=True)
class Added(Change):
    """A new instance (the first changes of a watcher are ``Added`` for every
    instance found when it started)."""

    kind: ClassVar[str] = "added"


@dataclass(frozen=True)
class Updated(Change):
    """An instance whose value changed (metadata, weight...); ``instance`` is
    the new one."""

    kind: ClassVar[str] = "updated"


@dataclass(frozen=True)
class Removed(Change):
    """An instance that is gone (deregistered, lease expired, deleted);
    ``instance`` is the last one seen."""

    kind: ClassVar[str] = "removed"


_BY_KIND: Dict[str, Type[Change]] = {cls.kind: cls for cls in (Added, Updated, Removed)}

#: What ``on_change`` receives.
ChangeCallback = Callable[[Change], Any]


def make_change(kind: str, instance: Instance) -> Change:
    """Builds the change class named by ``kind``."""
    return _BY_KIND[kind](instance)


@dataclass(frozen=True)
class PickPolicy:
    """How a watcher picks: prefer ``zone``, then ``region`` (else anyone);
    only ``env`` / ``deployment`` when set; weighted random by ``weight``
    unless ``round_robin``. Weight 0 is never picked."""

    zone: Optional[str] = None
    region: Optional[str] = None
    env: Optional[str] = None
    deployment: Optional[str] = None
    round_robin: bool = False


class WatcherBase:
    """What the blocking and asyncio watchers share: the cache, picking and
    the policy, all cheap and never waiting on the network."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Watcher) -> None:
        self._native = native

    @property
    def name(self) -> str:
        """The service watched."""
        return self._native.name

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def instances(self) -> List[Instance]:
        """The cached instances, sorted by key (a new list each call)."""
        return self._native.instances()

    def pick(self) -> Optional[Instance]:
        """An instance chosen by the :attr:`policy`; ``None`` when none qualifies."""
        return self._native.pick()

    @property
    def policy(self) -> PickPolicy:
        """The pick policy in force."""
        return PickPolicy(*self._native.policy())

    def set_policy(
        self,
        *,
        zone: Optional[str] = None,
        region: Optional[str] = None,
        env: Optional[str] = None,
        deployment: Optional[str] = None,
        round_robin: bool = False,
    ) -> None:
        """Replaces the pick policy; the keywords mean what they mean for ``watch``."""
        self._native.set_policy(zone=zone, region=region, env=env, deployment=deployment, round_robin=round_robin)

    def close(self) -> None:
        """Stops watching: :meth:`instances`, :meth:`pick` and waiting for
        changes raise :class:`~libregistry.ClosedError` from now on, iteration
        ends, and ``on_change`` gets nothing more. Calling it again does nothing."""
        self._native.close()

    def __repr__(self) -> str:
        try:
            state = f"instances={len(self.instances())}"
        except _errors.RegistryError as e:  # closed, or made before fork()
            state = type(e).__name__
        return f"{type(self).__name__}(name={self.name!r}, {state})"


class Watcher(WatcherBase):
    """A live, cached view of one service's instances, kept up to date in the
    background through etcd restarts, wipes and compaction. Made by
    :meth:`Registry.watch <libregistry.Registry.watch>`.

    ``for change in watcher:`` yields each :class:`Change` as it happens
    (waiting with the GIL released; Ctrl-C interrupts without losing one),
    until the watcher is closed. Used as a context manager, it is closed on exit.
    """

    __slots__ = ()

    def next_change(self, timeout: Optional[float] = None) -> Optional[Change]:
        """The next change, waiting up to ``timeout`` seconds (``None``: no
        limit); ``None`` on timeout. Raises :class:`~libregistry.ClosedError`
        once closed, and ``RuntimeError`` when changes go to ``on_change``."""
        got = self._native.next_change(timeout).wait()
        return None if got is None else make_change(*got)

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        try:
            return self.next_change()  # type: ignore[return-value]  # no timeout: never None
        except _errors.ClosedError:
            raise StopIteration from None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

