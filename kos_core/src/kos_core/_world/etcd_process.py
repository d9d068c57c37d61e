"""A real ``etcd`` on loopback ports with its own data directory, for tests and
benchmarks (never used by a kernel): plain HTTP by default, or TLS with client
certificates (:class:`EtcdTLS`), alone or as a member of a cluster
(:func:`etcd_cluster`).
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: how long etcd may take to answer after it is started
START_TIMEOUT = 20.0


#: the ports :func:`free_port` handed out in this process (never handed out twice)
_given: set[tuple[str, int]] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, and that this process was not given before
    (the members of a cluster each get ports of their own before any of them binds).
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if (host, port) not in _given:
            _given.add((host, port))
            return port


def etcd_binary() -> str | None:
    """The ``etcd`` on ``PATH``, if any."""
    return shutil.which("etcd")


@dataclass(frozen=True)
class EtcdTLS:
    """TLS of etcd's client port: the authority (``ca``) that signed etcd's certificate
    (``cert``, ``key``) and the clients' (``client_cert``, ``client_key``); etcd
    requires a client certificate that authority signed.
    """

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path, host: str = "127.0.0.1") -> EtcdTLS:
        """A new authority, a server certificate for ``host`` and a client certificate
        (``kos``), written into ``directory``.
        """
        from kos_core._net import tls

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        authority = tls.new_authority("etcd test")
        day = datetime.timedelta(days=1)
        files: list[Path] = [directory / "etcd-ca.pem"]
        files[0].write_text(authority.cert_pem)
        for name, hosts in (("etcd-server", [host, "localhost"]), ("etcd-client", [])):
            issued = authority.issue(name if hosts else "kos", hosts, day)
            for suffix, text in ((".pem", issued.cert_pem), ("-key.pem", issued.key_pem)):
                files.append(directory / f"{name}{suffix}")
                files[-1].write_text(text)
                files[-1].chmod(0o600)
        return cls(*files)

    def query(self, *, client: bool = True) -> str:
        """The ``?ca=...&cert=...&key=...`` of an ``etcds://`` URL (without the client
        certificate unless ``client``).
        """
        options = {"ca": str(self.ca)}
        if client:
            options.update(cert=str(self.client_cert), key=str(self.client_key))
        return "?" + urllib.parse.urlencode(options, safe="/")

    def context(self) -> ssl.SSLContext:
        """A client context trusting the authority and presenting the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


class EtcdProcess:
    """One etcd member serving clients on ``<host>:<port>``; its data lives in
    ``data_dir``. :meth:`stop` and :meth:`start` again keep the ports, so kernels find
    it where it was (with its data, or without after :meth:`wipe`).

    ``tls`` serves clients over TLS with client certificates; ``options`` are more
    etcd flags (``--auth-token-ttl=1``...).
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        *,
        tls: EtcdTLS | None = None,
        options: Sequence[str] = (),
        name: str = "kos-test",
    ) -> None:
        binary = etcd_binary()
        if binary is None:
            raise FileNotFoundError("etcd is not on PATH (Debian package etcd-server)")
        self.binary = binary
        self.host = host
        self.data_dir = data_dir
        self.tls = tls
        self.options = tuple(options)
        self.name = name
        self.port = free_port(host)
        self.peer_port = free_port(host)
        #: the ``--initial-cluster`` of a member of a cluster (default: itself alone)
        self.initial_cluster = f"{name}={self.peer_url}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` of its client port."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The ``etcd://HOST:PORT`` (or ``etcds://HOST:PORT?ca=...``) a kernel joins with."""
        if self.tls is None:
            return f"etcd://{self.endpoint}"
        return f"etcds://{self.endpoint}{self.tls.query()}"

    @property
    def client_url(self) -> str:
        """The HTTP (or HTTPS) URL of its client port."""
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        """The URL other members of its cluster reach it at."""
        return f"http://{self.host}:{self.peer_port}"

    def start(self, timeout: float = START_TIMEOUT) -> EtcdProcess:
        """Start etcd and wait until it answers a health check."""
        self.launch()
        return self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start etcd without waiting for it (a cluster's members start together)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            "--logger=zap",
            "--log-level=warn",
        ]
        if self.tls is not None:
            command += [
                f"--cert-file={self.tls.cert}",
                f"--key-file={self.tls.key}",
                "--client-cert-auth",
                f"--trusted-ca-file={self.tls.ca}",
            ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.options],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> EtcdProcess:
        """Wait until etcd answers a health check; stop it if it does not in time."""
        assert self.process is not None, "not started"
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"etcd did not answer within {timeout:g} s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        """True if etcd answers its health check now."""
        context = self.tls.context() if self.tls is not None else None
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=1, context=context
            ) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False

    def ctl(self, *args: str, user: str | None = None) -> str:
        """Run ``etcdctl`` against this member (as ``USER:PASSWORD`` if given); its output."""
        command = ["etcdctl", f"--endpoints={self.client_url}"]
        if self.tls is not None:
            command += [
                f"--cacert={self.tls.ca}",
                f"--cert={self.tls.client_cert}",
                f"--key={self.tls.client_key}",
            ]
        if user is not None:
            command.append(f"--user={user}")
        done = subprocess.run(
            [*command, *args],
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        """Stop etcd (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL etcd and wait for it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def wipe(self) -> None:
        """Forget every key: remove the data directory (etcd must be stopped)."""
        assert self.process is None, "stop etcd before wiping its data"
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        """What etcd printed."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


def etcd_cluster(
    base: Path, size: int = 3, timeout: float = START_TIMEOUT, options: Sequence[str] = ()
) -> list[EtcdProcess]:
    """Start a cluster of ``size`` members on loopback (data under ``base``) and wait
    until every member answers; the caller stops them (each one's :meth:`~EtcdProcess.kill`).
    """
    base.mkdir(parents=True, exist_ok=True)
    members = [
        EtcdProcess(base / f"member{i}", name=f"member{i}", options=options) for i in range(size)
    ]
    cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
    try:
        for member in members:
            member.initial_cluster = cluster
            member.launch()
        for member in members:
            member.wait_healthy(timeout)
    except BaseException:
        for member in members:
            member.kill()
        raise
    return members
