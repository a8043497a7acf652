"""Whole processes, as users run them: the example provider with its
signals, SIGKILL, Ctrl-C during a call, and pre-fork servers."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from typing import Dict, Iterator

import pytest

import libregistry
from etcd_harness import ROOT, Etcd, read_until, spawn, wait_until

PROVIDER = ROOT / "examples" / "python" / "provider.py"


@pytest.fixture
def provider_env(own_etcd: Etcd) -> Iterator[Dict[str, str]]:
    # Its own etcd: the example registers the seed's exact key, /micro/127.0.0.1:4000.
    yield {"REGISTRY_ENDPOINTS": own_etcd.endpoint, "REGISTRY_TTL": "3"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_example_provider_registers_until_signalled_then_deregisters(
    own_etcd: Etcd, provider_env: Dict[str, str], sig: signal.Signals
) -> None:
    etcd = own_etcd
    proc = spawn([str(PROVIDER)], provider_env)
    try:
        read_until(proc, "registered ")
        key = "/micro/127.0.0.1:4000"
        lines = etcd.etcdctl("get", "--prefix", "/micro/").splitlines()
        assert lines[0] == key
        value = json.loads(lines[1])
        assert value["Addr"] == "127.0.0.1:4000" and value["ServerName"] == "micro"
        assert list(value) == ["Addr", "ServerName", "Attributes", "Type", "Metadata"]
        assert (value["Attributes"], value["Type"]) == (None, 0)
        assert list(value["Metadata"].items())[:-1] == [
            ("env", "dev"), ("region", "beijing"), ("zone", "zone1"), ("ip", "127.0.0.1"), ("port", 4000),
            ("scheme", "grpc"), ("weight", 100), ("deployment", "red"), ("frameVersion", libregistry.__version__),
            ("appVersion", "ahkfasgasdf"), ("buildTime", "2020-10-14T10:00:00Z"),
        ]
        assert list(value["Metadata"])[-1] == "startTime"
        proc.send_signal(sig)
        out = read_until(proc, "deregistered ")
        assert proc.wait(10) == 0, out
        assert etcd.get(key) is None
    finally:
        proc.kill()
        proc.wait()


def test_sigkill_leaves_the_key_until_the_lease_expires(own_etcd: Etcd, provider_env: Dict[str, str]) -> None:
    etcd = own_etcd
    proc = spawn([str(PROVIDER)], provider_env)
    key = "/micro/127.0.0.1:4000"
    try:
        read_until(proc, "registered ")
        assert etcd.get(key) is not None
    finally:
        proc.kill()  # SIGKILL: no goodbye
        proc.wait()
    killed = time.monotonic()
    gone_after = wait_until(lambda: etcd.get(key) is None, 15, "key expired with the lease")
    # TTL 3 s: etcd drops the key about then (never at once: nobody revoked it).
    assert 1.0 < gone_after < 3 + 5, gone_after
    assert time.monotonic() - killed < 10


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, time, libregistry
    reg = libregistry.Registry(sys.argv[1], prefix=sys.argv[2], request_timeout=5)
    print("ready", flush=True)
    sys.stdin.readline()  # the test froze etcd
    start = time.monotonic()
    try:
        reg.register("svc", "127.0.0.1:1")
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - start:.3f}", flush=True)
    sys.stdin.readline()  # the test thawed etcd; the interrupted register is undone meanwhile
    marker = reg.register("marker", "127.0.0.1:2")
    print("marker", flush=True)
    sys.stdin.readline()
    reg.close()
    """
)


def test_ctrl_c_interrupts_a_blocked_call_and_leaves_nothing(own_etcd: Etcd, prefix: str) -> None:
    proc = spawn(["-c", CTRL_C_SCRIPT, own_etcd.endpoint, prefix], {})
    assert proc.stdin is not None
    try:
        read_until(proc, "ready")
        own_etcd.freeze()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(0.5)  # let it block in register (setup, not an assertion)
        proc.send_signal(signal.SIGINT)
        line = read_until(proc, "interrupted")[-1]
        assert line.startswith("interrupted after"), line
        assert float(line.split()[-1]) < 2.0, "Ctrl-C took effect promptly, not after the request timeout"
        own_etcd.thaw()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        read_until(proc, "marker")
        wait_until(
            lambda: set(own_etcd.dump(prefix + "/")) == {f"{prefix}/marker/127.0.0.1:2"},
            10,
            "only the marker is registered: the interrupted register was undone",
        )
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
    finally:
        if own_etcd.frozen:
            own_etcd.thaw()
        proc.kill()
        proc.wait()


EXIT_WHILE_WAITING_SCRIPT = textwrap.dedent(
    """
    import sys, threading, libregistry
    reg = libregistry.Registry(sys.argv[1], prefix=sys.argv[2], ttl=2)
    watcher = reg.watch("svc")
    def spin():  # in and out of native waits all the time
        while True:
            watcher.next_change(timeout=0.001)
    for _ in range(8):
        threading.Thread(target=spin, daemon=True).start()
    closed = reg.watch("svc")
    threading.Thread(target=lambda: list(closed), daemon=True).start()
    reg.register("svc", "127.0.0.1:1")
    closed.close()  # its iterating thread wakes as the interpreter exits
    print("bye", flush=True)
    """
)


def test_exit_while_daemon_threads_wait_in_native_code(etcd: Etcd, prefix: str) -> None:
    # Before py/src/exiting.rs this script crashed (SIGSEGV) at every exit:
    # a daemon thread taking the GIL back during finalization.
    for run in range(5):
        proc = spawn(["-c", EXIT_WHILE_WAITING_SCRIPT, etcd.endpoint, prefix], {})
        try:
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 0 and out.rstrip().endswith("bye"), f"run {run}: exit {proc.returncode}:\n{out}"
    # The registry was never closed: the lease expires, nothing is left behind.
    wait_until(lambda: etcd.dump(prefix + "/") == {}, 15, "the unclosed registry's key expired")


PREFORK_SCRIPT = textwrap.dedent(
    """
    # A pre-fork server, gunicorn style: import (and even use) libregistry in
    # the parent, fork workers, each worker registers with its own Registry.
    import json, os, sys, libregistry

    endpoint, prefix, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parent_events = []
    parent = libregistry.Registry(endpoint, prefix=prefix, on_event=parent_events.append)
    parent.register("master", "127.0.0.1:3999")

    children = []
    for n in range(workers):
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(up_r)
            os.close(down_w)
            report = {"worker": n, "pid": os.getpid()}
            try:
                parent.register("inherited", f"127.0.0.1:{4900 + n}")
                report["inherited"] = "registered?!"
            except libregistry.ForkedError as e:
                report["inherited"] = type(e).__name__
                report["created_in"], report["now_in"] = e.created_in, e.now_in
            events = []
            reg = libregistry.Registry(endpoint, prefix=prefix, on_event=events.append)
            r = reg.register("worker", f"127.0.0.1:{5000 + n}", {"deployment": f"w{n}"})
            report["key"] = r.key
            import time
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
            report["events"] = [e.kind for e in events]
            os.write(up_w, (json.dumps(report) + "\\n").encode())
            os.read(down_r, 1)  # parent says stop (or exits)
            reg.close()
            os._exit(0)
        os.close(up_w)
        os.close(down_r)
        children.append((pid, os.fdopen(up_r), down_w))

    for pid, up, down in children:
        print(up.readline().strip(), flush=True)
    sys.stdin.readline()  # the test has looked at etcd
    for pid, up, down in children:
        os.write(down, b"x")
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exited": pid, "status": status}), flush=True)
    parent.register("master", "127.0.0.1:3998")  # the parent's Registry still works
    print("parent ok", flush=True)
    sys.stdin.readline()
    parent.close()
    """
)


def test_prefork_workers_each_register_and_inherited_registries_refuse(etcd: Etcd, prefix: str) -> None:
    workers = 3
    proc = spawn(["-c", PREFORK_SCRIPT, etcd.endpoint, prefix, str(workers)], {})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reports = [json.loads(proc.stdout.readline()) for _ in range(workers)]
        parent_pid = proc.pid
        for n, report in enumerate(sorted(reports, key=lambda r: r["worker"])):
            assert report["inherited"] == "ForkedError", report
            assert report["created_in"] == parent_pid and report["now_in"] == report["pid"] != parent_pid
            assert report["key"] == f"{prefix}/worker/127.0.0.1:{5000 + n}"
            assert report["events"] == ["registered"], "the worker's own events reach its callback"
        held = etcd.dump(prefix + "/")
        assert set(held) == {f"{prefix}/master/127.0.0.1:3999"} | {r["key"] for r in reports}
        assert len({lease for _, lease in held.values()}) == workers + 1, "a lease per process"
        assert all(f'"deployment":"w{r["worker"]}"' in held[r["key"]][0] for r in reports)

        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = read_until(proc, "parent ok")
        exits = [json.loads(line) for line in out if line.startswith('{"exited"')]
        assert [e["status"] for e in exits] == [0] * workers, out
        held = etcd.dump(prefix + "/")
        assert set(held) == {f"{prefix}/master/127.0.0.1:3999", f"{prefix}/master/127.0.0.1:3998"}
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        assert etcd.dump(prefix + "/") == {}
    finally:
        proc.kill()
        proc.wait()
