"""The Rust core in a child process (``bench child-core``, bench/src/core_child.rs),
for Python benchmarks that set the core's figures next to Python's: same
etcd, same machine load, calls alternating. The binary is ``$BENCH_CORE``,
else ``target/release/bench`` (scripts/bench-python.sh builds it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent.parent


class CoreChild:
    """``bench child-core ENDPOINTS``, one JSON command and answer per line."""

    def __init__(self, endpoints: List[str]) -> None:
        exe = os.environ.get("BENCH_CORE") or str(ROOT / "target" / "release" / "bench")
        self._proc = subprocess.Popen(
            [exe, "child-core", ",".join(endpoints)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _ask(self, command: Dict[str, Any]) -> Dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        answer: Dict[str, Any] = json.loads(self._proc.stdout.readline() or '{"error": "the core child exited"}')
        if "error" in answer:
            raise RuntimeError(f"core child: {answer['error']}")
        return answer

    def register(self, name: str, addr: str, metadata: Dict[str, str]) -> int:
        """Registers through the core's blocking client; the call's time in ns, measured in Rust."""
        return int(self._ask({"register": [name, addr, metadata]})["ns"])

    def watch(self, name: str) -> None:
        """Starts a core watcher on ``name`` that notes when its callback sees each instance added."""
        self._ask({"watch": name})

    def next(self, timeout: float) -> Optional[Tuple[str, int]]:
        """The next address added and when the core's callback saw it, on
        ``time.perf_counter_ns()``'s clock; ``None`` after ``timeout`` seconds."""
        answer = self._ask({"next": timeout})
        return None if answer.get("none") else (str(answer["addr"]), int(answer["ns"]))

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("quit\n")
        self._proc.stdin.close()
        self._proc.wait(timeout=10)
