"""The dispatcher thread: delivers events to ``on_event`` callbacks, watcher
changes to ``on_change`` callbacks, asyncio outcomes to their loops and
library logs to :mod:`logging`, outside the library's runtime thread.

The native side only queues; this daemon thread waits for the queue with
the GIL released. It starts with the first Registry of a process (again in
a forked child) and stops at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Optional

from . import _native
from ._discovery import make_change
from ._events import make_event

logger = logging.getLogger("libregistry")

# How long one wait for the queue lasts; the thread exits promptly anyway
# (``stop`` wakes it).
_WAIT_SECONDS = 1.0

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None
_owner_pid: Optional[int] = None


def _run() -> None:
    while True:
        item = _native.dispatch_next(_WAIT_SECONDS)
        if item is None:
            continue
        tag = item[0]
        if tag == "stop":
            return
        if tag == "log":
            _, level, target, message = item
            if logger.isEnabledFor(level):
                logger.log(level, "%s", message, extra={"target": target})
        elif tag == "event":
            _, callback, kind, fields = item
            try:
                callback(make_event(kind, fields))
            except Exception:
                logger.exception("on_event callback %r raised", callback)
        elif tag == "change":
            _, callback, kind, instance = item
            try:
                callback(make_change(kind, instance))
            except Exception:
                logger.exception("on_change callback %r raised", callback)
        elif tag == "call":  # loop.call_soon_threadsafe(resolve, future)
            _, schedule, resolve, future = item
            try:
                schedule(resolve, future)
            except RuntimeError:
                pass  # a closed loop: nobody awaits; the outcome is undone


def ensure_running() -> None:
    """Starts the dispatcher thread of this process unless it runs."""
    global _thread, _owner_pid
    pid = os.getpid()
    if _thread is not None and _owner_pid == pid and _thread.is_alive():
        return
    with _lock:
        if _thread is not None and _owner_pid == pid and _thread.is_alive():
            return
        thread = threading.Thread(target=_run, name="libregistry-dispatch", daemon=True)
        thread.start()
        _thread, _owner_pid = thread, pid


def stop(timeout: float = 2.0) -> None:
    """Stops the dispatcher thread after it has delivered what is queued;
    threads still waiting in native code stay there (``prepare_exit``)."""
    global _thread
    thread = _thread
    if thread is not None and _owner_pid == os.getpid() and thread.is_alive():
        _native.dispatch_stop()
        thread.join(timeout)
        _thread = None
    _native.prepare_exit()


def _forget_after_fork() -> None:
    # The parent's thread does not exist in a forked child.
    global _thread, _owner_pid, _lock
    _thread, _owner_pid, _lock = None, None, threading.Lock()


# Before the interpreter finalizes: no thread may wake into a dying interpreter.
atexit.register(stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
