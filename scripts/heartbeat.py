#!/usr/bin/env python3
"""Runs a command and passes its output on line by line; when it has been
silent for 30 s (a big crate compiling, a wheel being built, a long test),
prints a line saying it is still running and what it last printed, so a
long `make demo` or `make test` never looks stuck. A step's heading (a
line starting with "== ") gets the time since the start, and the last line
says how long the whole command took, so every pass's time can be read off
the log.

    scripts/heartbeat.py COMMAND [ARGS...]

Exits with the command's status; SIGINT and SIGTERM are passed on to it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

QUIET_SECONDS = 30.0


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    assert child.stdout is not None

    def pass_on(signum: int, frame: object) -> None:
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, pass_on)
    signal.signal(signal.SIGTERM, pass_on)

    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        assert child.stdout is not None
        for raw in iter(child.stdout.readline, b""):
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    started = last = time.monotonic()
    last_text = ""
    out = sys.stdout.buffer
    while True:
        try:
            raw = lines.get(timeout=QUIET_SECONDS)
        except queue.Empty:
            now = time.monotonic()
            shown = last_text if len(last_text) <= 100 else last_text[:97] + "..."
            out.write(
                f"   ... still running ({int(now - started) // 60} min {int(now - started) % 60} s in; "
                f"nothing printed for {int(now - last)} s since: {shown})\n".encode()
            )
            out.flush()
            continue
        if raw is None:
            break
        if raw.startswith(b"== "):
            raw = raw.rstrip(b"\n") + f"  [at {clock(time.monotonic() - started)}]\n".encode()
        out.write(raw)
        out.flush()
        last = time.monotonic()
        text = raw.decode(errors="replace").strip()
        if text:
            last_text = text
    status = child.wait()
    out.write(f"== {'done' if status == 0 else f'failed (exit {status})'} after {clock(time.monotonic() - started)}\n".encode())
    out.flush()
    return status


def clock(seconds: float) -> str:
    """`12 min 5 s`."""
    return f"{int(seconds) // 60} min {int(seconds) % 60} s"


if __name__ == "__main__":
    sys.exit(main())
