"""The seed's example service from Python: registers `micro` at
127.0.0.1:4000 with the seed's metadata, keeps it registered (healed
through etcd failures) until SIGINT or SIGTERM, then deregisters it.

    REGISTRY_ENDPOINTS=http://127.0.0.1:2379 python examples/python/provider.py

etcd comes from REGISTRY_ENDPOINTS (default http://127.0.0.1:2379) and the
lease TTL from REGISTRY_TTL (default 10 s).
"""

import logging
import signal
import threading

import libregistry

SEED_METADATA: libregistry.Metadata = {
    "env": "dev",
    "region": "beijing",
    "zone": "zone1",
    "scheme": "grpc",
    "weight": 100,
    "deployment": "red",
    "appVersion": "ahkfasgasdf",
    "buildTime": "2020-10-14T10:00:00Z",
}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())

    def on_event(event: libregistry.Event) -> None:
        print(f"event: {event}", flush=True)

    with libregistry.Registry(on_event=on_event) as registry:
        with registry.register("micro", "127.0.0.1:4000", SEED_METADATA) as registration:
            print(f"registered {registration.key} (lease {registry.lease_id:x})", flush=True)
            while not stop.wait(0.5):
                pass
        print(f"deregistered {registration.key}", flush=True)


if __name__ == "__main__":
    main()
