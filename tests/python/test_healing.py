"""Healing seen from Python: the events a Registry reports while etcd fails,
and what etcd holds afterwards."""

from __future__ import annotations

import time
from typing import List

import libregistry
from etcd_harness import Etcd, drain, wait_until


def test_wiped_etcd_gives_lease_lost_then_restored_and_the_keys_come_back(own_etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(own_etcd.endpoint, ttl=4, prefix=prefix, on_event=events.append) as reg:
        regs = reg.register_many([("svc", f"127.0.0.1:{p}") for p in range(1, 4)])
        old_lease = reg.lease_id
        assert old_lease is not None

        own_etcd.restart(wipe=True)

        drain(events, ["lease_lost", "restored"], 30)
        lost = next(e for e in events if isinstance(e, libregistry.LeaseLost))
        restored = next(e for e in events if isinstance(e, libregistry.Restored))
        assert lost.lease_id == old_lease and lost.reason
        assert restored.registrations == 3 and restored.lease_id != old_lease
        assert 0 < restored.outage < 30

        held = own_etcd.dump(prefix + "/")
        assert set(held) == {r.key for r in regs}
        assert {lease for _, lease in held.values()} == {restored.lease_id}
        assert reg.lease_id == restored.lease_id


def test_key_deleted_from_outside_is_put_back(own_etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(own_etcd.endpoint, prefix=prefix, on_event=events.append) as reg:
        r = reg.register("svc", "127.0.0.1:1", {"zone": "z"})
        before = own_etcd.get(r.key)
        own_etcd.delete(r.key)
        drain(events, ["registered", "key_restored"], 10)
        assert libregistry.KeyRestored(key=r.key) in events
        wait_until(lambda: own_etcd.get(r.key) == before, 5, "the same value back under the same lease")


def test_heal_deleted_keys_false_leaves_a_deleted_key_deleted(own_etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(
        own_etcd.endpoint, prefix=prefix, heal_deleted_keys=False, on_event=events.append
    ) as reg:
        r = reg.register("svc", "127.0.0.1:1")
        own_etcd.delete(r.key)  # at once: even the first re-read must leave it deleted
        marker = reg.register("svc", "127.0.0.1:2")  # ordered after the delete's watch event
        drain(events, ["registered", "registered"], 5)
        assert own_etcd.get(r.key) is None and own_etcd.get(marker.key) is not None
        assert not any(isinstance(e, libregistry.KeyRestored) for e in events)


def test_key_taken_by_another_lease_is_reported_and_left_alone(own_etcd: Etcd, prefix: str) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(own_etcd.endpoint, prefix=prefix, on_event=events.append) as reg:
        r = reg.register("svc", "127.0.0.1:1")
        other = own_etcd.grant(60)
        own_etcd.put(r.key, "theirs", lease=other)
        drain(events, ["registered", "conflict"], 10)
        assert libregistry.Conflict(key=r.key, other_lease=other) in events
        assert own_etcd.get(r.key) == ("theirs", other)


def test_etcd_restarted_on_the_same_data_keeps_the_keys(own_etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(own_etcd.endpoint, ttl=4, prefix=prefix) as reg:
        r = reg.register("svc", "127.0.0.1:1")
        own_etcd.restart()
        wait_until(lambda: own_etcd.get(r.key) is not None, 20, "key present after restart")
        r.update({"weight": 3})  # the Registry works on
        assert '"weight":3' in own_etcd.get(r.key)[0]  # type: ignore[index]
