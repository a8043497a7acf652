"""libregistry's Python binding under the benchmark's driver protocol
(bench/src/driver.rs): ``python libregistry_driver.py ENDPOINTS``.

``latency N`` alternates, call by call, the Rust core's blocking register
(in a ``bench child-core`` process, timed in Rust) and ``Registry.register``
+ ``Registration.deregister`` (timed around the Python calls), so the
difference of the medians is what the binding adds, measured against the
same etcd under the same machine load.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List

import libregistry
from core_child import CoreChild
from protocol import serve

METADATA = {"region": "beijing", "zone": "zone1", "deployment": "red"}


def main() -> None:
    endpoints = sys.argv[1].split(",")
    registry = libregistry.Registry(endpoints)
    core = CoreChild(endpoints)
    counter = [0]

    def latency(n: int) -> Dict[str, Any]:
        register: List[float] = []
        deregister: List[float] = []
        core_register: List[float] = []
        for _ in range(n):
            i = counter[0] = counter[0] + 1
            core_register.append(core.register("bench-core", f"127.0.0.1:{1 + i % 60000}", METADATA) / 1000)
            addr = f"127.0.0.1:{1 + i % 60000}"
            start = time.perf_counter_ns()
            reg = registry.register("bench-py", addr, METADATA)
            register.append((time.perf_counter_ns() - start) / 1000)
            start = time.perf_counter_ns()
            reg.deregister()
            deregister.append((time.perf_counter_ns() - start) / 1000)
        return {"register_us": register, "deregister_us": deregister, "core_register_us": core_register}

    def info(_: int) -> Dict[str, Any]:
        return {"client": "libregistry (Python)", "version": libregistry.__version__}

    try:
        serve({"latency": latency, "info": info})
    finally:
        core.close()
        registry.close()


if __name__ == "__main__":
    main()
