"""The client's end of a kos connection (kos_core._rpc.client_peer): one real ClientPeer on
one end of a socket pair, the other end driven by hand, frame by frame, so each test
decides when which reply goes out; and against real rpyc connections, which it must
speak to byte for byte.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.service import VoidService
from rpyc.core.stream import SocketStream

from kos_core._rpc import HANDLE_KOS_CALL
from kos_core._rpc.client_peer import ClientPeer, NoReply
from kos_core._rpc.frames import Frames
from kos_core._rpc.rpyc_seam import codec
from kos_core.testing import wait_for

CALL = (0, "M", ())


class Hand:
    """The server's end, answered by hand."""

    def __init__(self, sock: socket.socket) -> None:
        self.frames = Frames(sock)

    def request(self) -> tuple[int, int, Any]:
        """``(seq, handler, args)`` of the next request."""
        data = self.frames.recv()
        assert data[:1] == brine.I1.pack(consts.MSG_REQUEST)
        seq, (handler, (label, args)) = brine.load(data[1:])
        assert label == consts.LABEL_VALUE
        return seq, handler, args

    def send(self, kind: int, seq: int, body: Any) -> None:
        self.frames.send(brine.I1.pack(kind) + brine.dump((seq, body)))

    def reply(self, seq: int, value: Any) -> None:
        self.send(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, value))


class Noted(ClientPeer):
    """A ClientPeer that notes which thread read each frame."""

    def __init__(self, sock: socket.socket, call_timeout: float) -> None:
        super().__init__(sock, call_timeout)
        self.readers: list[str] = []
        recv = self._frames.recv

        def noted(deadline: float | None = None) -> memoryview:
            self.readers.append(threading.current_thread().name)
            return recv(deadline)

        self._frames.recv = noted  # type: ignore[method-assign]


@pytest.fixture
def pair() -> Iterator[tuple[Noted, Hand]]:
    ours, theirs = socket.socketpair()
    peer = Noted(ours, 10.0)
    try:
        yield peer, Hand(theirs)
    finally:
        peer.hang_up()
        theirs.close()


def in_thread(target: Callable[[], Any], name: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, out


def call(peer: ClientPeer, method: str, timeout: float = 5.0) -> Callable[[], Any]:
    return lambda: peer.request(HANDLE_KOS_CALL, (0, method, ()), timeout)


def test_a_caller_alone_reads_its_reply_and_leaves_nothing_behind(
    pair: tuple[Noted, Hand],
) -> None:
    peer, hand = pair
    thread, out = in_thread(call(peer, "M"), "caller")
    seq, handler, args = hand.request()
    assert (handler, args) == (HANDLE_KOS_CALL, CALL)
    hand.reply(seq, (0, b"v" * (codec.LARGE * 2)))
    thread.join(5)
    assert out == {"value": (0, b"v" * (codec.LARGE * 2))}
    assert peer.readers == ["caller"]
    assert peer._awaited == {} and not peer._reading.locked()


def test_the_reader_hands_another_callers_reply_over(pair: tuple[Noted, Hand]) -> None:
    """A reads the socket; B, calling meanwhile, waits. B's reply comes first: A hands it
    over and reads on for its own; B never reads.
    """
    peer, hand = pair
    a, a_out = in_thread(call(peer, "A"), "A")
    seq_a, _, _ = hand.request()
    wait_for(lambda: peer.readers == ["A"], 5, "A to read the socket")
    b, b_out = in_thread(call(peer, "B"), "B")
    seq_b, _, args = hand.request()
    assert args == (0, "B", ())
    hand.reply(seq_b, "for B")
    b.join(5)
    assert b_out == {"value": "for B"}
    assert a.is_alive() and a_out == {}
    hand.reply(seq_a, "for A")
    a.join(5)
    assert a_out == {"value": "for A"}
    assert "B" not in peer.readers


def test_a_waiting_caller_reads_once_the_reader_is_done(pair: tuple[Noted, Hand]) -> None:
    peer, hand = pair
    a, a_out = in_thread(call(peer, "A"), "A")
    seq_a, _, _ = hand.request()
    wait_for(lambda: peer.readers == ["A"], 5, "A to read the socket")
    b, b_out = in_thread(call(peer, "B"), "B")
    seq_b, _, _ = hand.request()
    hand.reply(seq_a, "for A")
    a.join(5)
    assert a_out == {"value": "for A"}
    wait_for(lambda: "B" in peer.readers, 5, "B to take over reading")
    hand.reply(seq_b, "for B")
    b.join(5)
    assert b_out == {"value": "for B"}
    assert peer._awaited == {}


def test_requests_begun_together_overlap_and_each_gets_its_reply(
    pair: tuple[Noted, Hand],
) -> None:
    peer, hand = pair
    pending = [peer.begin(HANDLE_KOS_CALL, 0, f"M{i}", (), 5.0) for i in range(3)]
    seqs = [hand.request()[0] for _ in range(3)]
    for seq in reversed(seqs):
        hand.reply(seq, seq)
    assert [result() for result in pending] == seqs


def test_a_posted_requests_reply_is_dropped(pair: tuple[Noted, Hand]) -> None:
    peer, hand = pair
    peer.post(HANDLE_KOS_CALL, CALL)
    posted, _, _ = hand.request()
    thread, out = in_thread(call(peer, "M"), "caller")
    seq, _, _ = hand.request()
    hand.reply(posted, "nobody's")
    hand.reply(seq, "mine")
    thread.join(5)
    assert out == {"value": "mine"}
    assert peer._awaited == {}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param((consts.MSG_REPLY, 1000, (consts.LABEL_VALUE, "stray")), id="reply-to-none"),
        pytest.param((consts.MSG_EXCEPTION, 0, (("m", "E"), (), (), "")), id="exception"),
        pytest.param(
            (consts.MSG_REPLY, 0, (consts.LABEL_REMOTE_REF, ("builtins.list", 1, 0))),
            id="netref",
        ),
        pytest.param(
            (consts.MSG_REQUEST, 9, (consts.HANDLE_GETATTR, (consts.LABEL_VALUE, ()))),
            id="rpyc-request",
        ),
    ],
)
def test_what_no_kos_server_sends_ends_the_call_and_the_connection(
    pair: tuple[Noted, Hand], message: tuple[int, int, Any]
) -> None:
    peer, hand = pair
    thread, out = in_thread(call(peer, "M"), "caller")
    hand.request()
    hand.send(*message)
    thread.join(5)
    assert isinstance(out.get("error"), EOFError)
    assert peer.closed


def test_rpycs_ping_is_echoed_and_its_close_ends_the_connection(
    pair: tuple[Noted, Hand],
) -> None:
    peer, hand = pair
    thread, out = in_thread(call(peer, "M"), "caller")
    hand.request()
    hand.send(consts.MSG_REQUEST, 77, (consts.HANDLE_PING, (consts.LABEL_VALUE, ("hi",))))
    data = hand.frames.recv()
    assert brine.load(data[1:]) == (77, (consts.LABEL_VALUE, "hi"))  # as rpyc echoes
    assert thread.is_alive()
    hand.send(consts.MSG_REQUEST, 78, (consts.HANDLE_CLOSE, (consts.LABEL_VALUE, ())))
    thread.join(5)
    assert isinstance(out.get("error"), EOFError)
    assert peer.closed


def test_no_reply_in_time_is_no_reply_for_the_reader_and_a_waiter(
    pair: tuple[Noted, Hand],
) -> None:
    peer, hand = pair
    a, a_out = in_thread(call(peer, "A", timeout=1.5), "A")
    hand.request()
    wait_for(lambda: peer.readers == ["A"], 5, "A to read the socket")
    with pytest.raises(NoReply):
        peer.request(HANDLE_KOS_CALL, CALL, 0.2)  # waits behind A, then gives up
    assert a.is_alive()
    a.join(10)
    assert isinstance(a_out.get("error"), NoReply)
    assert peer.closed  # a read cut off mid-wait leaves the stream unknown


def test_a_server_that_hangs_up_mid_call_is_an_eof_for_every_caller(
    pair: tuple[Noted, Hand],
) -> None:
    peer, hand = pair
    a, a_out = in_thread(call(peer, "A"), "A")
    hand.request()
    wait_for(lambda: peer.readers == ["A"], 5, "A to read the socket")
    b, b_out = in_thread(call(peer, "B"), "B")
    hand.request()
    hand.frames.close()
    a.join(5)
    b.join(5)
    assert isinstance(a_out.get("error"), EOFError)
    assert isinstance(b_out.get("error"), EOFError)
    with pytest.raises(EOFError):
        peer.request(HANDLE_KOS_CALL, CALL, 1.0)


def test_close_tells_the_server_with_rpycs_close_request(pair: tuple[Noted, Hand]) -> None:
    peer, hand = pair
    peer.close()
    _, handler, args = hand.request()
    assert (handler, args) == (consts.HANDLE_CLOSE, ())
    assert peer.closed


def test_it_speaks_to_a_plain_rpyc_connection() -> None:
    """rpyc's own connection answers its ping, and sees the client's close."""
    ours, theirs = socket.socketpair()
    channel = Channel(SocketStream(theirs), compress=False)  # kos frames are never compressed
    server = Connection(VoidService(), channel, {})
    serving = threading.Thread(target=server.serve_all, daemon=True)
    serving.start()
    client = ClientPeer(ours, 5.0)
    try:
        assert client.request(consts.HANDLE_PING, (b"x" * 100_000,), 5.0) == b"x" * 100_000
        assert client.request(consts.HANDLE_PING, (("a", 1, None),), 5.0) == ("a", 1, None)
        client.close()
        serving.join(5)
        assert server.closed
    finally:
        client.hang_up()
        server.close()
