"""What kos relies on in rpyc (kos_core._rpc.rpyc_seam): these fail if an rpyc release
changes it. The peer under test is a real RpcPeer on one end of a socket pair; the other
end is driven by hand, frame by frame, so each test decides when which reply goes out.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rpyc
from hypothesis import given
from hypothesis import strategies as st
from rpyc.core import brine, consts
from rpyc.core.async_ import AsyncResult, AsyncResultTimeout
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection

from kos_core._rpc import HANDLE_KOS_CALL, RpcPeer
from kos_core._rpc import rpyc_seam as seam
from kos_core._rpc.frames import FLUSHER, HEADER, Frames
from kos_core._rpc.rpyc_seam import codec
from kos_core.testing import wait_for

CALL_TIMEOUT = 10.0


class Hand:
    """The far end of a peer's connection, answered by hand."""

    def __init__(self, sock: socket.socket) -> None:
        self.frames = Frames(sock)

    def request(self) -> tuple[int, int, Any]:
        """``(seq, handler, args)`` of the next request."""
        data = self.frames.recv()
        assert data[:1] == brine.I1.pack(consts.MSG_REQUEST)
        seq, (handler, (label, args)) = brine.load(data[1:])
        assert label == consts.LABEL_VALUE
        return seq, handler, args

    def reply(self, seq: int, value: Any) -> None:
        body = brine.dump((seq, (consts.LABEL_VALUE, value)))
        self.frames.send(brine.I1.pack(consts.MSG_REPLY) + body)


class Watched(RpcPeer):
    """An RpcPeer that notes, for every message it dispatches, the thread and whether it
    held the receive lock.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatched: list[tuple[bytes, str, bool]] = []

    def _dispatch(self, data: bytes) -> None:
        owned = self._recvlock._is_owned()
        self.dispatched.append((data[:1], threading.current_thread().name, owned))
        super()._dispatch(data)


class Served:
    """A served object that answers everything itself and notes when its connection ends."""

    concurrent = False
    ending = False
    max_request = 1024

    def __init__(self) -> None:
        self.ended = threading.Event()

    def cap_for(self, handle: Any, method: Any) -> int:
        return self.max_request

    def too_large(self, handle: Any, method: Any, size: int) -> Any:
        return None

    def disconnected(self) -> None:
        self.ended.set()


@pytest.fixture
def pair() -> Iterator[tuple[Watched, Hand]]:
    ours, theirs = socket.socketpair()
    peer = Watched(seam._Channel(ours), CALL_TIMEOUT)
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


# -- version, configuration, private names ----------------------------------------------


def test_the_installed_rpyc_is_a_6_release() -> None:
    assert rpyc.__version__.split(".")[0] == "6"


def test_every_configuration_key_is_rpycs() -> None:
    from rpyc.core.protocol import DEFAULT_CONFIG

    assert set(seam._config(1.0)) <= set(DEFAULT_CONFIG)


def test_private_attributes_kos_uses_are_there(pair: tuple[Watched, Hand]) -> None:
    peer, _ = pair
    assert type(peer._recvlock) is type(threading.RLock())
    assert isinstance(peer._recv_event, threading.Condition)
    assert peer._request_callbacks == {}
    assert peer._send_queue == []
    assert type(peer._sendlock) is type(threading.Lock())
    assert peer._channel.__class__ is seam._Channel
    assert peer._bind_threads is False
    assert peer._config["sync_request_timeout"] == CALL_TIMEOUT
    assert set(peer._HANDLERS) == {consts.HANDLE_PING, consts.HANDLE_CLOSE}
    assert isinstance(peer._local_root, seam._Root)


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("__init__", ["self", "root", "channel", "config"]),
        ("serve", ["self", "timeout", "wait_for_lock", "waiting"]),
        ("_dispatch", ["self", "data"]),
        ("_send", ["self", "msg", "seq", "args"]),
        ("_async_request", ["self", "handler", "args", "callback"]),
        ("_cleanup", ["self", "_anyway"]),
        ("_handle_ping", ["self", "data"]),
        ("_handle_close", ["self"]),
        ("_request_handlers", ["cls"]),
        ("async_request", ["self", "handler", "args", "kwargs"]),
        ("_get_seq_id", ["self"]),
        ("_box", ["self", "obj"]),
    ],
)
def test_rpyc_methods_kos_overrides_or_calls_keep_their_signatures(
    name: str, parameters: list[str]
) -> None:
    function = inspect.getattr_static(Connection, name)
    if isinstance(function, classmethod):
        function = function.__func__
    assert list(inspect.signature(function).parameters) == parameters


def test_the_frame_layout_is_rpycs() -> None:
    assert Channel.FRAME_HEADER.format == HEADER.format == "!LB"
    assert Channel.FLUSHER == FLUSHER == b"\n"


def test_async_result_timeout_is_the_builtin_timeout() -> None:
    assert AsyncResultTimeout is TimeoutError


# -- brine ------------------------------------------------------------------------------


def test_brine_load_reads_one_value_and_stops_at_the_next() -> None:
    stream = io.BytesIO(brine.dump((1, "x")) + brine.dump(b"rest"))
    assert brine._load(stream) == (1, "x")
    assert brine._load(stream) == b"rest"


def test_brine_tags_and_dumpable() -> None:
    assert brine.dump((1, 2))[:1] == brine.TAG_TUP2
    assert brine.dump((1, 2, 3))[:1] == brine.TAG_TUP3
    assert brine.I1.pack(consts.MSG_REQUEST) == bytes([consts.MSG_REQUEST])
    assert brine.dumpable((0, ("a", b"b", 1.5, None, True)))
    assert not brine.dumpable([1]) and not brine.dumpable(object())


def test_a_call_request_as_rpyc_frames_it_is_peeked(pair: tuple[Watched, Hand]) -> None:
    peer, hand = pair
    peer.post(HANDLE_KOS_CALL, (0, "Get", ("key",)))
    data = hand.frames.recv()
    assert seam.peek_call(data, HANDLE_KOS_CALL) == (0, HANDLE_KOS_CALL, 0, "Get")
    seq, (handler, boxed) = brine.load(data[1:])
    assert (seq, handler, boxed) == (0, HANDLE_KOS_CALL, (consts.LABEL_VALUE, (0, "Get", ("key",))))


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=300)
    | st.sampled_from([b"\x11", b"x" * codec.LARGE, b"y" * (codec.LARGE + 1), 10**300]),
    lambda inner: st.lists(inner, max_size=300).map(tuple),
    max_leaves=400,
)


@given(plain, st.integers(0, 2**40))
def test_pieces_join_to_the_bytes_rpyc_sends(value: Any, seq: int) -> None:
    whole = brine.I1.pack(consts.MSG_REPLY) + brine.dump((seq, value))  # rpyc 6.0's _send
    parts = codec.pieces(consts.MSG_REPLY, seq, value)
    assert b"".join(parts) == whole
    # repr tells 1 from True and 1.0, b"" from "": the types must come back too
    assert repr(codec.load_message(whole + FLUSHER)) == repr((seq, value))
    assert repr(codec.load_message(memoryview(whole))) == repr(brine.load(whole[1:]))


def test_a_large_value_is_a_piece_of_its_own_not_copied() -> None:
    value = bytes(codec.LARGE)
    parts = codec.pieces(consts.MSG_REPLY, 7, (consts.LABEL_VALUE, (0, value)))
    assert len(parts) == 2 and parts[1] is value


def test_pieces_refuse_what_brine_cannot_dump() -> None:
    with pytest.raises(TypeError):
        brine.dump([1])
    with pytest.raises(TypeError):
        codec.pieces(consts.MSG_REPLY, 1, (0, [1]))


# -- the lean path: a caller alone on its connection reads it itself ----------------------


def test_a_caller_alone_reads_its_reply_without_poll_or_dispatch(
    pair: tuple[Watched, Hand],
) -> None:
    peer, hand = pair
    peer._channel.poll = None  # type: ignore[assignment,method-assign]  # must not be called
    thread, out = in_thread(lambda: peer.request(HANDLE_KOS_CALL, (0, "M", ()), 5.0), "caller")
    seq, _, args = hand.request()
    assert args == (0, "M", ())
    hand.reply(seq, (0, b"v" * (codec.LARGE * 2)))
    thread.join(5)
    assert out == {"value": (0, b"v" * (codec.LARGE * 2))}
    assert peer.dispatched == []  # its own reply never went through rpyc
    assert peer._recvlock.acquire(blocking=False)  # and the lock is free after
    peer._recvlock.release()


def test_a_lean_reader_hands_another_threads_reply_over(pair: tuple[Watched, Hand]) -> None:
    """A reads the socket on the lean path; B, calling meanwhile, finds it taken and
    waits rpyc's way. B's reply comes first: A hands it over and reads on for its own.
    """
    peer, hand = pair
    a, a_out = in_thread(lambda: peer.request(HANDLE_KOS_CALL, (0, "A", ()), 5.0), "A")
    seq_a, _, _ = hand.request()
    assert not peer._recvlock.acquire(blocking=False)  # A sent its request holding it
    b, b_out = in_thread(lambda: peer.request(HANDLE_KOS_CALL, (0, "B", ()), 5.0), "B")
    seq_b, _, args = hand.request()
    assert args == (0, "B", ())
    hand.reply(seq_b, "for B")
    b.join(5)
    assert b_out == {"value": "for B"}
    assert a.is_alive() and a_out == {}
    assert peer.dispatched == [(brine.I1.pack(consts.MSG_REPLY), "A", True)]
    hand.reply(seq_a, "for A")
    a.join(5)
    assert a_out == {"value": "for A"}


def test_a_lean_caller_refuses_a_reply_to_no_request(pair: tuple[Watched, Hand]) -> None:
    peer, hand = pair
    thread, out = in_thread(lambda: peer.request(HANDLE_KOS_CALL, (0, "M", ()), 5.0), "caller")
    seq, _, _ = hand.request()
    hand.reply(seq + 1000, "stray")
    thread.join(5)
    assert isinstance(out.get("error"), EOFError)
    assert peer.closed


# -- the receive lock and its hand-over --------------------------------------------------


def test_dispatch_runs_holding_the_receive_lock_which_is_free_after(
    pair: tuple[Watched, Hand],
) -> None:
    peer, hand = pair
    call = (0, "M", ())
    thread, out = in_thread(peer.begin(HANDLE_KOS_CALL, call, 5.0), "caller")
    seq, _, _ = hand.request()
    hand.reply(seq, "answer")
    thread.join(5)
    assert out == {"value": "answer"}
    assert peer.dispatched == [(brine.I1.pack(consts.MSG_REPLY), "caller", True)]
    assert peer._recvlock.acquire(blocking=False)  # nobody kept it
    peer._recvlock.release()


def test_a_reader_hands_another_threads_reply_over_and_reads_on(
    pair: tuple[Watched, Hand],
) -> None:
    """Thread A reads the socket waiting for its reply; thread B, calling meanwhile,
    waits on ``_recv_event``. B's reply arrives first: A sets B's result, releases the
    lock and notifies, and B returns while A goes on waiting for its own.
    """
    peer, hand = pair
    polling: list[str] = []
    poll = peer._channel.poll

    def noted_poll(timeout: Any) -> bool:
        polling.append(threading.current_thread().name)
        return poll(timeout)

    peer._channel.poll = noted_poll  # type: ignore[method-assign]
    a, a_out = in_thread(peer.begin(HANDLE_KOS_CALL, (0, "A", ()), 5.0), "A")
    seq_a, _, _ = hand.request()
    wait_for(lambda: polling == ["A"], 5, "A to read the socket")
    b, b_out = in_thread(peer.begin(HANDLE_KOS_CALL, (0, "B", ()), 5.0), "B")
    seq_b, _, args = hand.request()
    assert args == (0, "B", ())
    hand.reply(seq_b, "for B")
    b.join(5)
    assert b_out == {"value": "for B"}
    assert a.is_alive() and a_out == {}
    assert peer.dispatched == [(brine.I1.pack(consts.MSG_REPLY), "A", True)]
    assert "B" not in polling  # B never read the socket: A handed its reply over
    hand.reply(seq_a, "for A")
    a.join(5)
    assert a_out == {"value": "for A"}


def test_serve_waits_for_the_reader_to_notify_when_the_lock_is_taken(
    pair: tuple[Watched, Hand],
) -> None:
    peer, _ = pair
    assert peer._recvlock.acquire()  # this thread is "the reader"
    try:
        waiter, out = in_thread(lambda: peer.serve(30, waiting=lambda: True), "waiter")
        wait_for(lambda: _waiting_on(peer._recv_event), 5, "the waiter to wait")
        with peer._recv_event:
            peer._recv_event.notify_all()
        waiter.join(5)
        assert out == {"value": True}  # woken by the notice, well before its 30 s
    finally:
        peer._recvlock.release()


def _waiting_on(condition: threading.Condition) -> bool:
    return bool(getattr(condition, "_waiters", ()))


def test_serve_returns_at_once_when_nothing_is_awaited(pair: tuple[Watched, Hand]) -> None:
    peer, _ = pair
    assert peer.serve(30, waiting=lambda: False) is False  # lock free: taken and given back
    assert peer._recvlock.acquire(blocking=False)
    peer._recvlock.release()
    holder = threading.Thread(target=peer._recvlock.acquire)
    holder.start()
    holder.join()
    assert peer.serve(30, waiting=lambda: False) is False  # lock taken by another thread
    assert peer.dispatched == []


def test_async_result_wait_serves_its_connection_until_the_result_is_in() -> None:
    calls: list[tuple[Any, Any]] = []

    class Conn:
        def serve(self, timeout: Any, waiting: Callable[[], bool]) -> bool:
            calls.append((timeout, waiting))
            if len(calls) == 3:
                result(False, "value")  # the reply, set by whoever read it
            return True

    result = AsyncResult(Conn())
    result.set_expiry(30)
    assert result.value == "value"
    assert len(calls) == 3
    assert all(waiting == result._waiting for _, waiting in calls)
    assert result._waiting() is False


def test_a_reply_after_expiry_is_dropped() -> None:
    result = AsyncResult(object())
    result.set_expiry(0)
    result(False, "late")
    assert not result.ready and result.expired
    with pytest.raises(AsyncResultTimeout):
        result.wait()


def test_no_reply_in_time_is_no_reply(pair: tuple[Watched, Hand]) -> None:
    peer, hand = pair
    with pytest.raises(seam.NoReply):
        peer.request(HANDLE_KOS_CALL, (0, "M", ()), 0.2)
    assert hand.request()[2] == (0, "M", ())


def test_a_peer_that_hangs_up_mid_call_is_an_eof(pair: tuple[Watched, Hand]) -> None:
    peer, hand = pair
    thread, out = in_thread(lambda: peer.request(HANDLE_KOS_CALL, (0, "M", ()), 5.0), "caller")
    hand.request()
    hand.frames.close()
    thread.join(5)
    assert isinstance(out.get("error"), EOFError)
    assert peer.closed


def test_the_served_side_is_told_when_the_connection_ends() -> None:
    ours, theirs = socket.socketpair()
    served = Served()
    peer = RpcPeer.serving(
        ours, served, {HANDLE_KOS_CALL: lambda *a: a}, 5.0, call=HANDLE_KOS_CALL, unsendable=None
    )
    client = RpcPeer.client(theirs, 5.0)
    server = threading.Thread(target=peer.serve_all, daemon=True)
    server.start()
    try:
        assert client.request(HANDLE_KOS_CALL, (1, "x", ()), 5.0) == (1, "x", ())
        client.close()  # rpyc's close request, then _cleanup on both ends
        server.join(5)
        assert served.ended.is_set() and peer.closed
    finally:
        client.hang_up()
        peer.hang_up()


def test_kos_request_ids_must_not_be_rpycs() -> None:
    ours, theirs = socket.socketpair()
    requests = {consts.HANDLE_GETATTR: print}
    with (
        contextlib.closing(ours),
        contextlib.closing(theirs),
        pytest.raises(ValueError, match="rpyc's handler ids"),
    ):
        RpcPeer.serving(ours, Served(), requests, 1.0, call=HANDLE_KOS_CALL, unsendable=None)
