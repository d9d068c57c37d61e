"""TLS on every TCP socket: nothing of a session crosses loopback TCP in clear text.

A kernel started with ``--listen`` serves TCP (and so do its plugins) with a
certificate its run's own authority signed; the authority is pinned in the
connection file, so a client holding that file works over TCP with no extra flag.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from pathlib import Path

import pytest

import kos_core
from kos_core.testing import KernelProcess, KosEnv, StartKernel, shared_kernel, wait_for
from kos_helpers import Cli, assert_one_line_error, connection_info
from kos_plugins_bitbucket import BitBucket

_ETH_P_ALL = 0x0003


class LoopbackCapture:
    """Every TCP payload that crosses the loopback interface while it runs, by port
    (an ``AF_PACKET`` socket: what tcpdump would see).
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(_ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.payloads: dict[int, bytearray] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, meta = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if meta[2] == socket.PACKET_OUTGOING:  # each loopback packet is seen twice
                continue
            self._take(frame[14:])  # past the Ethernet header

    def _take(self, packet: bytes) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
            return
        ip_len = (packet[0] & 0x0F) * 4
        tcp = packet[ip_len : struct.unpack("!H", packet[2:4])[0]]
        if len(tcp) < 20:
            return
        source, dest = struct.unpack("!HH", tcp[:4])
        data = tcp[(tcp[12] >> 4) * 4 :]
        for port in (source, dest):
            self.payloads.setdefault(port, bytearray()).extend(data)

    def stop(self) -> bytes:
        """Stop capturing; every payload seen, joined."""
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return b"".join(bytes(p) for p in self.payloads.values())


#: How the kernels here run: listening on loopback TCP too, with bitbucket.
TCP_ARGS = ("--listen", "127.0.0.1:0")
TCP_SETUP = "[bitbucket]\nhealth-interval: 0.2\n"


@pytest.fixture
def tcp_kernel(start_kernel: StartKernel) -> KernelProcess:
    """A kernel of its own listening on loopback TCP too, with bitbucket running."""
    kernel = start_kernel(*TCP_ARGS, setup=TCP_SETUP)
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    return kernel


#: The module's TCP kernel, for the tests that neither stop it nor use ``kos_env``.
shared_tcp_kernel = shared_kernel(
    *TCP_ARGS,
    setup=TCP_SETUP,
    environ={"KOS_LOAD_PLUGINS": "bitbucket"},
    plugins={"bitbucket": ["bitbucket"]},
)


def elsewhere(kos_env: KosEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Act as a client on another machine: a runtime directory holding only a copy of
    the connection file (no Unix sockets to use). Returns the copied file's content.
    """
    other = tmp_path / "elsewhere"
    other.mkdir(mode=0o700)
    info = dict(connection_info(kos_env))
    info["address"] = f"unix:{other / 'not-on-this-host.sock'}"  # the kernel's machine's path
    write_connection_file(other / f"{kos_env.kernel}.kernel.json", info)
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(other))
    return info


def write_connection_file(path: Path, info: dict[str, str]) -> None:
    path.write_text(json.dumps(info))
    path.chmod(0o600)


def test_a_whole_session_over_tcp_shows_nothing_in_clear(
    shared_tcp_kernel: KernelProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = elsewhere(shared_tcp_kernel.env, tmp_path, monkeypatch)
    kernel_port = int(info["tcp"].rsplit(":", 1)[1])
    value = os.urandom(8).hex().encode() * 64  # recognisable, and long enough to span records
    key = "key-" + os.urandom(6).hex()
    capture = LoopbackCapture()
    try:
        with kos_core.connect() as kos:
            kind, _, sbh = kos.kernel.Lookup("bitbucket")
            assert kind == "service" and sbh.startswith("kos+tcp://127.0.0.1:")
            bb = kos.lookup("bitbucket", BitBucket)
            bb.Set(key, value)
            assert bb.Get(key) == value
            assert key in bb.List()
            bb.Delete(key)
    finally:
        seen = capture.stop()
    plugin_port = int(sbh.split("#")[0].rsplit(":", 1)[1])
    token = sbh.split("#", 1)[1]
    # The capture worked: both conversations were seen, with TLS records in them.
    assert len(capture.payloads.get(kernel_port, b"")) > 500
    assert len(capture.payloads.get(plugin_port, b"")) > len(value)
    assert b"\x17\x03\x03" in capture.payloads[plugin_port]  # TLS application data
    for secret in (info["secret"].encode(), token.encode(), value[:16], key.encode(), b"KOS/1"):
        assert secret not in seen, secret


def test_the_kernel_pings_its_plugins_over_tls(shared_tcp_kernel: KernelProcess) -> None:
    # The plugin's health object is served over TCP too: the kernel trusts its own run.
    wait_for(lambda: "bitbucket answers its health pings" in shared_tcp_kernel.log(), 10, "a ping")
    row = shared_tcp_kernel.plugin_row("bitbucket")
    assert row is not None and row[1] == "running" and row[6] == 0, row  # never restarted
    assert "unhealthy" not in shared_tcp_kernel.log()


def test_plaintext_to_a_tcp_port_gets_nothing(shared_tcp_kernel: KernelProcess) -> None:
    info = connection_info(shared_tcp_kernel.env)
    host, port = info["tcp"].removeprefix("tcp:").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(f"KOS/1 {info['secret']}\n".encode())
        answer = b""
        with contextlib.suppress(ConnectionResetError):  # or the server resets it
            while chunk := raw.recv(4096):
                answer += chunk
    assert b"OK" not in answer  # a TLS alert at most; never kos's answer
    with kos_core.connect() as kos:  # and the kernel goes on
        assert "bitbucket" in kos.list()


def test_a_client_without_the_authority_is_refused_in_one_error(
    tcp_kernel: KernelProcess,
    kos_env: KosEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    info = elsewhere(kos_env, tmp_path, monkeypatch)
    other = os.environ["KOS_RUNTIME_DIR"]
    forged = {**info, "ca": ""}  # e.g. a connection file from another run
    write_connection_file(Path(other) / f"{kos_env.kernel}.kernel.json", forged)
    result = cli("ls", extra_env={"KOS_RUNTIME_DIR": other})  # a process that trusts nothing
    assert_one_line_error(result, 1, "certificate", "authority this client trusts")


def test_the_run_certificate_is_private_and_gone_after_the_run(
    tcp_kernel: KernelProcess, kos_env: KosEnv
) -> None:
    pem = kos_env.runtime_dir / f"{kos_env.kernel}.tls.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in pem.read_bytes()
    assert "PRIVATE KEY" not in connection_info(kos_env)["ca"]  # only the authority's cert
    assert tcp_kernel.stop() == 0
    wait_for(lambda: not pem.exists(), 5, "the run's certificate to be removed")
