"""Threads calling at once, and the GIL released while calls wait."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import libregistry
from etcd_harness import Etcd


def test_threads_registering_updating_and_deregistering_at_once(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        barrier = threading.Barrier(8)

        def work(t: int) -> List[str]:
            barrier.wait()
            keys = []
            for i in range(25):
                r = reg.register(f"svc{t}", f"127.0.0.1:{1000 + i}", {"weight": i})
                r.update({"zone": f"z{t}"})
                if i % 5 == 0:
                    r.deregister()
                else:
                    keys.append(r.key)
            return keys

        with ThreadPoolExecutor(8) as pool:
            kept = [k for keys in pool.map(work, range(8)) for k in keys]
        held = etcd.dump(prefix + "/")
        assert set(held) == set(kept) and len(kept) == 8 * 20
        assert all('"zone":"z' in value for value, _ in held.values())
        assert {lease for _, lease in held.values()} == {reg.lease_id}


def test_many_registries_in_threads(etcd: Etcd, prefix: str) -> None:
    def one(t: int) -> int:
        with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
            reg.register("svc", f"127.0.0.1:{2000 + t}")
            assert len(etcd.dump(f"{prefix}/svc/127.0.0.1:{2000 + t}")) == 1
            return reg.lease_id or 0

    with ThreadPoolExecutor(6) as pool:
        leases = list(pool.map(one, range(6)))
    assert len(set(leases)) == 6, "one lease per Registry"
    assert etcd.dump(prefix + "/") == {}, "each close removed its own"


def test_the_gil_is_released_while_a_call_waits(own_etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(own_etcd.endpoint, prefix=prefix, request_timeout=1) as reg:
        own_etcd.freeze()
        done = threading.Event()
        errors: List[BaseException] = []

        def blocked() -> None:
            try:
                reg.register("svc", "127.0.0.1:1")
            except BaseException as e:  # noqa: B036 - reported below
                errors.append(e)
            finally:
                done.set()

        thread = threading.Thread(target=blocked)
        thread.start()
        spins = 0
        start = time.monotonic()
        while not done.is_set():
            spins += 1  # pure Python work: runs only while the other thread lets go of the GIL
        waited = time.monotonic() - start
        thread.join()
        own_etcd.thaw()
        assert waited > 0.5
        assert spins > 100_000, f"only {spins} iterations in {waited:.2f}s: the GIL was held"
        assert len(errors) == 1 and isinstance(errors[0], libregistry.RequestTimeoutError)


def test_events_from_threads_keep_per_registry_order(etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(etcd.endpoint, prefix=prefix, on_event=events.append) as reg:
        with ThreadPoolExecutor(4) as pool:
            regs = list(pool.map(lambda p: reg.register("svc", f"127.0.0.1:{p}"), range(1, 41)))
        for r in regs:
            r.deregister()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not events or events[-1].kind != "closed"):
        time.sleep(0.02)
    kinds = [e.kind for e in events]
    assert kinds.count("registered") == 40 and kinds.count("deregistered") == 40
    assert kinds[-1] == "closed"
    for r in regs:
        assert kinds.index("registered") <= [getattr(e, "key", None) for e in events].index(r.key)


def test_two_threads_wait_in_parallel(own_etcd: Etcd, prefix: str) -> None:
    # Both calls wait out a 1 s deadline against a frozen etcd: overlapping,
    # about 1 s in all; one after the other (a held GIL), 2 s.
    regs = [libregistry.Registry(own_etcd.endpoint, prefix=prefix, request_timeout=1) for _ in range(2)]
    own_etcd.freeze()
    barrier = threading.Barrier(2)

    def blocked(reg: libregistry.Registry) -> str:
        barrier.wait()
        try:
            reg.register("svc", "127.0.0.1:1")
            return "registered"
        except libregistry.RequestTimeoutError:
            return "timeout"

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(blocked, regs))
    took = time.monotonic() - start
    own_etcd.thaw()
    for reg in regs:
        reg.close()
    assert outcomes == ["timeout", "timeout"]
    assert took < 1.8, f"two blocked calls took {took:.2f}s: they did not overlap"


def test_a_program_holding_the_gil_does_not_stall_keepalives(own_etcd: Etcd, prefix: str) -> None:
    # The library's runtime thread never needs the GIL: keepalives go on while
    # Python code hogs it for well over the TTL (here: no thread switch for 100 s).
    events: List[libregistry.Event] = []
    with libregistry.Registry(own_etcd.endpoint, ttl=2, prefix=prefix, on_event=events.append) as reg:
        r = reg.register("svc", "127.0.0.1:1")
        lease = reg.lease_id
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(100)
        try:
            end = time.monotonic() + 5
            while time.monotonic() < end:
                pass
        finally:
            sys.setswitchinterval(old_interval)
        assert reg.lease_id == lease and own_etcd.get(r.key) is not None
        assert own_etcd.get(r.key)[1] == lease  # type: ignore[index]
        assert own_etcd.lease_alive(lease or 0)
        r.deregister()
    assert not any(isinstance(e, libregistry.LeaseLost) for e in events)
