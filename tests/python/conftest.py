"""Fixtures: a real etcd per session (and a private one per test for tests
that kill, wipe or freeze it), and a fresh key prefix per test."""

from __future__ import annotations

import itertools
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etcd_harness import Etcd, etcd_binary, etcd_version  # noqa: E402

_prefixes = itertools.count()

# The tests that send SIGINT (Ctrl-C) need children that do not ignore it.
# A shell starts a background job (`make test &`) with SIGINT ignored, and
# exec passes that on: Python then raises no KeyboardInterrupt and such a
# test would wait for nothing. A handled signal is reset to the default at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> str:
    import libregistry

    return f"libregistry {libregistry.__version__} from {Path(libregistry.__file__).parent}; etcd {etcd_version()} ({etcd_binary()})"


@pytest.fixture(scope="session")
def session_etcd() -> Iterator[Etcd]:
    member = Etcd().start()
    yield member
    member.stop()


@pytest.fixture
def etcd(session_etcd: Etcd) -> Iterator[Etcd]:
    """One etcd shared by the session; tests keep to their own prefix. If it
    died during a test, that test fails with etcd's last words and the next
    test gets a fresh one."""
    yield session_etcd
    if session_etcd.proc is not None and session_etcd.proc.poll() is not None:
        last_words = session_etcd.died_of()
        session_etcd.restart(wipe=True)
        pytest.fail(f"etcd exited during this test: {last_words}")


@pytest.fixture
def own_etcd() -> Iterator[Etcd]:
    """A private etcd this test may kill, wipe or freeze."""
    member = Etcd().start()
    yield member
    member.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"/t{next(_prefixes)}"
