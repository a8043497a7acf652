"""Calls with metadata, for tests/python/test_types.py. Each call line is
marked with what is expected of it, where anything is:

- `# expect-error`: `mypy --strict` reports this line (and no other);
- `# runtime-error`: at run time it raises `TypeError` before anything is
  sent (and no other line does).

A line with only one of the two marks is where the types cannot say what
the runtime checks; the mark says why. Each call line is one expression
over `reg` (a Registry), `addr` (a free address) and `r` (a Registration).
"""

import libregistry


def calls(reg: libregistry.Registry, addr: str, r: libregistry.Registration) -> None:
    reg.register("micro", addr, {"region": "beijing", "zone": "zone1", "weight": 100})
    reg.register("micro", addr, {"env": "dev", "region": "beijing", "zone": "zone1", "scheme": "grpc", "weight": 0, "deployment": "red", "appVersion": "ahkfasgasdf", "buildTime": "2020-10-14T10:00:00Z"})
    reg.register("micro", addr, {"weight": "100"})
    reg.register("micro", addr, {"version": "2"})
    reg.register("micro", addr, {"version": "2", "region": "beijing", "weight": "5"})
    reg.register("micro", addr, {})
    reg.register("micro", addr, None)
    reg.register("micro", addr)
    reg.register_many([("micro", addr, {"weight": 5, "zone": "zone1"})])
    reg.register_many([("micro", addr, {"version": "2"})])
    r.update({"weight": 0})
    r.update({"version": "3"})
    reg.register("micro", addr, {"version": 2})  # expect-error runtime-error
    reg.register("micro", addr, {"region": 1})  # expect-error runtime-error
    reg.register("micro", addr, {"zone": None})  # expect-error runtime-error
    reg.register("micro", addr, {"weight": 1.5})  # expect-error runtime-error
    reg.register("micro", addr, {"weight": None})  # expect-error runtime-error
    reg.register("micro", addr, {1: "x"})  # expect-error runtime-error
    reg.register("micro", addr, {"version": b"2"})  # expect-error runtime-error
    reg.register_many([("micro", addr, {"version": 2})])  # expect-error runtime-error
    r.update({"version": 2})  # expect-error runtime-error
    r.update({"buildTime": 20201014})  # expect-error runtime-error
    # mypy cannot say "int for weight, str for any other key": with another key, weight must be text for it
    reg.register("micro", addr, {"weight": 100, "version": "2"})  # expect-error
    # a bool is an int to mypy; the runtime refuses it as a weight
    reg.register("micro", addr, {"weight": True})  # runtime-error
