"""The driver protocol of bench/src/driver.rs, for the Python drivers: one
command per line on standard input, one JSON object per line on standard
output. A driver supplies the handlers; this module reads, dispatches and
answers, and measures the process's threads and resident memory."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, Dict, Optional, Tuple

Handler = Callable[[int], Dict[str, Any]]


def threads_and_rss() -> Tuple[int, int]:
    """This process's thread count and VmRSS in KiB, from /proc."""
    fields: Dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("Threads", "VmRSS"):
                fields[key] = int(rest.split()[0])
    return fields.get("Threads", 0), fields.get("VmRSS", 0)


def addr(i: int) -> str:
    """The address of registration ``i``, as the Rust side makes them."""
    return f"127.0.{i // 60000 // 250}.{1 + i // 60000 % 250}:{1 + i % 60000}"


def serve(handlers: Dict[str, Handler], before: Optional[Tuple[int, int]] = None) -> None:
    """Answers commands until ``quit`` or the end of input (at most 10,000).
    ``before``: threads and RSS before the client was made (default: now),
    reported with ``hold``'s answer."""
    threads_before, rss_before = before or threads_and_rss()
    for count, line in enumerate(sys.stdin):
        if count >= 10_000:
            break
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        handler = handlers.get(words[0])
        try:
            if handler is None:
                raise ValueError(f"unknown command {line.strip()!r}")
            answer = handler(int(words[1]) if len(words) > 1 else 0)
            if words[0] == "hold":
                answer.setdefault("threads_before", threads_before)
                answer.setdefault("rss_kb_before", rss_before)
        except Exception as e:  # reported to the benchmark, which stops that part
            traceback.print_exc(file=sys.stderr)
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
