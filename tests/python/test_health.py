"""Health-gated registration and drain from Python: register(check=...),
withdraw() / restore() on both APIs, the events, and bad checks named."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from typing import Iterator, List, Tuple

import pytest

import libregistry
from etcd_harness import Etcd, wait_until


class _Health:
    """An HTTP server whose /healthz answers 200 while ``healthy``, else 503."""

    def __init__(self) -> None:
        self.healthy = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(200 if outer.healthy and self.path == "/healthz" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def health() -> Iterator[_Health]:
    server = _Health()
    yield server
    server.server.shutdown()


def test_registered_when_ready_withdrawn_while_failing_back_when_passing(
    etcd: Etcd, prefix: str, health: _Health
) -> None:
    events: List[libregistry.Event] = []
    with libregistry.Registry(etcd.endpoint, ttl=5, prefix=prefix, on_event=events.append) as reg:
        threading.Timer(0.4, lambda: setattr(health, "healthy", True)).start()
        started = time.monotonic()
        r = reg.register("web", "127.0.0.1:8080", check=health.url, check_interval=0.1, check_fails=2)
        assert time.monotonic() - started >= 0.4, "registered before the check passed"
        assert etcd.get(r.key) is not None and not r.withdrawn

        health.healthy = False
        wait_until(lambda: etcd.get(r.key) is None, 0.2 + 1, "withdrawn by its failing check")
        assert r.withdrawn and r.registered
        health.healthy = True
        wait_until(lambda: etcd.get(r.key) is not None, 1, "written back once passing")
        wait_until(lambda: any(isinstance(e, libregistry.Reinstated) for e in events), 2, "Reinstated")
    reasons: List[Tuple[str, str]] = [
        (type(e).__name__, e.reason) for e in events if isinstance(e, (libregistry.Withdrawn, libregistry.Reinstated))
    ]
    assert reasons == [
        ("Withdrawn", f"health check {health.url} failed 2 times in a row: HTTP status 503"),
        ("Reinstated", f"health check {health.url} passes again"),
    ]


def test_withdraw_and_restore_by_hand(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        r = reg.register("drain", "127.0.0.1:9000")
        r.withdraw()
        r.withdraw()  # again: nothing to do
        assert r.withdrawn and etcd.get(r.key) is None
        assert reg.discover("drain") == []
        r.update({"weight": 5})
        r.restore()
        assert not r.withdrawn
        value, _ = etcd.get(r.key) or ("", 0)
        assert '"weight":5' in value, "an update made while withdrawn is written on restore"
        r.deregister()
        with pytest.raises(libregistry.NotRegisteredError, match="drain"):
            r.withdraw()


def test_async_withdraw_and_restore(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        async with libregistry.AsyncRegistry(etcd.endpoint, prefix=prefix) as reg:
            r = await reg.register("adrain", "127.0.0.1:9001")
            await r.withdraw()
            assert r.withdrawn and etcd.get(r.key) is None
            await r.restore()
            assert etcd.get(r.key) is not None

    asyncio.run(main())


def test_bad_checks_are_refused_by_name_and_nothing_is_written(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        with pytest.raises(libregistry.InvalidArgumentError, match="invalid check: .*scheme"):
            reg.register("web", "127.0.0.1:1", check="ftp://127.0.0.1:1")
        with pytest.raises(libregistry.InvalidArgumentError, match="check interval: 1 ms is not between"):
            reg.register("web", "127.0.0.1:1", check="tcp://127.0.0.1:1", check_interval=0.001)
        with pytest.raises(libregistry.InvalidArgumentError, match="check fails: must be at least 1"):
            reg.register("web", "127.0.0.1:1", check="tcp://127.0.0.1:1", check_fails=0)
        with pytest.raises(TypeError, match="check_fails must be int, not str"):
            reg.register("web", "127.0.0.1:1", check="tcp://127.0.0.1:1", check_fails="3")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="check must be str, not int"):
            reg.register("web", "127.0.0.1:1", check=8080)  # type: ignore[arg-type]
        with pytest.raises(libregistry.InvalidArgumentError, match="check_interval: is given without a check"):
            reg.register("web", "127.0.0.1:1", check_interval=0.5)
        assert etcd.dump(prefix) == {}
