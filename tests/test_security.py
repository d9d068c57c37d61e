"""Credentials and hostile bytes: nothing gets in without the secret; nothing stops the kernel."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time

import pytest

import kos_core
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import AuthenticationFailed
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import connection_file, connection_info
from kos_plugins_bitbucket import BitBucket


@pytest.fixture
def kos_env(shared_kos_env: KosEnv) -> KosEnv:
    """The tests of this module share one kernel (none of them stops it)."""
    return shared_kos_env


@pytest.fixture
def bb_kernel(shared_bb_kernel: KernelProcess) -> KernelProcess:
    """The module's shared kernel."""
    return shared_bb_kernel


def kernel_address(kos_env: KosEnv) -> wire.Address:
    return wire.Address.parse(connection_info(kos_env)["address"])


def raw_socket(address: wire.Address) -> socket.socket:
    return address.connect(timeout=5.0)


def read_until_closed(sock: socket.socket, timeout: float = 4.0) -> bytes:
    """Everything the peer sends until it hangs up; fails if it does not within ``timeout``
    (less than the server's 5 s handshake timeout: refusal must be immediate).
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the server did not hang up within {timeout:g} s (got {data!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return data
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk


def assert_still_serves(kos_env: KosEnv) -> None:
    """A normal client can look up and call bitbucket."""
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("alive", b"yes")
        assert bb.Get("alive") == b"yes"


def test_secret_file_and_runtime_dir_are_private(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    conn_file = connection_file(kos_env)
    assert stat.S_IMODE(conn_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(kos_env.runtime_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(kos_env.runtime_dir / f"{kos_env.kernel}.sock").st_mode) == 0o600
    assert len(connection_info(kos_env)["secret"]) >= 32


@pytest.mark.parametrize("token", ["wrongtoken", "x" * 43])
def test_raw_handshake_with_a_wrong_token_gets_no(
    kos_env: KosEnv, bb_kernel: KernelProcess, token: str
) -> None:
    with contextlib.closing(raw_socket(kernel_address(kos_env))) as sock:
        sock.sendall(f"KOS/1 {token}\n".encode())
        reply = read_until_closed(sock)
    assert reply.startswith(b"NO "), reply
    assert reply.count(b"\n") == 1
    assert_still_serves(kos_env)


def test_raw_handshake_with_the_secret_gets_ok(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    # the control for the test above: the same bytes with the right secret are accepted
    secret = connection_info(kos_env)["secret"]
    with contextlib.closing(raw_socket(kernel_address(kos_env))) as sock:
        sock.sendall(f"KOS/1 {secret}\n".encode())
        sock.settimeout(5)
        assert sock.recv(64) == b"OK KOS/1\n"


def test_link_with_a_wrong_token_is_refused(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    link = _rpc.ClientConnection(kernel_address(kos_env), "wrongtoken", "kernel under test")
    try:
        with pytest.raises(AuthenticationFailed):
            link.connect()
        kernel = _rpc.make_proxy(
            KernelInterface, _rpc.ClientConnection(kernel_address(kos_env), "bad", "k")
        )
        with pytest.raises(AuthenticationFailed):
            kernel.Lookup("bitbucket")
    finally:
        link.close()
    assert_still_serves(kos_env)


def test_plugin_service_refuses_a_wrong_token(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        kind, typename, sbh = kos.kernel.Lookup("bitbucket")
    assert (kind, typename) == ("service", "BitBucketAPI.BitBucket")
    address, token = wire.parse_sbh(sbh)
    assert address.path is not None
    assert (
        connection_info(kos_env)["secret"] not in sbh
    )  # an SBH does not carry the kernel's secret
    for wrong in ("wrongtoken", token[:-1] + ("A" if token[-1] != "A" else "B")):
        bad = wire.format_sbh(address, wrong)
        proxy = _rpc.object_of_sbh(bad, BitBucket)
        try:
            with pytest.raises(AuthenticationFailed):
                proxy.List()
        finally:
            _rpc.connection_of(proxy).close()  # type: ignore[union-attr]
    # nor does the kernel's secret open the plugin's objects
    proxy = _rpc.object_of_sbh(
        wire.format_sbh(address, connection_info(kos_env)["secret"]), BitBucket
    )
    try:
        with pytest.raises(AuthenticationFailed):
            proxy.List()
    finally:
        _rpc.connection_of(proxy).close()  # type: ignore[union-attr]
    # the real SBH works
    proxy = _rpc.object_of_sbh(sbh, BitBucket)
    try:
        assert isinstance(proxy.List(), list)
    finally:
        _rpc.connection_of(proxy).close()  # type: ignore[union-attr]


def test_protocol_version_mismatch_gets_a_no_line(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    with contextlib.closing(raw_socket(kernel_address(kos_env))) as sock:
        sock.sendall(b"KOS/99 x\n")
        reply = read_until_closed(sock)
    assert reply.startswith(b"NO protocol"), reply
    assert b"KOS/99" in reply
    assert b"KOS/1" in reply
    assert_still_serves(kos_env)


#: garbage, and the kernel's answer before it hangs up: ``NO not a kos handshake`` to a
#: readable line that is not one, nothing to the rest (unreadable, or not one line)
GARBAGE = {
    "random bytes": (os.urandom(4096), b""),
    "huge line without newline": (b"A" * (1 << 20), b""),
    "not a handshake": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    "binary with newline": (b"\x00\xff\xfe\n", b""),
    "empty token": (b"KOS/1 \n", b"NO not a kos handshake\n"),
    "bytes after the handshake line": (b"KOS/1 token\n\x00\x00\x00\x10" + b"\x01" * 16, b""),
}


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_does_not_stop_the_kernel(
    kos_env: KosEnv, bb_kernel: KernelProcess, garbage: str
) -> None:
    with contextlib.closing(raw_socket(kernel_address(kos_env))) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(GARBAGE[garbage][0])
        reply = read_until_closed(sock)  # refused and hung up on, quickly
    assert reply == GARBAGE[garbage][1]
    assert bb_kernel.process.poll() is None
    assert_still_serves(kos_env)


def test_a_silent_half_handshake_is_dropped_after_the_timeout(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    with contextlib.closing(raw_socket(kernel_address(kos_env))) as sock:
        sock.sendall(b"KOS/1 no-newline-yet")
        assert_still_serves(kos_env)  # meanwhile, others are served
        reply = read_until_closed(sock, wire.HANDSHAKE_TIMEOUT + 5)
    assert reply == b""  # cut without an answer
    assert_still_serves(kos_env)


def test_immediate_close_and_many_idle_sockets(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    address = kernel_address(kos_env)
    for _ in range(20):
        raw_socket(address).close()
    idle = [raw_socket(address) for _ in range(20)]  # connected, silent
    try:
        assert_still_serves(kos_env)  # silent peers do not block others
    finally:
        for sock in idle:
            sock.close()
    assert_still_serves(kos_env)


def test_garbage_on_the_plugin_socket(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        _, _, sbh = kos.kernel.Lookup("bitbucket")
    address, _ = wire.parse_sbh(sbh)
    for garbage in (os.urandom(2048), b"KOS/99 x\n", b"B" * (1 << 20)):
        with contextlib.closing(raw_socket(address)) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(garbage)
            read_until_closed(sock)
    assert_still_serves(kos_env)


def test_client_cannot_reach_undeclared_methods(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    # only interface methods are callable: not attributes, not dunder methods
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        link = _rpc.connection_of(bb)
        assert link is not None
        conn = link.connect()
        for method in ("__class__", "__init__", "entries", "cur_size", "_lock"):
            status, payload = conn.request(_rpc.HANDLE_KOS_CALL, (0, method, ()), 5.0)
            assert status == _rpc.FAULT
            assert payload[0] == "NoSuchMethod", payload
        status, payload = conn.request(_rpc.HANDLE_KOS_CALL, (0, "Set", ("n", "not bytes")), 5.0)
        assert (status, payload[0]) == (_rpc.FAULT, "TypeError")
        assert "n" not in bb.List()
