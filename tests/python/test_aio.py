"""libregistry.aio: the same API as coroutines, never blocking the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import List

import pytest

import libregistry
from libregistry.aio import AsyncRegistration, AsyncRegistry, AsyncWatcher
from etcd_harness import Etcd, drain, free_port, wait_until


def test_every_async_method(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        reg = AsyncRegistry(etcd.endpoint, ttl=6, prefix=prefix)
        assert not reg.connected and reg.lease_id is None and "not connected" in repr(reg)
        assert await reg.connect() is reg
        assert reg.connected and reg.ttl == 6 and reg.prefix == prefix and reg.endpoints == [etcd.endpoint]
        assert reg.lease_id is None, "no lease before the first registration"
        assert reg.key_of("svc", "h:1") == f"{prefix}/svc/h:1"

        r = await reg.register("svc", "127.0.0.1:1", {"region": "r", "weight": 9})
        assert reg.lease_id is not None and etcd.lease_alive(reg.lease_id)
        assert isinstance(r, AsyncRegistration)
        assert (r.key, r.name, r.addr, r.metadata) == (f"{prefix}/svc/127.0.0.1:1", "svc", "127.0.0.1:1", {"region": "r", "weight": "9"})
        assert '"weight":9' in etcd.get(r.key)[0]  # type: ignore[index]
        await r.update({"weight": 0})
        assert '"weight":0' in etcd.get(r.key)[0]  # type: ignore[index]
        assert r.metadata["weight"] == "0"
        await r.deregister()
        assert etcd.get(r.key) is None and not r.registered

        many = await reg.register_many([("a", "127.0.0.1:1"), ("b", "127.0.0.1:2", {"zone": "z"})])
        assert len(etcd.dump(prefix + "/")) == 2 and len(many) == 2
        async with await reg.register("c", "127.0.0.1:3") as c:
            assert etcd.get(c.key) is not None
        assert etcd.get(c.key) is None

        with pytest.raises(libregistry.AlreadyRegisteredError):
            await reg.register("a", "127.0.0.1:1")
        with pytest.raises(libregistry.InvalidArgumentError):
            await reg.register("a/b", "127.0.0.1:1")
        with pytest.raises(TypeError):
            await reg.register("a", 1)  # type: ignore[arg-type]

        await reg.close()
        assert reg.closed and etcd.dump(prefix + "/") == {}
        with pytest.raises(libregistry.ClosedError):
            await reg.register("d", "127.0.0.1:4")

    asyncio.run(main())


def test_async_with_and_lazy_connect(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRegistry(etcd.endpoint, prefix=prefix) as reg:
            await reg.register("svc", "127.0.0.1:1")
            assert len(etcd.dump(prefix + "/")) == 1
        assert etcd.dump(prefix + "/") == {}
        lazy = AsyncRegistry(etcd.endpoint, prefix=prefix)
        regs = await asyncio.gather(*(lazy.register("svc", f"127.0.0.1:{p}") for p in range(1, 21)))
        assert len({r.key for r in regs}) == 20 and len(etcd.dump(prefix + "/")) == 20
        assert len({lease for _, lease in etcd.dump(prefix + "/").values()}) == 1, "one connect, one lease"
        await lazy.close()
        await AsyncRegistry(etcd.endpoint).close()  # never connected: nothing to do

    asyncio.run(main())


def test_the_event_loop_keeps_running_while_etcd_is_slow(own_etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRegistry(own_etcd.endpoint, prefix=prefix, request_timeout=1) as reg:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.ensure_future(ticker())
            own_etcd.freeze()
            start = time.monotonic()
            with pytest.raises(libregistry.RequestTimeoutError):
                await reg.register("svc", "127.0.0.1:1")
            waited = time.monotonic() - start
            own_etcd.thaw()
            task.cancel()
            assert waited >= 0.9
            assert ticks >= waited / 0.01 * 0.3, f"loop ran {ticks} ticks in {waited:.2f}s"

    asyncio.run(main())


def test_a_cancelled_register_leaves_nothing(own_etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRegistry(own_etcd.endpoint, prefix=prefix) as reg:
            own_etcd.freeze()
            task = asyncio.ensure_future(reg.register("svc", "127.0.0.1:1"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            own_etcd.thaw()
            # Whatever etcd decides about the write, nothing of it stays.
            marker = await reg.register("marker", "127.0.0.1:2")
            for _ in range(500):
                if set(own_etcd.dump(prefix + "/")) == {marker.key}:
                    break
                await asyncio.sleep(0.02)
            assert set(own_etcd.dump(prefix + "/")) == {marker.key}
            # The key is free: a new register of it works.
            await reg.register("svc", "127.0.0.1:1")

    asyncio.run(main())


def test_async_events_run_in_the_loop_and_may_be_coroutines(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: List[libregistry.Event] = []
        in_loop: List[bool] = []

        async def on_event(event: libregistry.Event) -> None:
            in_loop.append(asyncio.get_running_loop() is loop)
            seen.append(event)

        async with AsyncRegistry(etcd.endpoint, prefix=prefix, on_event=on_event) as reg:
            r = await reg.register("svc", "127.0.0.1:1")
            await r.deregister()
        for _ in range(200):
            if [e.kind for e in seen] == ["registered", "deregistered", "closed"]:
                break
            await asyncio.sleep(0.01)
        assert [e.kind for e in seen] == ["registered", "deregistered", "closed"]
        assert all(in_loop)

    asyncio.run(main())


def test_async_connect_errors_and_retry(etcd: Etcd) -> None:
    async def main() -> None:
        dead = AsyncRegistry(f"http://127.0.0.1:{free_port()}", request_timeout=1)
        with pytest.raises(libregistry.UnavailableError):
            await dead.connect()
        with pytest.raises(libregistry.UnavailableError):
            await dead.register("svc", "127.0.0.1:1")  # tries again
        with pytest.raises(TypeError):
            await AsyncRegistry(ttl="10").connect()  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            AsyncRegistry(on_event=3)  # type: ignore[arg-type]
        with pytest.raises(libregistry.InvalidArgumentError):
            await AsyncRegistry(etcd.endpoint, ttl=1).connect()
        with pytest.raises(RuntimeError):
            AsyncRegistry(etcd.endpoint).key_of("svc", "h:1")

    asyncio.run(main())


def test_async_calls_outside_a_running_loop_are_refused(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        native = reg._native
        assert native is not None
        with pytest.raises(RuntimeError):
            native.register("svc", "127.0.0.1:1").future()
    wait_until(lambda: etcd.dump(prefix + "/") == {}, 2, "nothing registered")


def test_async_discover_and_watch(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRegistry(etcd.endpoint, prefix=prefix) as reg:
            await reg.register("svc", "127.0.0.1:1", {"zone": "z1", "weight": 3})
            await reg.register("svc_other", "127.0.0.1:9")
            found = await reg.discover("svc")
            assert [(i.addr, i.zone, i.weight) for i in found] == [("127.0.0.1:1", "z1", 3)]
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            task = asyncio.ensure_future(ticker())
            got: List[libregistry.Change] = []
            async with await reg.watch("svc", zone="z1") as watcher:
                assert isinstance(watcher, AsyncWatcher) and watcher.instances() == found
                assert watcher.pick() == found[0] and watcher.policy.zone == "z1"

                async def provide() -> None:
                    await asyncio.sleep(0.2)  # the consumer waits meanwhile, the loop runs on
                    r = await reg.register("svc", "127.0.0.1:2")
                    await r.update({"weight": 0})
                    await r.deregister()

                provider = asyncio.ensure_future(provide())
                async for change in watcher:
                    got.append(change)
                    if len(got) == 4:
                        watcher.close()  # ends the loop
                await provider
                assert watcher.closed
                with pytest.raises(libregistry.ClosedError):
                    await watcher.next_change()
            task.cancel()
            assert [(type(c), c.addr) for c in got] == [
                (libregistry.Added, "127.0.0.1:1"),
                (libregistry.Added, "127.0.0.1:2"),
                (libregistry.Updated, "127.0.0.1:2"),
                (libregistry.Removed, "127.0.0.1:2"),
            ]
            assert ticks >= 10, f"the loop ran while the watcher waited ({ticks} ticks)"

            with pytest.raises(TypeError):
                await reg.discover(5)  # type: ignore[arg-type]
            with pytest.raises(libregistry.InvalidArgumentError):
                await reg.watch("a/b")
            with pytest.raises(TypeError):
                await reg.watch("svc", on_change=5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await reg.watch("svc", round_robin="no")  # type: ignore[arg-type]
            async with await reg.watch("svc") as watcher:
                with pytest.raises(TypeError):
                    await watcher.next_change("1")  # type: ignore[arg-type]
                with pytest.raises(libregistry.InvalidArgumentError):
                    await watcher.next_change(-1)

    asyncio.run(main())


def test_a_cancelled_or_timed_out_async_wait_loses_no_change(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRegistry(etcd.endpoint, prefix=prefix) as reg:
            watcher = await reg.watch("svc")
            assert await watcher.next_change(timeout=0.05) is None
            waiting = asyncio.ensure_future(watcher.next_change())
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await reg.register("svc", "127.0.0.1:1")
            # Not there yet, or there already: either way, not lost.
            change = await watcher.next_change(timeout=0) or await watcher.next_change(timeout=10)
            if change is None or change.addr != "127.0.0.1:1":
                pytest.fail(f"the change was lost: {change}")
            # Two tasks waiting at once get one change each, never the same one twice.
            first, second = (asyncio.ensure_future(watcher.next_change(10)) for _ in range(2))
            await reg.register_many([("svc", "127.0.0.1:2"), ("svc", "127.0.0.1:3")])
            both = await asyncio.gather(first, second)
            assert sorted(c.addr for c in both if c is not None) == ["127.0.0.1:2", "127.0.0.1:3"]

            # close() from elsewhere ends an `async for` that is waiting.
            async def consume() -> int:
                return len([change async for change in watcher])

            consumer = asyncio.ensure_future(consume())
            await asyncio.sleep(0.1)
            watcher.close()
            assert await asyncio.wait_for(consumer, 5) == 0

    asyncio.run(main())


def test_async_on_change_runs_in_the_loop_and_may_be_a_coroutine(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: List[str] = []
        in_loop: List[bool] = []

        async def on_change(change: libregistry.Change) -> None:
            in_loop.append(asyncio.get_running_loop() is loop)
            seen.append(f"{change.kind} {change.addr}")

        async with AsyncRegistry(etcd.endpoint, prefix=prefix) as reg:
            await reg.register("svc", "127.0.0.1:1")
            async with await reg.watch("svc", on_change=on_change) as watcher:
                with pytest.raises(RuntimeError):
                    await watcher.next_change()
                r = await reg.register("svc", "127.0.0.1:2")
                await r.deregister()
                for _ in range(500):
                    if len(seen) == 3:
                        break
                    await asyncio.sleep(0.01)
        assert seen == ["added 127.0.0.1:1", "added 127.0.0.1:2", "removed 127.0.0.1:2"]
        assert all(in_loop)

    asyncio.run(main())
