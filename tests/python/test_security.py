"""TLS, mutual TLS and username/password, against etcds serving them, with
certificates made for the run by the openssl command line."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

import libregistry
from etcd_harness import Certs, Etcd

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs() -> Iterator[Certs]:
    directory = Path(tempfile.mkdtemp(prefix="lr-py-certs-"))
    yield Certs(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_auth_etcd(certs: Certs) -> Iterator[Etcd]:
    """TLS on the server side, authentication on; alice may write /svc/, bob only /nothing/."""
    member = Etcd(certs).start()
    member.enable_auth("root-secret")
    member.add_user("alice", "alice-secret", "/svc/")
    member.add_user("bob", "bob-secret", "/nothing/")
    yield member
    member.stop()


@pytest.fixture(scope="module")
def mtls_etcd(certs: Certs) -> Iterator[Etcd]:
    """Mutual TLS: etcd accepts only clients with a certificate of our CA."""
    member = Etcd(certs, client_cert_auth=True).start()
    yield member
    member.stop()


def test_tls_and_credentials_register_and_close(tls_auth_etcd: Etcd, certs: Certs) -> None:
    with libregistry.Registry(tls_auth_etcd.endpoint, ca_file=certs.ca, user="alice", password="alice-secret") as reg:
        assert reg.endpoints == [tls_auth_etcd.endpoint] and reg.endpoints[0].startswith("https://")
        r = reg.register("svc", "127.0.0.1:1", {"zone": "z"})
        assert tls_auth_etcd.get(r.key) is not None
        r.update({"weight": 0})
        assert '"weight":0' in tls_auth_etcd.get(r.key)[0]  # type: ignore[index]
    assert tls_auth_etcd.dump("/svc/") == {}


def test_credentials_from_the_environment(
    tls_auth_etcd: Etcd, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_ENDPOINTS", tls_auth_etcd.endpoint)
    monkeypatch.setenv("REGISTRY_CA_FILE", str(certs.ca))
    monkeypatch.setenv("REGISTRY_USER", "alice")
    monkeypatch.setenv("REGISTRY_PASSWORD", "alice-secret")
    with libregistry.Registry() as reg:
        assert tls_auth_etcd.get(reg.register("svc", "127.0.0.1:2").key) is not None
    monkeypatch.delenv("REGISTRY_PASSWORD")
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        libregistry.Registry()
    assert caught.value.field == "REGISTRY_PASSWORD"


def test_async_registry_with_tls_and_credentials(tls_auth_etcd: Etcd, certs: Certs) -> None:
    async def main() -> None:
        async with libregistry.AsyncRegistry(
            tls_auth_etcd.endpoint, ca_file=str(certs.ca), user="alice", password="alice-secret"
        ) as reg:
            r = await reg.register("svc", "127.0.0.1:3")
            assert tls_auth_etcd.get(r.key) is not None
        assert tls_auth_etcd.dump("/svc/") == {}

    asyncio.run(main())


def test_wrong_password_is_permission_denied_and_never_shown(tls_auth_etcd: Etcd, certs: Certs) -> None:
    with pytest.raises(libregistry.PermissionDeniedError) as caught:
        with libregistry.Registry(tls_auth_etcd.endpoint, ca_file=certs.ca, user="alice", password="wrong-pw-42") as reg:
            reg.register("svc", "127.0.0.1:1")
    assert "wrong-pw-42" not in str(caught.value)


def test_a_user_without_permission_on_the_key_is_permission_denied(tls_auth_etcd: Etcd, certs: Certs) -> None:
    with libregistry.Registry(tls_auth_etcd.endpoint, ca_file=certs.ca, user="bob", password="bob-secret") as reg:
        with pytest.raises(libregistry.PermissionDeniedError):
            reg.register("svc", "127.0.0.1:1")
    assert tls_auth_etcd.dump("/svc/") == {}


def test_an_unknown_ca_is_a_tls_error(tls_auth_etcd: Etcd, certs: Certs) -> None:
    with pytest.raises(libregistry.TlsError):
        libregistry.Registry(
            tls_auth_etcd.endpoint, ca_file=certs.other_ca, user="alice", password="alice-secret", request_timeout=2
        )


def test_mutual_tls(mtls_etcd: Etcd, certs: Certs) -> None:
    with libregistry.Registry(
        mtls_etcd.endpoint, ca_file=certs.ca, cert_file=certs.client, key_file=certs.client_key
    ) as reg:
        r = reg.register("svc", "127.0.0.1:1")
        assert mtls_etcd.get(r.key) is not None
    with pytest.raises(libregistry.TlsError):
        libregistry.Registry(mtls_etcd.endpoint, ca_file=certs.ca, request_timeout=2)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "ca_file"),  # https without a CA
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"ca_file": "CERTS/client.key"}, "ca_file"),  # not a certificate
        ({"ca_file": "CERTS/lr-test-ca.pem", "cert_file": "CERTS/client.pem"}, "key_file"),
        ({"ca_file": "CERTS/lr-test-ca.pem", "key_file": "CERTS/client.key"}, "cert_file"),
        ({"ca_file": "CERTS/lr-test-ca.pem", "user": "alice"}, "password"),
        ({"ca_file": "CERTS/lr-test-ca.pem", "password": "alice-secret"}, "user"),
    ],
)
def test_bad_security_values_name_the_field(
    mtls_etcd: Etcd, certs: Certs, kwargs: Dict[str, Any], field: str
) -> None:
    kwargs = {k: v.replace("CERTS", str(certs.dir)) for k, v in kwargs.items()}
    with pytest.raises(libregistry.InvalidArgumentError) as caught:
        libregistry.Registry(mtls_etcd.endpoint, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "kwargs",
    [{"ca_file": 5}, {"cert_file": b"/x.pem"}, {"key_file": ["/x.pem"]}, {"user": 1}, {"password": b"pw"}],
)
def test_wrong_types_for_security_options_are_type_errors(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        libregistry.Registry("https://127.0.0.1:1", **kwargs)
