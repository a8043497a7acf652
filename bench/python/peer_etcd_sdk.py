"""Peer: registering with Python's etcd-sdk-python (import name ``pyetcd``,
a maintained fork of ``etcd3``), under the benchmark's driver protocol
(bench/src/driver.rs): ``python peer_etcd_sdk.py ENDPOINTS``.

The way its users register: one lease per process (``client.lease(ttl)``),
every service ``put`` under it, and a refresh thread calling
``lease.refresh()`` every TTL/3; deregister is ``delete``. The value is the
seed's JSON with the same metadata libregistry writes, so both move the
same bytes. Like the seed, it does not register again after a lost lease.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from importlib.metadata import version
from typing import Any, Dict, List
from urllib.parse import urlparse

import pyetcd

from protocol import addr, serve, threads_and_rss

TTL = 10
METADATA = {"region": "beijing", "zone": "zone1", "deployment": "red", "weight": 100, "scheme": "grpc"}


def value(name: str, address: str) -> str:
    host, _, port = address.rpartition(":")
    meta = dict(METADATA, ip=host, port=int(port))
    return json.dumps(
        {"Addr": address, "ServerName": name, "Attributes": None, "Type": 0, "Metadata": meta},
        separators=(",", ":"),
    )


class Session:
    """One lease and the thread refreshing it every TTL/3."""

    def __init__(self, client: Any) -> None:
        self.lease = client.lease(TTL)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._refresh, daemon=True)
        self.thread.start()

    def _refresh(self) -> None:
        while not self.stop.wait(TTL / 3):
            try:
                self.lease.refresh()
            except Exception as e:  # the seed's way: give up, say so
                print(f"refresh failed: {e}", file=sys.stderr)
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.lease.revoke()


def main() -> None:
    before = threads_and_rss()
    endpoint = urlparse(sys.argv[1].split(",")[0])
    client = pyetcd.client(host=endpoint.hostname or "127.0.0.1", port=endpoint.port or 2379, timeout=5)
    session = Session(client)
    counter = [0]

    def latency(n: int) -> Dict[str, Any]:
        register: List[float] = []
        deregister: List[float] = []
        for _ in range(n):
            i = counter[0] = counter[0] + 1
            address = f"127.0.0.1:{1 + i % 60000}"
            key, val = f"/bench-peer/{address}", value("bench-peer", address)
            start = time.perf_counter_ns()
            client.put(key, val, lease=session.lease)
            register.append((time.perf_counter_ns() - start) / 1000)
            start = time.perf_counter_ns()
            client.delete(key)
            deregister.append((time.perf_counter_ns() - start) / 1000)
        return {"register_us": register, "deregister_us": deregister}

    def bulk(n: int) -> Dict[str, Any]:
        entries = [(f"/bulk-peer/{addr(i)}", value("bulk-peer", addr(i))) for i in range(n)]
        start = time.perf_counter()
        s = Session(client)
        for key, val in entries:
            client.put(key, val, lease=s.lease)
        secs = time.perf_counter() - start
        s.close()
        return {"secs": secs}

    def hold(n: int) -> Dict[str, Any]:
        # Under the process's one lease, as its registrations live.
        for i in range(n):
            client.put(f"/footprint-peer/{addr(i)}", value("footprint-peer", addr(i)), lease=session.lease)
        threads, rss = threads_and_rss()
        return {"threads": threads, "rss_kb": rss}

    def release(_: int) -> Dict[str, Any]:
        client.delete_prefix("/footprint-peer/")
        return {}

    def info(_: int) -> Dict[str, Any]:
        return {
            "client": "etcd-sdk-python",
            "version": version("etcd-sdk-python"),
            "how": "one lease per process, put with it, a thread calling lease.refresh() every TTL/3; "
            f"grpcio {version('grpcio')}, protobuf {version('protobuf')}",
        }

    try:
        serve({"latency": latency, "bulk": bulk, "hold": hold, "release": release, "info": info}, before)
    finally:
        session.close()


if __name__ == "__main__":
    main()
