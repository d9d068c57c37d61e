"""A real ``etcd`` on loopback ports with its own data directory, for tests and
benchmarks (never used by a kernel).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

#: how long etcd may take to answer after it is started
START_TIMEOUT = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def etcd_binary() -> str | None:
    """The ``etcd`` on ``PATH``, if any."""
    return shutil.which("etcd")


class EtcdProcess:
    """One etcd member serving clients on ``127.0.0.1:<port>``; its data lives in
    ``data_dir``. :meth:`stop` and :meth:`start` again keep the ports, so kernels find
    it where it was (with its data, or without after :meth:`wipe`).
    """

    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        binary = etcd_binary()
        if binary is None:
            raise FileNotFoundError("etcd is not on PATH (Debian package etcd-server)")
        self.binary = binary
        self.host = host
        self.data_dir = data_dir
        self.port = free_port(host)
        self.peer_port = free_port(host)
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``etcd://HOST:PORT`` a kernel joins with."""
        return f"etcd://{self.host}:{self.port}"

    @property
    def client_url(self) -> str:
        """The plain HTTP URL of its client port."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> EtcdProcess:
        """Start etcd and wait until it answers a health check."""
        assert self.process is None or self.process.poll() is not None, "already running"
        peer = f"http://{self.host}:{self.peer_port}"
        command = [
            self.binary,
            "--name=kos-test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=kos-test={peer}",
            "--logger=zap",
            "--log-level=warn",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
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
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False

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
