"""A one-shot server on a Unix socket (a factory child's): its one client is served on
the thread that accepted it, its first request may come pipelined behind the opening
line, and everybody else is refused (kos_core._rpc.server, kos_core._net.wire).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coretest_util import TOKEN, short_dir
from kos_core import _rpc
from kos_core._net import wire
from kos_core._rpc import server as rpc_server
from kos_core._rpc.client_peer import ClientPeer
from kos_core.errors import AuthenticationFailed
from kos_core.testing import wait_for
from toyapi import Echo


class Where:
    """Implements ``Echo.Str``: answers with the name of the thread serving the call."""

    def __init__(self) -> None:
        self.calls = 0

    def Str(self, s: str) -> str:
        self.calls += 1
        return threading.current_thread().name


@contextlib.contextmanager
def one_shot(base: Path, impl: Where) -> Iterator[_rpc.Server]:
    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(impl, Echo) if wire.tokens_equal(token, TOKEN) else None

    where = wire.Address(path=str(base / "one.sock"))
    server = _rpc.Server(where, authorize, name="one", one_shot=True).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def impl() -> Where:
    return Where()


@pytest.fixture
def server(impl: Where) -> Iterator[_rpc.Server]:
    with short_dir() as base, one_shot(base, impl) as srv:
        yield srv


def proxy(address: wire.Address, token: str = TOKEN) -> Any:
    return _rpc.object_of_sbh(wire.format_sbh(address, token), Echo)


def close(obj: Any) -> None:
    link = _rpc.connection_of(obj)
    assert link is not None
    link.close()


def test_its_sbh_says_it_reads_a_pipelined_request(server: _rpc.Server) -> None:
    sbh = wire.format_sbh(server.address, TOKEN)
    assert sbh.startswith("kos+unix://") and "?pipeline=1#" in sbh
    assert wire.parse_sbh(sbh) == (server.address, TOKEN)
    assert wire.parse_sbh(sbh)[0].pipeline


def test_a_server_that_serves_many_clients_does_not_say_so() -> None:
    with short_dir() as base:
        where = wire.Address(path=str(base / "many.sock"))
        server = _rpc.Server(where, lambda token: None, name="many").start()
        try:
            sbh = wire.format_sbh(server.address, TOKEN)
        finally:
            server.close()
    assert "pipeline" not in sbh
    assert not wire.parse_sbh(sbh)[0].pipeline


def test_the_one_client_is_served_on_an_accepting_thread(server: _rpc.Server, impl: Where) -> None:
    client = proxy(server.address)
    try:
        assert client.Str("x") == "one-accept"
        assert client.Str("y") == "one-accept"
    finally:
        close(client)
    assert impl.calls == 2
    assert server.finished.wait(5.0)


def test_a_second_client_is_refused_while_the_first_is_served(
    server: _rpc.Server, impl: Where
) -> None:
    first = proxy(server.address)
    second = proxy(server.address)
    try:
        assert first.Str("x") == "one-accept"
        with pytest.raises(AuthenticationFailed):
            second.Str("x")
        assert first.Str("again") == "one-accept"  # the first client is not disturbed
    finally:
        close(first)
        close(second)
    assert impl.calls == 2


def test_a_wrong_token_is_refused_before_its_pipelined_request_is_read(
    server: _rpc.Server, impl: Where
) -> None:
    forged = proxy(server.address, "x" + TOKEN[1:])
    with pytest.raises(AuthenticationFailed):
        forged.Str("x")
    assert impl.calls == 0
    client = proxy(server.address)  # the child is not used up
    try:
        assert client.Str("x") == "one-accept"
    finally:
        close(client)


def test_silent_connections_do_not_hold_up_the_one_client(server: _rpc.Server) -> None:
    assert server.address.path is not None
    silent = [server.address.connect(5.0) for _ in range(3)]
    try:
        client = proxy(server.address)
        start = time.monotonic()
        try:
            client.Str("x")
        finally:
            close(client)
        assert time.monotonic() - start < wire.HANDSHAKE_TIMEOUT / 2
    finally:
        for sock in silent:
            sock.close()


def test_an_opening_line_that_comes_late_is_served_on_its_own_thread(
    monkeypatch: pytest.MonkeyPatch, impl: Where
) -> None:
    monkeypatch.setattr(rpc_server, "INLINE_WAIT", 0.001)
    with short_dir() as base, one_shot(base, impl) as server:
        sock = server.address.connect(5.0)
        try:
            wait_for(
                lambda: any(t.name == "one-client" for t in threading.enumerate()),
                what="the connection's own thread",
            )
            wire.client_handshake(sock, TOKEN)
            sock.settimeout(None)
            conn = ClientPeer(sock, 5.0)
            status, payload = conn.request(_rpc.HANDLE_KOS_CALL, (0, "Str", ("x",)), 5.0)
            conn.close()
        finally:
            sock.close()
    assert (status, payload) == (_rpc.OK, "one-client")


@contextlib.contextmanager
def fake_server(base: Path) -> Iterator[tuple[wire.Address, socket.socket]]:
    """A listener that speaks no kos: the test answers by hand."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(base / "fake.sock")
    listener.bind(path)
    listener.listen(1)
    try:
        yield wire.Address(path=path, pipeline=True), listener
    finally:
        listener.close()


def test_the_client_sends_its_first_request_before_the_answer_and_reads_a_refusal() -> None:
    with short_dir() as base, fake_server(base) as (address, listener):
        client = proxy(address)
        result: list[BaseException] = []

        def call() -> None:
            try:
                client.Str("x")
            except BaseException as exc:
                result.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(5.0)
            received = b""
            opening = f"KOS/{wire.PROTOCOL_VERSION} {TOKEN}\n".encode()
            while len(received) <= len(opening):  # the line and some of the request
                chunk = peer.recv(4096)
                assert chunk, "the client hung up"
                received += chunk
            peer.sendall(b"NO credentials refused\n")
        caller.join(5.0)
    assert received.startswith(opening)
    assert len(received) > len(opening)
    assert len(result) == 1 and isinstance(result[0], AuthenticationFailed)
