"""Discovery from Python: discover, watchers (their cache, changes, pick),
against real etcd and real provider processes, through restarts and wipes."""

from __future__ import annotations

import logging
import pickle
import signal
import textwrap
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import pytest

import libregistry
from libregistry import Added, Change, Instance, Removed, Updated
from etcd_harness import ROOT, Etcd, read_until, spawn, wait_until

PROVIDER = ROOT / "examples" / "python" / "provider.py"
CONSUMER = ROOT / "examples" / "python" / "consumer.py"

SEED: Dict[str, Any] = {
    "env": "dev",
    "region": "beijing",
    "zone": "zone1",
    "scheme": "grpc",
    "weight": 100,
    "deployment": "red",
    "appVersion": "ahkfasgasdf",
    "buildTime": "2020-10-14T10:00:00Z",
}


@pytest.fixture
def reg(etcd: Etcd, prefix: str):  # type: ignore[no-untyped-def]
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as registry:
        yield registry


def changes_until(watcher: libregistry.Watcher, count: int, limit: float = 10) -> List[Change]:
    """The next ``count`` changes, each within ``limit`` seconds."""
    got: List[Change] = []
    for _ in range(count):
        change = watcher.next_change(limit)
        assert change is not None, f"change {len(got) + 1} of {count} not seen within {limit}s (got {got})"
        got.append(change)
    return got


def replay(view: Dict[str, Instance], changes: List[Change]) -> None:
    """Applies ``changes`` to ``view``, failing on a duplicate or stale one."""
    for change in changes:
        if isinstance(change, Added):
            assert change.key not in view, f"duplicate add of {change.key}"
            view[change.key] = change.instance
        elif isinstance(change, Updated):
            assert change.key in view, f"update of unknown {change.key}"
            view[change.key] = change.instance
        else:
            assert isinstance(change, Removed)
            assert view.pop(change.key, None) is not None, f"removal of unknown {change.key}"


def drain(watcher: libregistry.Watcher) -> List[Change]:
    """Every change already waiting."""
    got = []
    while (change := watcher.next_change(0)) is not None:
        got.append(change)
    return got


def test_discover_reads_instances_with_the_seeds_fields(reg: libregistry.Registry, prefix: str) -> None:
    reg.register("micro", "127.0.0.1:4001", {**SEED, "weight": "7", "color": "blue"})  # weight as text beside another key (mypy)
    reg.register("micro", "127.0.0.1:4000", SEED)
    found = reg.discover("micro")
    assert [i.addr for i in found] == ["127.0.0.1:4000", "127.0.0.1:4001"], "sorted by key"
    i = found[0]
    assert (i.key, i.name, i.addr) == (f"{prefix}/micro/127.0.0.1:4000", "micro", "127.0.0.1:4000")
    assert (i.env, i.region, i.zone, i.ip, i.port, i.scheme) == ("dev", "beijing", "zone1", "127.0.0.1", 4000, "grpc")
    assert (i.weight, i.deployment, i.frame_version) == (100, "red", libregistry.__version__)
    assert (i.app_version, i.build_time) == ("ahkfasgasdf", "2020-10-14T10:00:00Z")
    assert i.start_time is not None and i.start_time.endswith("Z")
    # Values as written: port and weight are numbers, the rest text, in wire order.
    assert list(i.metadata.items())[:-1] == [
        ("env", "dev"), ("region", "beijing"), ("zone", "zone1"), ("ip", "127.0.0.1"), ("port", 4000),
        ("scheme", "grpc"), ("weight", 100), ("deployment", "red"), ("frameVersion", libregistry.__version__),
        ("appVersion", "ahkfasgasdf"), ("buildTime", "2020-10-14T10:00:00Z"),
    ]
    assert found[1].weight == 7 and found[1].meta("color") == "blue" and found[1].meta("port") == "4001"
    assert found[1].meta("nothing") is None

    # A frozen, hashable value: equal to itself read again, picklable, matchable.
    again = reg.discover("micro")
    assert again == found and {*again} == {*found} and again[0] is not found[0]
    assert pickle.loads(pickle.dumps(i)) == i
    with pytest.raises(AttributeError):
        i.addr = "x"  # type: ignore[misc]
    assert Instance.__match_args__ == ("key", "name", "addr", "metadata")  # `case Instance(key, name, addr)`
    assert reg.discover("nobody") == []


def test_a_consumer_only_registry_holds_no_lease(own_etcd: Etcd) -> None:
    with libregistry.Registry(own_etcd.endpoint) as provider:
        provider.register("svc", "127.0.0.1:1")
        held = own_etcd.leases()
        with libregistry.Registry(own_etcd.endpoint) as consumer, consumer.watch("svc") as watcher:
            assert [i.addr for i in consumer.discover("svc")] == ["127.0.0.1:1"]
            assert [i.addr for i in watcher.instances()] == ["127.0.0.1:1"]
            assert consumer.lease_id is None and own_etcd.leases() == held == [provider.lease_id]
            consumer.register("svc", "127.0.0.1:2")
            assert consumer.lease_id is not None and sorted(own_etcd.leases()) == sorted(held + [consumer.lease_id])


def test_foo_and_foo_other_stay_apart(reg: libregistry.Registry) -> None:
    for name in ("foo", "foo_other", "foo.bar", "fo", "foo-1"):
        reg.register(name, "127.0.0.1:1")
    reg.register("foo", "127.0.0.1:2")
    assert [(i.name, i.addr) for i in reg.discover("foo")] == [("foo", "127.0.0.1:1"), ("foo", "127.0.0.1:2")]
    assert [i.name for i in reg.discover("foo_other")] == ["foo_other"]
    with reg.watch("foo") as watcher:
        assert [c.addr for c in changes_until(watcher, 2)] == ["127.0.0.1:1", "127.0.0.1:2"]
        reg.register("foo_other", "127.0.0.1:3")
        reg.register("foo_", "127.0.0.1:3")
        reg.register("foo", "127.0.0.1:3")  # after the others in etcd's order
        change = watcher.next_change(10)
        assert change is not None and (change.kind, change.key) == ("added", reg.key_of("foo", "127.0.0.1:3"))
        assert {i.name for i in watcher.instances()} == {"foo"}


def test_go_endpoint_values_are_instances_and_garbage_is_skipped(
    etcd: Etcd, reg: libregistry.Registry, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What go.etcd.io/etcd/client/v3/naming/endpoints writes, put as a Go program would.
    etcd.etcdctl("put", f"{prefix}/go/10.0.0.9:1", '{"Op":0,"Addr":"10.0.0.9:1","Metadata":null}')
    etcd.put(f"{prefix}/go/10.0.0.8:1", '{"Op":0,"Addr":"10.0.0.8:1","Metadata":{"weight":5,"zone":"z"}}')
    etcd.put(f"{prefix}/go/10.0.0.7:1", '{"Op":0,"Addr":"10.0.0.7:1","Metadata":"v1"}')
    etcd.put(f"{prefix}/go/garbage", "not json")
    caplog.set_level(logging.WARNING, logger="libregistry")
    with reg.watch("go") as watcher:
        found = reg.discover("go")
        assert [(i.addr, i.metadata, i.weight) for i in found] == [
            ("10.0.0.7:1", {"value": "v1"}, 100),
            ("10.0.0.8:1", {"weight": 5, "zone": "z"}, 5),
            ("10.0.0.9:1", {}, 100),
        ]
        assert watcher.instances() == found
        assert [c.kind for c in changes_until(watcher, 3)] == ["added"] * 3
        wait_until(
            lambda: any("not an instance" in r.getMessage() and "garbage" in r.getMessage() for r in caplog.records),
            5,
            "a warning naming the skipped key",
        )


def test_watcher_follows_providers_in_this_and_other_processes(
    etcd: Etcd, reg: libregistry.Registry, prefix: str
) -> None:
    env = {"REGISTRY_ENDPOINTS": etcd.endpoint, "REGISTRY_PREFIX": prefix, "REGISTRY_TTL": "2"}
    with reg.watch("micro") as watcher:
        assert watcher.instances() == [] and watcher.next_change(0) is None and watcher.pick() is None

        # A new provider: the example, in its own process.
        proc = spawn([str(PROVIDER)], env)
        try:
            read_until(proc, "registered ")
            added = watcher.next_change(10)
            assert isinstance(added, Added) and added.key == f"{prefix}/micro/127.0.0.1:4000"
            assert (added.instance.zone, added.instance.deployment, added.instance.port) == ("zone1", "red", 4000)

            # One of ours: added, updated (drained), deregistered.
            r = reg.register("micro", "127.0.0.1:4001", {"zone": "zone2"})
            r.update({"weight": 0})
            r.deregister()
            got = changes_until(watcher, 3)
            assert [type(c) for c in got] == [Added, Updated, Removed]
            assert {c.key for c in got} == {r.key}
            assert got[1].instance.weight == 0 and got[1].instance.zone == "zone2"
            assert [i.addr for i in watcher.instances()] == ["127.0.0.1:4000"]
            assert watcher.pick() == added.instance
        finally:
            proc.kill()  # SIGKILL: no goodbye, the key lives until its lease expires
            proc.wait()
        killed = time.monotonic()
        removed = watcher.next_change(15)
        took = time.monotonic() - killed
        print(f"discovery[python]: a SIGKILLed provider (TTL 2 s) left the watcher after {took:.2f} s")
        assert isinstance(removed, Removed) and removed.key == added.key
        assert 1.0 < took < 2 + 5, "about the TTL: never at once, never much later"
        assert watcher.instances() == [] and watcher.pick() is None


def test_example_consumer_follows_the_example_provider(etcd: Etcd, prefix: str) -> None:
    env = {"REGISTRY_ENDPOINTS": etcd.endpoint, "REGISTRY_PREFIX": prefix, "REGISTRY_TTL": "3", "REGISTRY_ZONE": "zone1"}
    consumer = spawn([str(CONSUMER)], env)
    provider = None
    try:
        assert read_until(consumer, "watching micro")[-1] == "watching micro: 0 instance(s)"
        provider = spawn([str(PROVIDER)], env)
        line = read_until(consumer, "added ")[-1]
        assert line == "added 127.0.0.1:4000 (zone zone1, weight 100); next request goes to 127.0.0.1:4000"
        provider.send_signal(signal.SIGTERM)  # graceful: deregistered at once
        read_until(provider, "deregistered ")
        assert read_until(consumer, "removed ")[-1].endswith("next request goes to nobody")
        consumer.send_signal(signal.SIGINT)
        read_until(consumer, "stopped")
        assert consumer.wait(10) == 0 and provider.wait(10) == 0
    finally:
        for proc in (consumer, provider):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_cache_equals_a_fresh_discover_after_restart_and_wipe(own_etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(own_etcd.endpoint, ttl=3, prefix=prefix) as provider, \
            libregistry.Registry(own_etcd.endpoint, ttl=3, prefix=prefix) as consumer, \
            consumer.watch("svc") as watcher:
        regs = provider.register_many([("svc", f"127.0.0.1:{p}", {"weight": p}) for p in (1, 2, 3)])
        view: Dict[str, Instance] = {}
        replay(view, changes_until(watcher, 3))

        def converged() -> bool:
            cached = watcher.instances()
            try:
                fresh = consumer.discover("svc")
            except libregistry.RegistryError:
                return False  # etcd still coming back
            return [i.addr for i in cached] == expected and cached == fresh

        for what in ("restart", "wipe"):
            own_etcd.restart(wipe=what == "wipe")
            # A change the watcher can only learn from etcd after the outage.
            if what == "restart":
                regs[0].deregister()
                expected = ["127.0.0.1:2", "127.0.0.1:3"]
            else:
                provider.register("svc", "127.0.0.1:4")  # while the others are being put back
                expected = ["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]
            took = wait_until(converged, 30, f"cache == discover after {what}")
            print(f"discovery[python]: watcher cache equals a fresh discover {took:.2f} s after etcd's {what} and a change")
            # Replaying every reported change on the old view gives the cache: none stale, none twice.
            replay(view, drain(watcher))
            assert sorted(view.values(), key=lambda i: i.key) == watcher.instances()

def test_an_unread_watcher_keeps_no_backlog(etcd: Etcd, reg: libregistry.Registry, prefix: str) -> None:
    # A consumer that only picks never reads its changes: they must not pile up.
    with reg.watch("churn") as watcher:
        for _ in range(3):  # 3600 changes nobody reads
            with libregistry.Registry(etcd.endpoint, prefix=prefix) as provider:
                provider.register_many([("churn", f"127.0.0.1:{p}") for p in range(1, 601)])
                wait_until(lambda: len(watcher.instances()) == 600, 10, "600 instances seen")
            wait_until(lambda: watcher.instances() == [], 10, "all gone with the provider's lease")
        r = reg.register("churn", "127.0.0.1:1000")
        wait_until(lambda: len(watcher.instances()) == 1, 10, "the last one seen")
        backlog = drain(watcher)
        print(f"discovery[python]: 3601 unread changes left a backlog of {len(backlog)}")
        assert len(backlog) <= 2 * 1024 and watcher._native.squashed >= 3601 - 2 * 1024
        view: Dict[str, Instance] = {}
        replay(view, backlog)  # still none stale, none twice
        assert list(view.values()) == watcher.instances() and view[r.key].addr == "127.0.0.1:1000"


def test_pick_follows_weights_zones_and_drains(reg: libregistry.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    for addr, weight in (("127.0.0.1:1", 100), ("127.0.0.1:2", 200), ("127.0.0.1:3", 700), ("127.0.0.1:9", 0)):
        reg.register("w", addr, {"weight": weight})
    with reg.watch("w", zone="", region="") as watcher:
        assert len(watcher.instances()) == 4
        picks = 100_000
        start = time.perf_counter()
        counts = Counter(watcher.pick().addr for _ in range(picks))  # type: ignore[union-attr]
        took = time.perf_counter() - start
        shares = {addr: n / picks for addr, n in sorted(counts.items())}
        print(f"discovery[python]: {picks} picks in {took:.3f} s ({took / picks * 1e6:.2f} µs each): {shares}")
        assert "127.0.0.1:9" not in counts, "weight 0 is never picked"
        for addr, share in (("127.0.0.1:1", 0.1), ("127.0.0.1:2", 0.2), ("127.0.0.1:3", 0.7)):
            assert abs(shares[addr] - share) <= share * 0.05, (addr, shares[addr], share)

        watcher.set_policy(round_robin=True, zone="", region="")
        assert watcher.policy == libregistry.PickPolicy(round_robin=True)
        order = [watcher.pick().addr for _ in range(6)]  # type: ignore[union-attr]
        assert order[:3] == order[3:] and sorted(order[:3]) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]

    reg.register_many([
        ("z", "127.0.0.1:1", {"region": "r2", "zone": "z9"}),
        ("z", "127.0.0.1:2", {"region": "r1", "zone": "z2", "env": "prod", "deployment": "green"}),
        ("z", "127.0.0.1:3", {"region": "r1", "zone": "z1", "env": "prod", "deployment": "blue"}),
        ("z", "127.0.0.1:4", {"region": "r1", "zone": "z1", "weight": 0}),
    ])
    monkeypatch.setenv("REGISTRY_ZONE", "z1")
    monkeypatch.setenv("REGISTRY_REGION", "r1")
    with reg.watch("z") as watcher:
        assert watcher.policy == libregistry.PickPolicy(zone="z1", region="r1"), "from REGISTRY_ZONE / REGION"

        def picked(n: int = 200) -> Counter[str]:
            return Counter(i.addr for i in (watcher.pick() for _ in range(n)) if i is not None)

        assert set(picked()) == {"127.0.0.1:3"}, "own zone first; its drained instance never"
        watcher.set_policy(zone="z7")  # region from REGISTRY_REGION
        assert set(picked()) == {"127.0.0.1:2", "127.0.0.1:3"}, "then own region"
        watcher.set_policy(zone="z7", region="r7")
        assert set(picked()) == {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, "then anyone"
        watcher.set_policy(deployment="green")
        assert set(picked()) == {"127.0.0.1:2"}, "canary routing"
        watcher.set_policy(env="staging")
        assert watcher.pick() is None
        watcher.set_policy()
        assert watcher.policy == libregistry.PickPolicy(zone="z1", region="r1")



def test_a_drained_instance_stops_being_picked(reg: libregistry.Registry) -> None:
    a = reg.register("d", "127.0.0.1:1", {"zone": "z1"})
    reg.register("d", "127.0.0.1:2", {"zone": "z2"})
    with reg.watch("d", zone="z1") as watcher:
        assert {watcher.pick().addr for _ in range(50)} == {"127.0.0.1:1"}  # type: ignore[union-attr]
        assert [c.kind for c in changes_until(watcher, 2)] == ["added", "added"]
        a.update({"weight": 0})
        change = watcher.next_change(10)
        assert isinstance(change, Updated) and change.instance.weight == 0
        assert {watcher.pick().addr for _ in range(50)} == {"127.0.0.1:2"}  # type: ignore[union-attr]


def test_on_change_runs_on_the_dispatch_thread_in_order(reg: libregistry.Registry, caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Tuple[str, str, str]] = []

    def on_change(change: Change) -> None:
        seen.append((change.kind, change.addr, threading.current_thread().name))
        if change.addr == "127.0.0.1:2":
            raise ValueError("a broken callback")

    reg.register("cb", "127.0.0.1:1")
    with reg.watch("cb", on_change=on_change) as watcher:
        with pytest.raises(RuntimeError, match="on_change"):
            watcher.next_change(0)
        with pytest.raises(RuntimeError):
            next(iter(watcher))
        r2 = reg.register("cb", "127.0.0.1:2")
        r2.deregister()
        wait_until(lambda: len(seen) == 3, 10, "three changes delivered")
        assert seen == [
            ("added", "127.0.0.1:1", "libregistry-dispatch"),
            ("added", "127.0.0.1:2", "libregistry-dispatch"),
            ("removed", "127.0.0.1:2", "libregistry-dispatch"),
        ], "in order, on the dispatcher thread, going on after a callback raised"
        wait_until(lambda: any("on_change callback" in r.getMessage() for r in caplog.records), 5, "the error logged")
    reg.register("cb", "127.0.0.1:3")
    time.sleep(0.3)  # nothing must arrive: give it the chance (not a timing assertion)
    assert len(seen) == 3, "no change after close()"


def test_iteration_releases_the_gil_and_close_ends_it(reg: libregistry.Registry) -> None:
    watcher = reg.watch("it")
    got: List[Change] = []
    ended = threading.Event()

    def consume() -> None:
        for change in watcher:
            got.append(change)
        ended.set()

    thread = threading.Thread(target=consume)
    thread.start()
    ticks = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # this thread runs while the other one waits
        ticks += 1
    reg.register("it", "127.0.0.1:1")
    wait_until(lambda: len(got) == 1, 10, "the iterating thread got the change")
    closed_at = time.monotonic()
    watcher.close()
    assert ended.wait(5), "iteration ended with close()"
    print(f"discovery[python]: close() ended a blocked iteration after {(time.monotonic() - closed_at) * 1000:.1f} ms")
    thread.join()
    assert ticks > 1000 and isinstance(got[0], Added)
    assert list(watcher) == []
    for call in (watcher.instances, watcher.pick, lambda: watcher.next_change(0), lambda: watcher.set_policy()):
        with pytest.raises(libregistry.ClosedError):
            call()
    watcher.close()  # again: nothing
    assert watcher.closed and "ClosedError" in repr(watcher)


def test_a_watcher_lives_on_after_its_registry_closes(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as provider:
        consumer = libregistry.Registry(etcd.endpoint, prefix=prefix)
        watcher = consumer.watch("svc")
        consumer.close()
        with pytest.raises(libregistry.ClosedError):
            consumer.discover("svc")
        with pytest.raises(libregistry.ClosedError):
            consumer.watch("svc")
        provider.register("svc", "127.0.0.1:1")
        change = watcher.next_change(10)
        assert isinstance(change, Added) and watcher.pick() == change.instance
        watcher.close()


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, libregistry
    reg = libregistry.Registry(sys.argv[1], prefix=sys.argv[2])
    watcher = reg.watch("svc")
    print("ready", flush=True)
    start = time.monotonic()
    try:
        for change in watcher:
            print("unexpected", change, flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - start:.3f}", flush=True)
    sys.stdin.readline()  # the test registered one instance meanwhile
    change = watcher.next_change(10)
    print(f"then {change.kind} {change.addr}", flush=True)
    pid = os.fork()
    if pid == 0:
        try:
            watcher.instances()
            os._exit(1)
        except libregistry.ForkedError:
            os._exit(7)
    print(f"child {os.waitpid(pid, 0)[1] >> 8}", flush=True)
    watcher.close()
    reg.close()
    """
)


def test_ctrl_c_interrupts_iteration_without_losing_a_change(etcd: Etcd, reg: libregistry.Registry, prefix: str) -> None:
    proc = spawn(["-c", CTRL_C_SCRIPT, etcd.endpoint, prefix], {})
    assert proc.stdin is not None
    try:
        read_until(proc, "ready")
        time.sleep(0.3)  # let it block in the loop (setup, not an assertion)
        proc.send_signal(signal.SIGINT)
        line = read_until(proc, "interrupted")[-1]
        assert float(line.split()[-1]) < 0.3 + 2.0, "Ctrl-C took effect promptly"
        reg.register("svc", "127.0.0.1:1")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert read_until(proc, "then ")[-1] == "then added 127.0.0.1:1", "the interrupted wait lost nothing"
        assert read_until(proc, "child ")[-1] == "child 7", "ForkedError in a forked child"
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.discover(5),
        lambda r: r.discover(None),
        lambda r: r.watch(b"svc"),
        lambda r: r.watch("svc", zone=5),
        lambda r: r.watch("svc", region=["r"]),
        lambda r: r.watch("svc", env=1),
        lambda r: r.watch("svc", deployment=b"red"),
        lambda r: r.watch("svc", round_robin="yes"),
        lambda r: r.watch("svc", round_robin=1),
        lambda r: r.watch("svc", on_change="print"),
        lambda r: r.watch("svc", "zone1"),
        lambda r: r.watch("svc", colour="red"),
        lambda r: Instance(1, "svc", "a:1"),  # type: ignore[arg-type]
        lambda r: Instance("k", "svc", "a:1", {"x": object()}),  # type: ignore[dict-item]
        lambda r: Instance("k", "svc", "a:1", ["x"]),  # type: ignore[arg-type]
        lambda r: Instance("k", "svc", "a:1").meta(5),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_for_discovery_are_type_errors(reg: libregistry.Registry, call: Any) -> None:
    with pytest.raises(TypeError):
        call(reg)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda r: r.discover(""), "name"),
        (lambda r: r.discover("a/b"), "name"),
        (lambda r: r.discover(".."), "name"),
        (lambda r: r.discover("x" * 129), "name"),
        (lambda r: r.watch("a b"), "name"),
        (lambda r: r.watch("svc", env=""), "env"),
        (lambda r: r.watch("svc", deployment=""), "deployment"),
        (lambda r: Instance("k", "svc", "a:1", {"x": float("inf")}), 'metadata["x"]'),
    ],
)
def test_bad_discovery_values_name_the_field(reg: libregistry.Registry, call: Any, field: str) -> None:
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        call(reg)
    assert caught.value.field == field


def test_bad_watcher_arguments(reg: libregistry.Registry) -> None:
    with reg.watch("svc") as watcher:
        for bad_type in ("1", True, [1]):
            with pytest.raises(TypeError):
                watcher.next_change(bad_type)  # type: ignore[arg-type]
        for bad_value in (-1, float("nan"), float("inf")):
            with pytest.raises(libregistry.InvalidArgumentError) as caught:
                watcher.next_change(bad_value)
            assert caught.value.field == "timeout"
        with pytest.raises(TypeError):
            watcher.set_policy(zone=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            watcher.set_policy("z1")  # type: ignore[misc]
        with pytest.raises(libregistry.InvalidArgumentError) as caught:
            watcher.set_policy(deployment="")
        assert caught.value.field == "deployment"
        assert watcher.policy == libregistry.PickPolicy(), "a refused policy changes nothing"
