"""A Python consumer for the Go interop test: finds, through libregistry's
discover and watch, the endpoints Go's `naming/endpoints.Manager` wrote.

    python consumer.py NAME          (etcd from REGISTRY_ENDPOINTS)

Driven line by line, the same protocol as tests/interop/c/consumer.c:

    stdin            stdout
    (start)          watching NAME, then one line per change, as it comes:
                     ADDED KEY ADDR / UPDATED KEY ADDR / REMOVED KEY ADDR
    discover         LIST N, N lines ITEM KEY ADDR k=v,k=v (sorted), END
    snapshot         the same, from the watcher's cache
    quit / EOF       bye

Written against the API of the discovery issue (`Registry.discover(name)`
-> list of Instance with .key/.addr/.metadata; `Registry.watch(name)` -> a
Watcher, a context manager with .instances() that iterates over changes).
Exits with status 3 and "MISSING ..." on stdout when the installed package
does not have them yet.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Iterable

import libregistry

MISSING = 3
MAX_LIFETIME_SECONDS = 600.0
_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        print(line, flush=True)


def text(value: Any) -> str:
    """A metadata value as the C API gives it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def describe(instance: Any) -> str:
    metadata = getattr(instance, "metadata", None) or {}
    pairs = ",".join(f"{k}={text(metadata[k])}" for k in sorted(metadata))
    return f"ITEM {instance.key} {instance.addr} {pairs}".rstrip()


def listing(instances: Iterable[Any]) -> None:
    items = sorted(instances, key=lambda i: i.key)
    with _out:
        print(f"LIST {len(items)}")
        for instance in items:
            print(describe(instance))
        print("END", flush=True)


def change_line(change: Any) -> str:
    """One change as "KIND KEY ADDR", whatever shape the change object has
    (a kind attribute or the class name; the instance inside it or itself)."""
    kind = str(getattr(change, "kind", type(change).__name__)).split(".")[-1].upper()
    instance = getattr(change, "instance", None) or change
    key = getattr(instance, "key", None) or getattr(change, "key", "?")
    addr = getattr(instance, "addr", None) or getattr(change, "addr", "-")
    return f"{kind} {key} {addr}"


def main() -> int:
    name = sys.argv[1]
    limit = threading.Timer(MAX_LIFETIME_SECONDS, lambda: os._exit(2))
    limit.daemon = True
    limit.start()
    missing = [m for m in ("discover", "watch") if not hasattr(libregistry.Registry, m)]
    if missing:
        say(f"MISSING Registry.{' and Registry.'.join(missing)} in libregistry {libregistry.__version__}")
        return MISSING

    with libregistry.Registry() as registry:
        with registry.watch(name) as watcher:  # type: ignore[attr-defined]
            say(f"watching {name}")

            def follow() -> None:
                for change in watcher:
                    say(change_line(change))

            threading.Thread(target=follow, name="follow", daemon=True).start()
            for line in sys.stdin:
                command = line.strip()
                if command == "discover":
                    listing(registry.discover(name))  # type: ignore[attr-defined]
                elif command == "snapshot":
                    listing(watcher.instances())
                elif command == "quit":
                    break
                elif command:
                    print(f"unknown command {command!r}", file=sys.stderr)
    say("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
