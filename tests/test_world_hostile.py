"""Hostile values in etcd are ignored with a log line: they never crash a kernel nor
redirect a client; a server at a name's address holding another kernel's certificate
is refused before the client sends the name's token.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from pathlib import Path

import pytest

from kos_core._world.layout import KernelRecord, Name
from kos_core.errors import AuthenticationFailed
from kos_core.testing import wait_for
from world_helpers import World


def test_garbage_huge_and_misdirecting_values_are_ignored_and_logged(world: World) -> None:
    world.start("A")
    world.start("B", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "A's bitbucket")
    etcd = world.etcd_client()
    a_record = json.loads(etcd.get("/kos/kernels/A").value)  # type: ignore[union-attr]
    a_sbh = json.loads(etcd.get("/kos/names/A/bitbucket").value)["sbh"]  # type: ignore[union-attr]
    lease = etcd.grant(60)
    # a record pointing at A's address, as if it were another kernel
    thief = KernelRecord("X", "thief", a_record["address"], a_record["ca"], 1, 0.0, 1)
    etcd.put("/kos/kernels/X", thief.encode(), lease)
    etcd.put("/kos/names/X/bitbucket", Name("BitBucketAPI.BitBucket", a_sbh).encode(), lease)
    # a name under A's path that A did not write, pointing at another host
    etcd.put(
        "/kos/names/A/evil",
        Name("BitBucketAPI.BitBucket", "kos+tcp://127.0.0.66:1#t").encode(),
        lease,
    )
    etcd.put("/kos/kernels/garbage", b"\xff\x00 not json", lease)
    etcd.put("/kos/names/A/huge", b"x" * 300_000, lease)
    etcd.put("/kos/kernels/bad name!", b"{}", lease)
    etcd.put("/kos/elsewhere", b"?", lease)
    etcd.put("/kos/kernels/Z", b'{"name": "Z"}', lease)
    kernel_b = world.kernels["B"]
    wait_for(lambda: kernel_b.log().count("world: ignoring") >= 7, 10, "B to log the values")
    assert world.names_seen_by("B") == ["A", "B"]
    assert world.names_seen_by("B", "world/A") == ["bitbucket"]
    with world.client("B") as kos:
        kos.lookup("world/A/bitbucket").Set("k", b"v")  # still A's, still reachable
    log = kernel_b.log()
    assert "claims address" in log and "not JSON" in log and "300000 bytes" in log
    assert "/kos/names/A/evil" in log
    assert "Traceback" not in log
    for kernel in world.kernels.values():
        assert kernel.process.poll() is None


def test_a_kernel_answering_at_another_kernels_address_is_refused_before_any_token(
    world: World,
) -> None:
    world.start("A")
    world.start("B", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "A's bitbucket")
    # B's world certificate, served on A's host, under a name held by A's lease: what a
    # kernel B that took over one of A's ports would look like to a client
    impostor = _Impostor(world.tls_dir / "B.pem", world.tls_dir / "B-key.pem", "127.0.0.2")
    etcd = world.etcd_client()
    lease = etcd.get("/kos/kernels/A").lease  # type: ignore[union-attr]
    decoy = Name("BitBucketAPI.BitBucket", f"kos+tcp://127.0.0.2:{impostor.port}#bait")
    etcd.put("/kos/names/A/decoy", decoy.encode(), lease)
    try:
        wait_for(lambda: "decoy" in world.names_seen_by("B", "world/A"), 10, "the decoy")
        with world.client("B") as kos:
            _, _, sbh = kos.kernel.Lookup("world/A/decoy")
            assert sbh == f"kos+tcp://127.0.0.2:{impostor.port}?kernel=A#bait"
            with pytest.raises(AuthenticationFailed) as refused:
                kos.lookup("world/A/decoy")
            kos.lookup("world/A/bitbucket").Set("k", b"v")  # A itself is A
    finally:
        impostor.close()
    assert "certificate of kernel 'B', not of kernel 'A'" in str(refused.value)
    assert impostor.received == []  # the client hung up before sending its token


class _Impostor:
    """A TLS server with another kernel's certificate that accepts any kos handshake,
    keeping the opening lines it was sent.
    """

    def __init__(self, cert: Path, key: Path, host: str) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(cert), str(key))
        self._listener = socket.create_server((host, 0))
        self.port = int(self._listener.getsockname()[1])
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), self._context.wrap_socket(conn, True) as tls:
                line = tls.recv(256)
                if line:
                    self.received.append(line)
                    tls.sendall(b"OK KOS/1\n")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(5)
