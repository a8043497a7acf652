"""Runs the Go interop test binary against a real etcd of its own.

    python tests/interop/run.py GO_TEST_BINARY [go test flags...]

etcd is started with the Python tests' harness (tests/python/etcd_harness.py:
free loopback ports, a temp dir, checked to be ours; $ETCD_BIN, else .venv's
etcd 3.5) and stopped by PID afterwards, whatever happens. The binary gets
REGISTRY_ENDPOINTS and REGISTRY_TTL (its children inherit them) plus the
INTEROP_* paths scripts/test-interop.sh set. After the run, etcd must hold
nothing under the names the test used: every provider it started is gone
and so must their keys be (a SIGKILLed one's with its lease).

SIGUSR1 from the test binary (told by INTEROP_WIPE_SIGNAL=USR1) kills
etcd, wipes its data and starts it again on the same ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from etcd_harness import Etcd, etcd_binary, etcd_version, wait_until  # noqa: E402

TTL_SECONDS = 3
RUN_LIMIT_SECONDS = float(os.environ.get("INTEROP_RUN_LIMIT", "240"))
NAMES = ["/micro/", "/services/micro/", "/go-endpoints-c/", "/go-endpoints-py/", "/rolling/", "/micro-rolling/", "/prom-sd/"]
NAMES += ["greeter.rpc/", "gozero-found/", "/microservices/"]  # tests/interop/frameworks


def main() -> int:
    binary, *flags = sys.argv[1:]
    binary = str(Path(binary).resolve())
    print(f"== interop: etcd {etcd_version()} ({etcd_binary()})", flush=True)
    etcd = Etcd().start()
    test = None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, lambda signum, frame: etcd.restart(wipe=True))
    try:
        env = dict(os.environ, REGISTRY_ENDPOINTS=etcd.endpoint, REGISTRY_TTL=str(TTL_SECONDS))
        env["INTEROP_WIPE_SIGNAL"] = "USR1"
        test = subprocess.Popen([binary, *flags], env=env, cwd=Path(binary).parent)
        try:
            status = test.wait(timeout=RUN_LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"interop: the Go test ran longer than {RUN_LIMIT_SECONDS:.0f} s: killed", flush=True)
            status = 1
        if status == 0:
            for name in NAMES:
                wait_until(lambda: not etcd.dump(name), TTL_SECONDS + 2.0, f"etcd holds nothing under {name}")
            print(f"interop: etcd holds nothing under {', '.join(NAMES)} after the run", flush=True)
        return status
    finally:
        if test is not None and test.poll() is None:
            test.kill()  # the Go test binary we started, by its PID
            test.wait()
        etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
