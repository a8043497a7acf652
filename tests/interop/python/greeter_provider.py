"""A Python provider for the Go interop test: serves the helloworld Greeter
with grpcio on a loopback port and registers it through libregistry.

    PYTHONPATH=<generated stubs> python greeter_provider.py --name micro [--port N] [--ttl S] [--prefix P]
        [--metadata JSON]

etcd comes from REGISTRY_ENDPOINTS (and the layout from REGISTRY_LAYOUT).
--metadata replaces the metadata registered (`{}` for go-zero's layout,
which carries none). The process is driven line by line on
stdin and answers on stdout, so a test can act on it without signals:

    stdin            stdout
    (start)          listening 127.0.0.1:PORT
                     registered KEY ttl=TTL lease=LEASE
    drain            drained KEY               (update: weight 0)
    withdraw         withdrawn KEY             (out of etcd, kept: the server keeps serving)
    restore          restored KEY              (back in etcd)
    deregister       deregistered KEY          (the gRPC server keeps serving)
    stats            stats calls=N after_deregister=M last_after_ms=X
    quit / EOF       bye                       (deregisters, closes, exits 0)

SayHello answers "Hello NAME from ADDR pid PID", so a caller knows which
process served it. `stats` counts the calls served after `deregister`
returned and how long after it the last one arrived (-1: none), measured
here, where the call lands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent import futures
from typing import List, Optional

import grpc

import helloworld_pb2
import helloworld_pb2_grpc
import libregistry

# Exits by itself after this long even if nobody closes its stdin.
MAX_LIFETIME_SECONDS = 600.0


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def __init__(self) -> None:
        self.addr = ""
        self.lock = threading.Lock()
        self.calls = 0
        self.deregistered_at: Optional[float] = None
        self.after: List[float] = []

    def SayHello(self, request, context):  # noqa: N802 (gRPC's method name)
        now = time.monotonic()
        with self.lock:
            self.calls += 1
            if self.deregistered_at is not None:
                self.after.append(now - self.deregistered_at)
        return helloworld_pb2.HelloReply(message=f"Hello {request.name} from {self.addr} pid {os.getpid()}")

    def stats(self) -> str:
        with self.lock:
            last = max(self.after) * 1000 if self.after else -1.0
            return f"stats calls={self.calls} after_deregister={len(self.after)} last_after_ms={last:.1f}"


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="micro")
    parser.add_argument("--port", type=int, default=0, help="0: any free loopback port")
    parser.add_argument("--ttl", type=int, default=int(os.environ.get("REGISTRY_TTL", "3")))
    parser.add_argument("--prefix", default=None, help="key prefix (default: REGISTRY_PREFIX, else none)")
    parser.add_argument("--metadata", default=None, help="metadata as a JSON object (default: zone, region, weight)")
    args = parser.parse_args()

    greeter = Greeter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(greeter, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    server.start()
    greeter.addr = f"127.0.0.1:{port}"
    say(f"listening {greeter.addr}")

    # Closing stdin (or the test dying) ends the process; so does the lifetime cap.
    limit = threading.Timer(MAX_LIFETIME_SECONDS, lambda: os._exit(2))
    limit.daemon = True
    limit.start()

    with libregistry.Registry(ttl=args.ttl, prefix=args.prefix) as registry:
        metadata = {"zone": "zone1", "region": "beijing", "weight": 100, "provider": "python"}
        if args.metadata is not None:
            metadata = json.loads(args.metadata)
        registration = registry.register(args.name, greeter.addr, metadata)
        say(f"registered {registration.key} ttl={registry.ttl} lease={registry.lease_id}")
        for line in sys.stdin:
            command = line.strip()
            if command == "drain":
                registration.update({"weight": 0})
                say(f"drained {registration.key}")
            elif command == "withdraw":
                registration.withdraw()
                say(f"withdrawn {registration.key}")
            elif command == "restore":
                registration.restore()
                say(f"restored {registration.key}")
            elif command == "deregister":
                registration.deregister()
                with greeter.lock:
                    greeter.deregistered_at = time.monotonic()
                say(f"deregistered {registration.key}")
            elif command == "stats":
                say(greeter.stats())
            elif command == "quit":
                break
            elif command:
                print(f"unknown command {command!r}", file=sys.stderr)
        registration.deregister()  # a no-op when already deregistered
    server.stop(grace=None)
    say("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
