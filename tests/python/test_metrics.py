"""Metrics from Python: the names Rust and C use, counters that move by
exactly what a fault did, and a text that prometheus_client parses and
serves through ``libregistry.prometheus.RegistryCollector``."""

from __future__ import annotations

import asyncio
from typing import Dict, Set, Tuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import libregistry
from etcd_harness import Etcd, wait_until
from libregistry.prometheus import RegistryCollector

REASONS = ("expired", "not_found", "timeout", "stream_broken")


def leases_lost(m: Dict[str, float]) -> float:
    return sum(m[f'libregistry_leases_lost_total{{reason="{r}"}}'] for r in REASONS)


def test_counters_move_by_what_a_revoke_and_a_wipe_did(own_etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(own_etcd.endpoint, ttl=2, prefix=prefix) as reg:
        reg.register_many([("svc", "127.0.0.1:1"), ("svc", "127.0.0.1:2")])
        m = reg.metrics()
        assert m["libregistry_registrations"] == 2
        assert m["libregistry_lease_grants_total"] == 1
        assert leases_lost(m) == 0 and m["libregistry_outage_seconds_total"] == 0

        lease = reg.lease_id
        assert lease is not None
        own_etcd.revoke(lease)
        wait_until(lambda: reg.metrics()["libregistry_keys_restored_total"] == 2, 15, "both keys written back")
        m = reg.metrics()
        assert leases_lost(m) == 1 and m["libregistry_lease_grants_total"] == 2
        outage = m["libregistry_outage_seconds_total"]
        assert outage > 0

        own_etcd.restart(wipe=True)
        wait_until(lambda: reg.metrics()["libregistry_keys_restored_total"] == 4, 30, "written back again")
        m = reg.metrics()
        assert leases_lost(m) == 2 and m["libregistry_lease_grants_total"] == 3
        assert m["libregistry_outage_seconds_total"] > outage
        assert m["libregistry_registrations"] == 2
        assert set(own_etcd.dump(prefix + "/")) == {reg.key_of("svc", "127.0.0.1:1"), reg.key_of("svc", "127.0.0.1:2")}


def test_the_text_parses_with_prometheus_client_and_matches_metrics(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        reg.register("svc", "127.0.0.1:1")
        watcher = reg.watch("svc")
        families = {f.name: f for f in text_string_to_metric_families(reg.metrics_text())}
        # prometheus_client names a counter's family without its _total.
        assert families["libregistry_lease_grants"].type == "counter"
        assert families["libregistry_registrations"].type == "gauge"
        assert families["libregistry_keepalive_rtt_seconds"].type == "histogram"
        parsed: Set[Tuple[str, Tuple[Tuple[str, str], ...]]] = set()
        for family in families.values():
            for sample in family.samples:
                parsed.add((sample.name, tuple(sorted(sample.labels.items()))))
        m = reg.metrics()
        named = {(k.split("{")[0], tuple(sorted(_labels(k).items()))) for k in m}
        assert parsed == named, "the text and metrics() hold the same samples"
        assert m["libregistry_watchers"] == 1
        watcher.close()


def _labels(sample: str) -> Dict[str, str]:
    if "{" not in sample:
        return {}
    inside = sample[sample.index("{") + 1 : -1]
    return {k: v.strip('"') for k, v in (pair.split("=", 1) for pair in inside.split(","))}


def test_the_collector_serves_a_registry_on_prometheus_clients_metrics(etcd: Etcd, prefix: str) -> None:
    collectors = CollectorRegistry()
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        collectors.register(RegistryCollector(reg))
        reg.register("svc", "127.0.0.1:1")
        page = generate_latest(collectors).decode()
        assert "# TYPE libregistry_registrations gauge\nlibregistry_registrations 1.0\n" in page
        assert "libregistry_lease_grants_total 1.0\n" in page
    assert generate_latest(collectors) == b"", "a closed registry is no longer served"


def test_an_async_registry_is_served_once_connected(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        collectors = CollectorRegistry()
        reg = libregistry.AsyncRegistry(etcd.endpoint, prefix=prefix)
        collectors.register(RegistryCollector(reg))
        assert generate_latest(collectors) == b"", "not connected: nothing to serve, no error"
        async with reg:
            await reg.register("svc", "127.0.0.1:1")
            assert b"libregistry_registrations 1.0\n" in generate_latest(collectors)

    asyncio.run(main())
