"""The seed's consumer side from Python: keeps a live list of the instances
of `micro` (or the service named on the command line), prints each change
and where the next request would go, until SIGINT or SIGTERM.

    REGISTRY_ENDPOINTS=http://127.0.0.1:2379 REGISTRY_ZONE=zone1 python examples/python/consumer.py [SERVICE]

Picks are weighted by `weight` and prefer the consumer's own zone, then
region (REGISTRY_ZONE / REGISTRY_REGION); instances with weight 0 get no
traffic. etcd comes from REGISTRY_ENDPOINTS (default http://127.0.0.1:2379).
"""

import signal
import sys

import libregistry


def main() -> None:
    service = sys.argv[1] if len(sys.argv) > 1 else "micro"
    with libregistry.Registry() as registry, registry.watch(service) as watcher:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Closing ends the loop below, even while it waits.
            signal.signal(sig, lambda signum, frame: watcher.close())
        print(f"watching {service}: {len(watcher.instances())} instance(s)", flush=True)
        for change in watcher:  # the first changes add what is there already
            chosen = watcher.pick()
            print(
                f"{change.kind} {change.addr} (zone {change.instance.zone}, weight {change.instance.weight});"
                f" next request goes to {chosen.addr if chosen else 'nobody'}",
                flush=True,
            )
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
