"""Only kos messages after the handshake, and a bounded cost before it, on a real
server and real sockets in this process (kos_core._rpc.connection, _handshakes, _server).
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rpyc.core import brine, consts, vinegar

from coretest_util import TOKEN, EchoServer, echo_server, seconds_until_cut, short_dir
from kos_core import _rpc
from kos_core._net import handshakes, wire
from kos_core._rpc import session as rpc_session
from kos_core.errors import RemoteError, ServiceUnavailable
from kos_core.testing import wait_for
from toyapi import Echo, EchoImpl

FRAME = struct.Struct("!LB")


def frame(msg: int, seq: int, body: Any) -> bytes:
    payload = brine.I1.pack(msg) + brine.dump((seq, body))
    return FRAME.pack(len(payload), 0) + payload + b"\n"


def call(*boxed_args: Any, handler: int = _rpc.HANDLE_KOS_CALL) -> bytes:
    return frame(consts.MSG_REQUEST, 1, (handler, (consts.LABEL_TUPLE, boxed_args)))


def value(v: Any) -> tuple[int, Any]:
    return (consts.LABEL_VALUE, v)


NETREF = (consts.LABEL_REMOTE_REF, ("builtins.bytearray", 1234, 0))


def frames_until_closed(sock: socket.socket, timeout: float = 3.0) -> tuple[bytes, bool]:
    """What the peer sends until it hangs up, and whether it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with echo_server() as srv:
        yield srv


# -------------------------------------------------------------------- serving side


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            frame(consts.MSG_EXCEPTION, 1, (("attack.m", "E0"), (), (), "")), id="exception"
        ),
        pytest.param(frame(consts.MSG_REPLY, 7, value(None)), id="reply-to-nothing"),
        pytest.param(frame(9, 1, value(None)), id="unknown-kind"),
        pytest.param(call(value(0), value("Bytes"), (consts.LABEL_TUPLE, (NETREF,))), id="netref"),
        pytest.param(
            call(value(0), value("Bytes"), (consts.LABEL_LOCAL_REF, ("x", 1, 0))), id="local-ref"
        ),
        pytest.param(call(value(0), handler=consts.HANDLE_GETATTR), id="rpyc-getattr"),
        pytest.param(call(value(1), value(2), handler=_rpc.HANDLE_KOS_RELEASE), id="bad-arity"),
        pytest.param(
            frame(consts.MSG_REQUEST, 1, (_rpc.HANDLE_KOS_CALL, value(5))), id="args-not-a-tuple"
        ),
    ],
)
def test_anything_but_a_kos_request_closes_the_connection_unanswered(
    server: EchoServer, message: bytes
) -> None:
    classes = len(vinegar._generic_exceptions_cache)
    sock = server.address.connect(5.0)
    try:
        wire.client_handshake(sock, TOKEN)
        # a good call behind it must not be served either
        sock.sendall(message + call(value(0), value("Str"), value(("x",))))
        data, closed = frames_until_closed(sock)
    finally:
        sock.close()
    assert (data, closed) == (b"", True)
    assert server.impl.calls == []
    assert len(vinegar._generic_exceptions_cache) == classes
    assert server.proxy().Str("fine") == "fine"


def test_many_exception_frames_create_no_classes(server: EchoServer) -> None:
    classes = len(vinegar._generic_exceptions_cache)
    for i in range(200):
        sock = server.address.connect(5.0)
        try:
            wire.client_handshake(sock, TOKEN)
            sock.sendall(frame(consts.MSG_EXCEPTION, i, ((f"attack.m{i}", f"E{i}"), (), (), "")))
            assert frames_until_closed(sock) == (b"", True)
        finally:
            sock.close()
    assert len(vinegar._generic_exceptions_cache) == classes


def test_a_value_brine_cannot_carry_is_refused_before_anything_is_sent(
    server: EchoServer,
) -> None:
    """rpyc would box a list by reference; a kos client refuses it, and the connection
    goes on (the server hangs up on a boxed reference: the ``netref`` case above).
    """
    link = _rpc.ClientConnection(server.address, TOKEN, "toy")
    try:
        conn = link.connect()
        with pytest.raises(TypeError):
            conn.request(_rpc.HANDLE_KOS_CALL, (0, "Str", (["x"],)), 5.0)
        assert server.impl.calls == []
        assert conn.request(_rpc.HANDLE_KOS_CALL, (0, "Str", ("x",)), 5.0) == (_rpc.OK, "x")
    finally:
        link.close()


def test_by_reference_objects_per_connection_are_capped(
    server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc_session, "MAX_REFERENCES", 3)
    echo = server.proxy()
    held = [echo.Open() for _ in range(3)]
    with pytest.raises(RemoteError) as info:
        echo.Open()
    assert info.value.kind == "TooManyReferences"
    del held[0]
    gc.collect()
    assert wait_for(lambda: _attempt_open(echo), 5.0, "a released reference to make room")
    assert server.proxy().Open().Incr() == 1  # another connection has its own allowance


def _attempt_open(echo: Any) -> bool:
    try:
        return echo.Open().Incr() == 1
    except RemoteError:
        return False


# ---------------------------------------------------------------------- client side


def fake_server(path: str, answer: Any) -> tuple[threading.Thread, list[bytes]]:
    """A server that accepts the handshake, answers the first request with
    ``answer(seq)`` and records what the client sends after that.
    """
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    after: list[bytes] = []

    def run() -> None:
        with listener, listener.accept()[0] as sock:
            sock.settimeout(5.0)
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"OK KOS/1\n")
            length, _ = FRAME.unpack(reader.read(FRAME.size))
            seq, _ = brine.load(reader.read(length + 1)[1:-1])
            sock.sendall(answer(seq))
            after.append(frames_until_closed(sock)[0])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, after


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            lambda seq: frame(consts.MSG_EXCEPTION, seq, (("attack.m", "E"), (), (), "")),
            id="exception",
        ),
        pytest.param(lambda seq: frame(consts.MSG_REPLY, seq, NETREF), id="netref-reply"),
        pytest.param(lambda seq: frame(consts.MSG_REPLY, seq + 1, value((0, "x"))), id="wrong-seq"),
        pytest.param(
            lambda seq: frame(consts.MSG_REQUEST, 5, (consts.HANDLE_GETROOT, value(()))),
            id="rpyc-request",
        ),
    ],
)
def test_a_client_hangs_up_on_anything_but_a_reply(answer: Any) -> None:
    classes = len(vinegar._generic_exceptions_cache)
    with short_dir() as base:
        path = str(base / "fake.sock")
        thread, after = fake_server(path, answer)
        proxy = _rpc.make_proxy(Echo, _rpc.ClientConnection(wire.Address(path=path), TOKEN, "fake"))
        with pytest.raises(ServiceUnavailable):
            proxy.Str("x")
        thread.join(10)
    assert after == [b""]  # no request back (no netref inspection), no exception sent
    assert len(vinegar._generic_exceptions_cache) == classes


# --------------------------------------------------------------- before the handshake


def test_the_handshake_has_one_total_deadline(
    server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that trickles its opening line is cut at the deadline, not per read."""
    monkeypatch.setattr(wire, "HANDSHAKE_TIMEOUT", 1.0)
    took = seconds_until_cut(server.address.connect(5.0), b"KOS/1 " + b"x" * 100)
    assert took is not None and 0.9 <= took <= 2.0, took
    assert server.proxy().Str("fine") == "fine"


def client_threads() -> int:
    return sum(t.name == "toy-client" for t in threading.enumerate())


def test_pending_connections_are_capped_oldest_first(server: EchoServer) -> None:
    extra = 16
    idle = [server.address.connect(5.0) for _ in range(handshakes.MAX_PENDING + extra)]
    try:
        # the oldest are closed at once to make room; the newest still wait
        for sock in idle[:extra]:
            assert frames_until_closed(sock, 2.0) == (b"", True)
        # a cut connection's thread ends as soon as it wakes
        wait_for(lambda: client_threads() <= handshakes.MAX_PENDING, 2.0, "cut threads to end")
        start = time.monotonic()
        assert server.proxy().Str("fine") == "fine"
        assert time.monotonic() - start <= 1.0
        idle[-1].setblocking(False)
        with pytest.raises(BlockingIOError):
            idle[-1].recv(1)
    finally:
        for sock in idle:
            sock.close()


def test_session_peer_is_the_client_process_on_unix_and_none_on_tcp() -> None:
    sessions: list[_rpc.ServerSession] = []

    def authorize(token: str) -> _rpc.ServerSession | None:
        sessions.append(_rpc.ServerSession(EchoImpl(), Echo))
        return sessions[-1]

    with echo_server(authorize=authorize) as srv:
        assert srv.proxy().Str("x") == "x"
    with echo_server(wire.Address(host="127.0.0.1", port=0), authorize=authorize) as srv:
        assert srv.proxy().Str("x") == "x"
    assert [s.peer for s in sessions] == [(os.getpid(), os.getuid(), os.getgid()), None]


@pytest.fixture
def full_backlog() -> Iterator[tuple[socket.socket, str]]:
    """A Unix listener that accepts nothing, its backlog filled by idle connects."""
    with short_dir() as base:
        path = str(base / "full.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        filling: list[socket.socket] = []
        try:
            while True:
                sock = socket.socket(socket.AF_UNIX)
                sock.setblocking(False)
                filling.append(sock)
                try:
                    sock.connect(path)
                except BlockingIOError:
                    break
            yield listener, path
        finally:
            for sock in filling:
                sock.close()
            listener.close()


def test_a_full_backlog_is_retried_briefly(
    full_backlog: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, path = full_backlog
    retried = threading.Event()
    pause = wire._retry_pause

    def noted(seconds: float) -> None:
        retried.set()
        pause(seconds)

    monkeypatch.setattr(wire, "_retry_pause", noted)
    connected: list[socket.socket] = []
    client = threading.Thread(
        target=lambda: connected.append(wire.Address(path=path).connect(5.0)), daemon=True
    )
    client.start()
    assert retried.wait(5.0)
    listener.accept()[0].close()  # room for one
    client.join(5.0)
    assert len(connected) == 1
    connected[0].close()


def test_a_backlog_that_stays_full_fails_within_the_retry_time(
    full_backlog: tuple[socket.socket, str],
) -> None:
    start = time.monotonic()
    with pytest.raises(BlockingIOError):
        wire.Address(path=full_backlog[1]).connect(5.0)
    took = time.monotonic() - start
    assert wire.CONNECT_RETRY * 0.5 <= took <= wire.CONNECT_RETRY + 0.5, took


def test_connect_timeout_bounds_the_retry(full_backlog: tuple[socket.socket, str]) -> None:
    start = time.monotonic()
    with pytest.raises(BlockingIOError):
        wire.Address(path=full_backlog[1]).connect(0.2)
    assert time.monotonic() - start <= 0.6
