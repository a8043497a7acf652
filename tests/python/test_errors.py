"""Every exception, and bad input of every argument: TypeError for a wrong
type, InvalidArgumentError (naming the field) for a bad value, refused
before anything is sent."""

from __future__ import annotations

import time
from typing import Any, Dict

import pytest

import libregistry
from etcd_harness import Etcd, free_port


@pytest.fixture
def reg(etcd: Etcd, prefix: str):  # type: ignore[no-untyped-def]
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as registry:
        yield registry


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoints": 5},
        {"endpoints": [b"http://127.0.0.1:2379"]},
        {"endpoints": {"http://127.0.0.1:2379": 1}},
        {"ttl": "10"},
        {"ttl": 10.0},
        {"ttl": True},
        {"prefix": 1},
        {"request_timeout": "5"},
        {"request_timeout": False},
        {"heal_deleted_keys": 1},
        {"on_event": "print"},
    ],
)
def test_wrong_types_for_the_registry_are_type_errors(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        libregistry.Registry(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"endpoints": "127.0.0.1:2379"}, "endpoints"),
        ({"endpoints": []}, "endpoints"),
        ({"endpoints": ""}, "endpoints"),
        ({"ttl": 1}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": 2**40}, "ttl"),
        ({"prefix": "svc"}, "prefix"),
        ({"prefix": "/svc/"}, "prefix"),
        ({"prefix": "/a/../b"}, "prefix"),
        ({"request_timeout": 0.001}, "request_timeout"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"request_timeout": float("nan")}, "request_timeout"),
    ],
)
def test_bad_registry_values_name_the_field(etcd: Etcd, kwargs: Dict[str, Any], field: str) -> None:
    kwargs.setdefault("endpoints", etcd.endpoint)
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        libregistry.Registry(**kwargs)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert field in str(caught.value)


def test_bad_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch, etcd: Etcd) -> None:
    monkeypatch.setenv("REGISTRY_TTL", "ten")
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        libregistry.Registry(etcd.endpoint)
    assert caught.value.field == "REGISTRY_TTL"
    monkeypatch.delenv("REGISTRY_TTL")
    monkeypatch.setenv("REGISTRY_WEIGHT", "heavy")
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        libregistry.Registry(etcd.endpoint)
    assert caught.value.field == "REGISTRY_WEIGHT"


@pytest.mark.parametrize(
    "args",
    [
        (1, "127.0.0.1:1"),
        (None, "127.0.0.1:1"),
        ("svc", 4000),
        ("svc", ("127.0.0.1", 4000)),
        ("svc", "127.0.0.1:1", ["region", "x"]),
        ("svc", "127.0.0.1:1", "region=x"),
        ("svc", "127.0.0.1:1", {1: "x"}),
        ("svc", "127.0.0.1:1", {"region": 1}),
        ("svc", "127.0.0.1:1", {"region": None}),
        ("svc", "127.0.0.1:1", {"weight": True}),
        ("svc", "127.0.0.1:1", {"weight": 1.5}),
    ],
)
def test_wrong_types_for_register_are_type_errors(reg: libregistry.Registry, etcd: Etcd, args: Any) -> None:
    with pytest.raises(TypeError):
        reg.register(*args)
    assert etcd.dump(reg.prefix + "/") == {}


@pytest.mark.parametrize(
    "name, addr, metadata, field",
    [
        ("", "127.0.0.1:1", None, "name"),
        ("a/b", "127.0.0.1:1", None, "name"),
        ("..", "127.0.0.1:1", None, "name"),
        ("x" * 129, "127.0.0.1:1", None, "name"),
        ("svc", "127.0.0.1", None, "addr"),
        ("svc", "127.0.0.1:0", None, "addr"),
        ("svc", "127.0.0.1:65536", None, "addr"),
        ("svc", "::1:80", None, "addr"),
        ("svc", "a b:1", None, "addr"),
        ("svc", "127.0.0.1:1", {"weight": 10001}, "weight"),
        ("svc", "127.0.0.1:1", {"weight": -1}, "weight"),
        ("svc", "127.0.0.1:1", {"weight": "heavy"}, "weight"),
        ("svc", "127.0.0.1:1", {"buildTime": "yesterday"}, "buildTime"),
        ("svc", "127.0.0.1:1", {"ip": "1.2.3.4"}, 'metadata key "ip"'),
        ("svc", "127.0.0.1:1", {"port": "1"}, 'metadata key "port"'),
        ("svc", "127.0.0.1:1", {"a/b": "x"}, 'metadata key "a/b"'),
        ("svc", "127.0.0.1:1", {"": "x"}, 'metadata key ""'),
        ("svc", "127.0.0.1:1", {"big": "x" * 70000}, "metadata"),
    ],
)
def test_bad_register_values_name_the_field_and_send_nothing(
    reg: libregistry.Registry, etcd: Etcd, name: str, addr: str, metadata: Any, field: str
) -> None:
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        reg.register(name, addr, metadata)
    assert caught.value.field == field
    assert caught.value.reason
    assert etcd.dump(reg.prefix + "/") == {}


@pytest.mark.parametrize(
    "services",
    [None, 5, "svc", {"svc": "127.0.0.1:1"}, [("svc",)], [("svc", "127.0.0.1:1", {}, 4)], ["svc"], [("svc", 1)]],
)
def test_wrong_types_for_register_many_are_type_errors(reg: libregistry.Registry, services: Any) -> None:
    with pytest.raises(TypeError):
        reg.register_many(services)


def test_bad_update_arguments(reg: libregistry.Registry, etcd: Etcd) -> None:
    r = reg.register("svc", "127.0.0.1:1", {"weight": 5})
    for changes in (None, [("weight", 1)], {"weight": 1.0}, {2: "x"}):
        with pytest.raises(TypeError):
            r.update(changes)  # type: ignore[arg-type]
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        r.update({"weight": 20000})
    assert caught.value.field == "weight"
    with pytest.raises(libregistry.InvalidArgumentError):
        r.update({"startTime": "2020-10-14T10:00:00Z"})
    assert '"weight":5' in etcd.get(r.key)[0]  # type: ignore[index]
    for bad in (1, None):
        with pytest.raises(TypeError):
            reg.key_of(bad, "h:1")  # type: ignore[arg-type]


def test_already_registered(reg: libregistry.Registry) -> None:
    r = reg.register("svc", "127.0.0.1:1")
    with pytest.raises(libregistry.AlreadyRegisteredError) as caught:
        reg.register("svc", "127.0.0.1:1")
    assert caught.value.key == r.key


def test_not_registered_after_deregister(reg: libregistry.Registry) -> None:
    r = reg.register("svc", "127.0.0.1:1")
    r.deregister()
    with pytest.raises(libregistry.NotRegisteredError) as caught:
        r.update({"weight": 1})
    assert caught.value.key == r.key
    reg.register("svc", "127.0.0.1:1")  # the key is free again


def test_closed(etcd: Etcd, prefix: str) -> None:
    reg = libregistry.Registry(etcd.endpoint, prefix=prefix)
    r = reg.register("svc", "127.0.0.1:1")
    reg.close()
    with pytest.raises(libregistry.ClosedError):
        reg.register("svc", "127.0.0.1:2")
    with pytest.raises(libregistry.ClosedError):
        reg.register_many([("svc", "127.0.0.1:3")])
    with pytest.raises(libregistry.ClosedError):
        r.update({"weight": 1})


def test_conflict_when_another_process_took_the_key(reg: libregistry.Registry, etcd: Etcd) -> None:
    r = reg.register("svc", "127.0.0.1:1")
    other = etcd.grant(60)
    etcd.put(r.key, "someone else's", lease=other)
    deadline = time.monotonic() + 5
    while True:
        try:
            r.update({"weight": 1})
        except libregistry.ConflictError as caught:
            assert caught.key == r.key and caught.other_lease == other
            assert repr(caught.other_lease) == f"{other:x}", "lease ids print in hex, as etcdctl prints them"
            break
        assert time.monotonic() < deadline, "no ConflictError"
        time.sleep(0.05)
    assert etcd.get(r.key) == ("someone else's", other), "never fought over"


def test_unavailable_when_no_etcd_listens() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises((libregistry.UnavailableError, libregistry.RequestTimeoutError)) as caught:
        libregistry.Registry(dead, request_timeout=1)
    assert time.monotonic() - start < 5
    assert isinstance(caught.value, libregistry.RegistryError)


def test_unavailable_is_the_class_for_a_refused_connection() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(libregistry.UnavailableError) as caught:
        libregistry.Registry(endpoint, request_timeout=2)
    # In plain words, naming the endpoint; the technical chain stays in debug logs.
    assert str(caught.value) == f"etcd unavailable: connection to {endpoint} refused"


def test_errors_read_as_what_to_fix(reg: libregistry.Registry) -> None:
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        reg.register("orders", "http://127.0.0.1:8080")
    assert str(caught.value) == 'invalid addr: "http://127.0.0.1:8080" must be host:port, not a URL'
    with pytest.raises(libregistry.InvalidArgumentError) as too_short:
        libregistry.Registry(request_timeout=0)
    assert str(too_short.value) == "invalid request_timeout: 0 s is too short (at least 10 ms)"
    assert too_short.value.field == "request_timeout"


def test_timeout_when_etcd_is_frozen(own_etcd: Etcd, prefix: str) -> None:
    with libregistry.Registry(own_etcd.endpoint, prefix=prefix, request_timeout=0.5) as reg:
        own_etcd.freeze()
        start = time.monotonic()
        with pytest.raises(libregistry.RequestTimeoutError) as caught:
            reg.register("svc", "127.0.0.1:1")
        assert time.monotonic() - start < 4
        assert caught.value.after > 0 and caught.value.operation
        own_etcd.thaw()
    assert own_etcd.dump(prefix + "/") == {}, "a register that timed out leaves nothing"


def test_permission_denied_when_etcd_requires_authentication(own_etcd: Etcd, prefix: str) -> None:
    own_etcd.etcdctl("user", "add", "root:secret")
    own_etcd.etcdctl("auth", "enable")
    with pytest.raises(libregistry.PermissionDeniedError):
        with libregistry.Registry(own_etcd.endpoint, prefix=prefix, request_timeout=2) as reg:
            reg.register("svc", "127.0.0.1:1")


def test_the_exception_tree() -> None:
    # Credentials (and so permissions) come with the security issue; EtcdError
    # is the class of whatever etcd reports that fits no other.
    for cls in (libregistry.PermissionDeniedError, libregistry.EtcdError, libregistry.ForkedError):
        assert issubclass(cls, libregistry.RegistryError) and not issubclass(cls, ValueError)
    assert issubclass(libregistry.InvalidArgumentError, ValueError)
