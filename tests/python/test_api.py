"""Every method and property of the blocking API, checked against what etcd holds."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
from typing import List

import pytest

import libregistry
from etcd_harness import ROOT, Etcd, drain, wait_until

def _example_metadata() -> libregistry.Metadata:
    """The seed's metadata, as the example provider registers it."""
    spec = importlib.util.spec_from_file_location("provider_example", ROOT / "examples/python/provider.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metadata: libregistry.Metadata = module.SEED_METADATA
    return metadata


SEED_METADATA = _example_metadata()


def test_seed_example_shows_the_wire_format_in_etcdctl_and_deregister_removes_it(etcd: Etcd) -> None:
    with libregistry.Registry(etcd.endpoint, ttl=10) as reg:
        r = reg.register("micro", "127.0.0.1:4000", SEED_METADATA)
        assert r.key == "/micro/127.0.0.1:4000"
        lines = etcd.etcdctl("get", "--prefix", "/micro/").splitlines()
        assert lines[0] == "/micro/127.0.0.1:4000"
        start_time = json.loads(lines[1])["Metadata"]["startTime"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", start_time)
        assert lines[1] == (
            '{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,'
            '"Metadata":{"env":"dev","region":"beijing","zone":"zone1","ip":"127.0.0.1","port":4000,'
            '"scheme":"grpc","weight":100,"deployment":"red","frameVersion":"' + libregistry.__version__ + '",'
            '"appVersion":"ahkfasgasdf","buildTime":"2020-10-14T10:00:00Z","startTime":"' + start_time + '"}}'
        )
        _, lease = etcd.get(r.key) or ("", 0)
        assert lease == reg.lease_id
        r.deregister()
        assert etcd.etcdctl("get", "--prefix", "/micro/") == ""
        assert not r.registered
        r.deregister()  # idempotent


def test_registry_properties_and_repr(etcd: Etcd, prefix: str) -> None:
    reg = libregistry.Registry([etcd.endpoint], 7, prefix=prefix, request_timeout=3)
    try:
        assert reg.endpoints == [etcd.endpoint]
        assert reg.prefix == prefix
        assert reg.ttl == 7
        assert reg.request_timeout == 3.0
        assert reg.lease_id is None, "no lease before the first registration"
        reg.register("svc", "127.0.0.1:1")
        assert isinstance(reg.lease_id, int) and reg.lease_id > 0
        assert etcd.lease_alive(reg.lease_id)
        assert not reg.closed
        assert reg.key_of("svc", "h:1") == f"{prefix}/svc/h:1"
        assert f"lease_id={reg.lease_id:x}" in repr(reg) and repr(reg.lease_id) == f"{reg.lease_id:x}"
    finally:
        reg.close()
    assert reg.closed
    assert reg.lease_id is None or not etcd.lease_alive(reg.lease_id)


def test_endpoints_as_comma_separated_text_and_from_the_environment(
    etcd: Etcd, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with libregistry.Registry(f"{etcd.endpoint}, {etcd.endpoint}", prefix=prefix) as reg:
        assert reg.endpoints == [etcd.endpoint, etcd.endpoint]
    monkeypatch.setenv("REGISTRY_ENDPOINTS", etcd.endpoint)
    monkeypatch.setenv("REGISTRY_TTL", "4")
    monkeypatch.setenv("REGISTRY_PREFIX", prefix)
    monkeypatch.setenv("REGISTRY_REGION", "env-region")
    with libregistry.Registry() as reg:
        assert reg.endpoints == [etcd.endpoint] and reg.ttl == 4 and reg.prefix == prefix
        r = reg.register("svc", "127.0.0.1:1", {"zone": "z"})
        meta = json.loads(etcd.get(r.key)[0])["Metadata"]  # type: ignore[index]
        assert meta["region"] == "env-region" and meta["zone"] == "z"
    with libregistry.Registry(ttl=5, prefix="") as reg:  # the API wins over the environment
        assert reg.ttl == 5 and reg.prefix == ""


def test_register_update_and_registration_properties(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        r = reg.register("svc", "[::1]:8080", {"region": "r1", "weight": "7", "shard": "a"})
        assert (r.key, r.name, r.addr) == (f"{prefix}/svc/[::1]:8080", "svc", "[::1]:8080")
        assert r.metadata == {"region": "r1", "weight": "7", "shard": "a"}
        meta = json.loads(etcd.get(r.key)[0])["Metadata"]  # type: ignore[index]
        assert (meta["ip"], meta["port"], meta["weight"], meta["shard"]) == ("::1", 8080, 7, "a")

        r.update({"weight": 0, "region": "r2"})
        value, lease = etcd.get(r.key)  # type: ignore[misc]
        assert lease == reg.lease_id
        meta = json.loads(value)["Metadata"]
        assert (meta["weight"], meta["region"], meta["shard"]) == (0, "r2", "a")
        assert r.metadata == {"region": "r2", "weight": "0", "shard": "a"}
        assert "registered=True" in repr(r)


def test_register_many_is_one_batch_all_or_nothing(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        regs = reg.register_many(
            [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2", {"zone": "z"}), ["c", "127.0.0.1:3", None]]  # type: ignore[list-item]
        )
        assert [r.key for r in regs] == [f"{prefix}/a/127.0.0.1:1", f"{prefix}/b/127.0.0.1:2", f"{prefix}/c/127.0.0.1:3"]
        assert set(etcd.dump(prefix + "/")) == {r.key for r in regs}
        many = reg.register_many((("bulk", f"10.0.{i // 250}.{i % 250}:80") for i in range(300)))
        assert len(many) == 300 and len(etcd.dump(prefix + "/bulk/")) == 300
        with pytest.raises(libregistry.AlreadyRegisteredError):
            reg.register_many([("new", "127.0.0.1:9"), ("a", "127.0.0.1:1")])
        assert etcd.get(f"{prefix}/new/127.0.0.1:9") is None, "all or nothing"
        assert reg.register_many([]) == []


def test_close_revokes_the_lease_and_everything_vanishes_at_once(etcd: Etcd, prefix: str) -> None:
    reg = libregistry.Registry(etcd.endpoint, prefix=prefix)
    reg.register_many([("svc", f"127.0.0.1:{p}") for p in range(1, 6)])
    assert len(etcd.dump(prefix + "/")) == 5
    lease = reg.lease_id
    reg.close()
    assert etcd.dump(prefix + "/") == {}
    assert lease is not None and not etcd.lease_alive(lease)
    reg.close()  # idempotent


def test_context_managers_deregister_and_close(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg, reg.register("micro", "127.0.0.1:4000") as r:
        assert etcd.get(r.key) is not None
        with reg.register("other", "127.0.0.1:4001") as inner:
            assert etcd.get(inner.key) is not None
        assert etcd.get(inner.key) is None
        assert etcd.get(r.key) is not None
    assert etcd.dump(prefix + "/") == {}
    assert reg.closed and not r.registered


def test_events_registered_deregistered_closed_in_order(etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    threads: List[str] = []

    def on_event(event: libregistry.Event) -> None:
        threads.append(threading.current_thread().name)
        events.append(event)

    reg = libregistry.Registry(etcd.endpoint, prefix=prefix, on_event=on_event)
    r = reg.register("svc", "127.0.0.1:1")
    r.deregister()
    reg.close()
    drain(events, ["registered", "deregistered", "closed"], 5)
    assert events == [
        libregistry.Registered(key=r.key),
        libregistry.Deregistered(key=r.key),
        libregistry.Closed(),
    ]
    assert set(threads) == {"libregistry-dispatch"}, "callbacks run on the dispatcher thread"


def test_the_second_registrant_hears_it_took_the_key_over(etcd: Etcd, prefix: str) -> None:
    first_events: List[libregistry.Event] = []
    second_events: List[libregistry.Event] = []
    with libregistry.Registry(etcd.endpoint, prefix=prefix, on_event=first_events.append) as first, libregistry.Registry(
        etcd.endpoint, prefix=prefix, on_event=second_events.append
    ) as second:
        r = first.register("svc", "127.0.0.1:1")
        first_lease = first.lease_id
        second.register("svc", "127.0.0.1:1")
        assert first_lease is not None and second.lease_id is not None
        drain(second_events, ["took_over", "registered"], 5)
        assert libregistry.TookOver(key=r.key, from_lease=first_lease) in second_events
        drain(first_events, ["registered", "conflict"], 5)
        conflict = [e for e in first_events if isinstance(e, libregistry.Conflict)]
        assert conflict == [libregistry.Conflict(key=r.key, other_lease=second.lease_id)]
        took_over = next(e for e in second_events if isinstance(e, libregistry.TookOver))
        assert repr(took_over) == f"TookOver(key={r.key!r}, from_lease={first_lease:x})", "lease ids print in hex"
        assert etcd.get(r.key)[1] == second.lease_id  # type: ignore[index]  # the newest registration wins


def test_a_consumer_logs_no_warning_when_etcd_restarts(own_etcd: Etcd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="libregistry")
    with libregistry.Registry(own_etcd.endpoint) as consumer, consumer.watch("svc") as watcher:
        own_etcd.restart()
        own_etcd.put("/svc/127.0.0.1:1", '{"Addr":"127.0.0.1:1"}')
        wait_until(lambda: len(watcher.instances()) == 1, 15, "the watcher follows after the restart")
    warnings = [r for r in caplog.records if r.name == "libregistry" and r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_a_raising_callback_is_logged_and_delivery_goes_on(
    etcd: Etcd, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: List[str] = []

    def flaky(event: libregistry.Event) -> None:
        seen.append(event.kind)
        if event.kind == "registered":
            raise RuntimeError("callback bug")

    caplog.set_level(logging.ERROR, logger="libregistry")
    with libregistry.Registry(etcd.endpoint, prefix=prefix, on_event=flaky) as reg:
        reg.register("svc", "127.0.0.1:1").deregister()
    wait_until(lambda: seen[-1:] == ["closed"], 5, "closed delivered")
    assert any("callback bug" in (r.exc_text or "") for r in caplog.records if r.name == "libregistry")


def test_library_logs_reach_python_logging(etcd: Etcd, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="libregistry")
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        reg.register("svc", "127.0.0.1:1")
        lease = reg.lease_id
    assert lease is not None

    def granted() -> bool:
        return any(
            r.name == "libregistry" and r.levelno == logging.INFO and f"lease={lease:x}" in r.getMessage()
            for r in caplog.records
        )

    wait_until(granted, 5, "'lease granted' logged under libregistry")
    record = next(r for r in caplog.records if f"lease={lease:x}" in r.getMessage())
    assert getattr(record, "target", "").startswith("libregistry")
    assert record.threadName == "libregistry-dispatch"


def test_public_names() -> None:
    for name in libregistry.__all__:
        assert hasattr(libregistry, name), name
    assert libregistry.aio.AsyncRegistry is libregistry.AsyncRegistry
    assert issubclass(libregistry.InvalidArgumentError, ValueError)
    for name in [n for n in libregistry.__all__ if n.endswith("Error")]:
        assert issubclass(getattr(libregistry, name), libregistry.RegistryError)
    assert libregistry.RegistryError.__module__ == "libregistry"


def test_a_registry_dropped_without_close_revokes_once_no_handle_is_left(etcd: Etcd, prefix: str) -> None:
    import gc

    reg = libregistry.Registry(etcd.endpoint, prefix=prefix)
    r = reg.register("svc", "127.0.0.1:1")
    key, lease = r.key, reg.lease_id
    del reg
    gc.collect()
    assert etcd.get(key) is not None, "a registration handle keeps its Registry alive"
    del r
    gc.collect()
    wait_until(lambda: etcd.get(key) is None, 5, "revoked in the background")
    assert lease is not None and not etcd.lease_alive(lease)


@pytest.mark.parametrize("prefix_kind", ["none", "own"])
def test_registering_one_after_another_keeps_etcd_healthy(own_etcd: Etcd, prefix: str, prefix_kind: str) -> None:
    # A provider registering its instances one by one, as users do.
    etcd = own_etcd
    prefix = "" if prefix_kind == "none" else prefix
    name = "seq"
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        for port in range(1000, 1200):
            reg.register(name, f"127.0.0.1:{port}")
        assert len(etcd.dump(f"{prefix}/{name}/")) == 200
    assert etcd.proc is not None and etcd.proc.poll() is None, "etcd died: " + etcd.died_of()
