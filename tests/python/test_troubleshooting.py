"""README's Troubleshooting says what the library prints: each failure it
describes is made here against a real etcd, and its text (error, event
reason or log line) must stand in that section, up to the address, key and
lease of this run. The NOSPACE way out given there is run as written."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import libregistry
from etcd_harness import Certs, Etcd, etcdctl_binary

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("\n## Troubleshooting\n")
    return text[start : text.index("\n## ", start + 1)]


def normalized(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"https?://127\.0\.0\.1:\d+", "URL", text)
    return re.sub(r"\([0-9a-f]{6,16}\)", "(LEASE)", text)


def said() -> List[str]:
    """Every `code span` of the section, normalized."""
    return [normalized(span) for span in re.findall(r"`([^`]+)`", section())]


def assert_said(message: str) -> None:
    assert normalized(message) in said(), f"README's Troubleshooting does not say: {message}"


def error_of(make: Callable[[], object]) -> str:
    with pytest.raises(libregistry.RegistryError) as caught:
        make()
    return str(caught.value)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    # pytest's own temp dirs: it keeps the last few runs' and removes older ones.
    return Certs(tmp_path_factory.mktemp("lr-trouble"))


@pytest.fixture
def logs() -> Iterator[List[str]]:
    """The libregistry log lines, without their `key=value` fields."""
    lines: List[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(re.split(r" \w+=", record.getMessage())[0])

    logger = logging.getLogger("libregistry")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_unreachable_etcd(etcd: Etcd) -> None:
    assert_said(error_of(lambda: libregistry.Registry("http://127.0.0.1:1", request_timeout=1)))


def test_tls_mismatches(etcd: Etcd, certs: Certs) -> None:
    tls = Etcd(certs).start()
    mtls = Etcd(certs, client_cert_auth=True).start()
    try:
        plain_to_tls = tls.endpoint.replace("https:", "http:")
        assert_said(error_of(lambda: libregistry.Registry(plain_to_tls, request_timeout=2)))
        assert_said(error_of(lambda: libregistry.Registry(tls.endpoint, ca_file=certs.other_ca)))
        assert_said(error_of(lambda: libregistry.Registry(tls.endpoint)))
        tls_to_plain = etcd.endpoint.replace("http:", "https:")
        assert_said(error_of(lambda: libregistry.Registry(tls_to_plain, ca_file=certs.ca, request_timeout=2)))
        assert_said(error_of(lambda: libregistry.Registry(mtls.endpoint, ca_file=certs.ca, request_timeout=2)))
    finally:
        tls.stop()
        mtls.stop()


def test_permission_denied(own_etcd: Etcd) -> None:
    own_etcd.add_user("svc", "right", "/micro/")
    own_etcd.enable_auth("root-password")
    assert_said(error_of(lambda: libregistry.Registry(own_etcd.endpoint, user="svc", password="wrong")))
    with libregistry.Registry(own_etcd.endpoint, user="svc", password="right") as reg:
        assert_said(error_of(lambda: reg.register("orders", "127.0.0.1:8080")))


def test_lease_lost_and_restored(own_etcd: Etcd, logs: List[str]) -> None:
    reasons: List[str] = []
    on_event = lambda e: reasons.append(e.reason) if isinstance(e, libregistry.LeaseLost) else None  # noqa: E731
    with libregistry.Registry(own_etcd.endpoint, ttl=3, on_event=on_event) as reg:
        reg.register("micro", "127.0.0.1:4000")
        own_etcd.etcdctl("lease", "revoke", format(reg.lease_id, "x"))
        wait_for(lambda: "registrations restored" in logs, "restored after a revoke")
        own_etcd.kill()
        wait_for(lambda: len(reasons) == 2, "a lost lease after etcd died")
        own_etcd.restart()
    for reason in reasons:
        assert_said(reason)
    assert "lease lost" in logs, logs
    assert_said("lease lost")


def test_a_key_taken_over(etcd: Etcd, prefix: str, logs: List[str]) -> None:
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as old, libregistry.Registry(etcd.endpoint, prefix=prefix) as new:
        mine = old.register("micro", "127.0.0.1:4000")
        new.register("micro", "127.0.0.1:4000")
        wait_for(lambda: any("by another process; leaving it" in line for line in logs), "the old one's Conflict")
        assert_said(error_of(lambda: mine.update({"weight": "5"})).replace(prefix, ""))
    took_over = "registered a key another process held; it is ours now (the newest registration wins)"
    assert took_over in logs, logs
    assert_said(took_over)
    for line in logs:
        if "by another process; leaving it" in line:
            assert_said(line)


def test_nospace_and_the_way_out(etcd: Etcd) -> None:
    full = Etcd(extra_args=["--quota-backend-bytes", str(2 * 1024 * 1024)]).start()
    try:
        blob = os.urandom(75_000).hex()  # 150 kB a value: the quota is reached within ~14
        for n in range(100):
            try:
                full.put(f"/fill/{n}", blob)
            except OSError:
                break
        assert "NOSPACE" in full.etcdctl("alarm", "list")
        with libregistry.Registry(full.endpoint) as reg:
            assert_said(error_of(lambda: reg.register("micro", "127.0.0.1:4000")))
            full.etcdctl("del", "--prefix", "/fill/")
            (way_out,) = re.findall(r"```sh\n(.*?alarm disarm.*?)```", section(), re.S)
            env = dict(os.environ, ETCDCTL_ENDPOINTS=full.endpoint)
            env["PATH"] = f"{Path(etcdctl_binary()).parent}{os.pathsep}{env['PATH']}"
            env.pop("ETCDCTL_API", None)
            subprocess.run(["bash", "-euo", "pipefail", "-c", way_out], env=env, check=True, timeout=60)
            reg.register("micro", "127.0.0.1:4000").deregister()
    finally:
        full.stop()


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)
