"""The go-zero and kratos layouts from Python: ``Registry(layout=...)`` and
``REGISTRY_LAYOUT``, the bytes etcd holds, what each layout refuses, and
discovery reading each layout's values."""

from __future__ import annotations

import json

import pytest

import libregistry
from etcd_harness import Etcd


def test_go_zero_writes_the_address_under_name_slash_addr(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, layout="go-zero", prefix=prefix) as reg:
        assert reg.layout == "go-zero"
        r = reg.register("greeter.rpc", "127.0.0.1:4000")
        assert r.key == reg.key_of("greeter.rpc", "127.0.0.1:4000") == f"{prefix}/greeter.rpc/127.0.0.1:4000"
        assert etcd.get(r.key) == ("127.0.0.1:4000", reg.lease_id)
        with_id = reg.register("greeter.rpc", "127.0.0.1:4001", {"id": "7"})
        assert with_id.key == f"{prefix}/greeter.rpc/7"
        with pytest.raises(libregistry.InvalidArgumentError, match="go-zero layout"):
            reg.register("greeter.rpc", "127.0.0.1:4002", {"zone": "z1"})
        with pytest.raises(libregistry.InvalidArgumentError, match="go-zero layout"):
            r.update({"weight": 0})
        found = reg.discover("greeter.rpc")
        assert [(i.addr, i.metadata) for i in found] == [("127.0.0.1:4000", {}), ("127.0.0.1:4001", {})]
    assert etcd.dump(f"{prefix}/") == {}


def test_kratos_writes_a_service_instance_and_reads_it_back(etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(etcd.endpoint, layout="kratos", prefix=prefix) as reg:
        r = reg.register("greeter", "127.0.0.1:9000", {"weight": "300", "zone": "z1", "id": "g-1", "version": "v2"})
        assert r.key == f"{prefix}/greeter/g-1"
        value, _ = etcd.get(r.key) or ("", 0)
        instance = json.loads(value)
        assert list(instance) == ["id", "name", "version", "metadata", "endpoints"]
        assert (instance["id"], instance["name"], instance["version"]) == ("g-1", "greeter", "v2")
        assert instance["endpoints"] == ["grpc://127.0.0.1:9000"]
        assert all(isinstance(v, str) for v in instance["metadata"].values()), instance
        assert instance["metadata"]["weight"] == "300" and instance["metadata"]["port"] == "9000"
        with pytest.raises(libregistry.InvalidArgumentError, match="kratos layout"):
            reg.register("greeter", "127.0.0.1:9001", {"scheme": "thrift"})
        with reg.watch("greeter") as watcher:
            (found,) = watcher.instances()
            assert (found.addr, found.weight, found.zone, found.port) == ("127.0.0.1:9000", 300, "z1", 9000)
            assert (found.meta("id"), found.meta("version"), found.scheme) == ("g-1", "v2", "grpc")
            r.update({"weight": 50})
            change = watcher.next_change(timeout=5)
            while change is not None and change.kind != "updated":
                change = watcher.next_change(timeout=5)
            assert change is not None and change.instance.weight == 50


def test_the_layout_from_the_environment_and_bad_names(
    etcd: Etcd, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_LAYOUT", "kratos")
    with libregistry.Registry(etcd.endpoint) as reg:
        assert (reg.layout, reg.prefix) == ("kratos", "/microservices")
        assert reg.key_of("greeter", "h:1") == "/microservices/greeter/h:1"
    with libregistry.Registry(etcd.endpoint, layout="seed", prefix=prefix) as reg:
        assert reg.layout == "seed", "the keyword wins over the environment"
    monkeypatch.setenv("REGISTRY_LAYOUT", "gozero")
    with pytest.raises(libregistry.InvalidArgumentError, match='REGISTRY_LAYOUT.*"gozero" is not a layout'):
        libregistry.Registry(etcd.endpoint)
    monkeypatch.delenv("REGISTRY_LAYOUT")
    with pytest.raises(libregistry.InvalidArgumentError, match='layout.*"zero"'):
        libregistry.Registry(etcd.endpoint, layout="zero")
    with pytest.raises(TypeError, match="layout"):
        libregistry.Registry(etcd.endpoint, layout=3)  # type: ignore[arg-type]
