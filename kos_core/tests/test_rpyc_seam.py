"""What kos relies on in rpyc (kos_core._rpc.rpyc_seam): these fail if an rpyc release
changes it. The peer under test is a real serving RpcPeer on one end of a socket pair;
the other end is driven by hand, frame by frame.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import rpyc
from hypothesis import given, settings
from hypothesis import strategies as st
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection

from kos_core._rpc import HANDLE_KOS_CALL, RpcPeer
from kos_core._rpc.client_peer import ClientPeer
from kos_core._rpc.frames import FLUSHER, HEADER, Frames
from kos_core._rpc.rpyc_seam import codec
from kos_core._rpc.rpyc_seam import peer as seam

CALL_TIMEOUT = 10.0


class Hand:
    """The far end of a peer's connection, driven by hand."""

    def __init__(self, sock: socket.socket) -> None:
        self.frames = Frames(sock)

    def call(self, seq: int, args: Any, handler: int = HANDLE_KOS_CALL) -> None:
        body = brine.dump((seq, (handler, (consts.LABEL_VALUE, args))))
        self.frames.send(brine.I1.pack(consts.MSG_REQUEST) + body)

    def reply(self) -> tuple[int, Any]:
        """``(seq, value)`` of the next reply."""
        data = self.frames.recv()
        assert data[:1] == brine.I1.pack(consts.MSG_REPLY)
        seq, (label, value) = brine.load(data[1:])
        assert label == consts.LABEL_VALUE
        return seq, value


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


def echo(*args: Any) -> Any:
    return args


@pytest.fixture
def pair() -> Iterator[tuple[RpcPeer, Hand]]:
    ours, theirs = socket.socketpair()
    peer = RpcPeer.serving(
        ours, Served(), {HANDLE_KOS_CALL: echo}, CALL_TIMEOUT, call=HANDLE_KOS_CALL, unsendable=None
    )
    server = threading.Thread(target=peer.serve_all, daemon=True)
    server.start()
    try:
        yield peer, Hand(theirs)
    finally:
        peer.hang_up()
        theirs.close()
        server.join(5)


# -- version, configuration, private names ----------------------------------------------


def test_the_installed_rpyc_is_a_6_release() -> None:
    assert rpyc.__version__.split(".")[0] == "6"


def test_every_configuration_key_is_rpycs() -> None:
    from rpyc.core.protocol import DEFAULT_CONFIG

    assert set(seam._config(1.0)) <= set(DEFAULT_CONFIG)


def test_private_attributes_kos_uses_are_there(pair: tuple[RpcPeer, Hand]) -> None:
    peer, _ = pair
    assert peer._request_callbacks == {}
    assert peer._channel.__class__ is Frames
    assert peer._bind_threads is False
    assert peer._config["sync_request_timeout"] == CALL_TIMEOUT
    assert set(peer._HANDLERS) == {consts.HANDLE_PING, consts.HANDLE_CLOSE}
    assert isinstance(peer._local_root, seam._Root)


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("__init__", ["self", "root", "channel", "config"]),
        ("_dispatch", ["self", "data"]),
        ("_send", ["self", "msg", "seq", "args"]),
        ("_async_request", ["self", "handler", "args", "callback"]),
        ("_cleanup", ["self", "_anyway"]),
        ("_handle_ping", ["self", "data"]),
        ("_handle_close", ["self"]),
        ("_request_handlers", ["cls"]),
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


def test_the_codecs_constants_are_rpycs() -> None:
    """The codec spells rpyc's constants out, so that a client need not import rpyc."""
    tags = [name for name in vars(codec) if name.startswith("TAG_")]
    assert tags and all(getattr(codec, name) == getattr(brine, name) for name in tags)
    assert codec.IMM_INTS == brine.IMM_INTS
    for name in ("I1", "I4", "F8"):
        assert getattr(codec, name).format == getattr(brine, name).format
    for name in ("MSG_REQUEST", "MSG_REPLY", "HANDLE_PING", "HANDLE_CLOSE"):
        assert getattr(codec, name) == getattr(consts, name)
    for name in ("LABEL_VALUE", "LABEL_TUPLE", "LABEL_LOCAL_REF", "LABEL_REMOTE_REF"):
        assert getattr(codec, name) == getattr(consts, name)


def test_a_call_request_as_rpyc_frames_it_is_peeked() -> None:
    ours, theirs = socket.socketpair()
    with contextlib.closing(theirs):
        client = ClientPeer(ours, CALL_TIMEOUT)
        try:
            client.post(HANDLE_KOS_CALL, (0, "Get", ("key",)))
            data = Frames(theirs).recv()
        finally:
            client.hang_up()
    assert codec.peek_call(data, HANDLE_KOS_CALL) == (0, HANDLE_KOS_CALL, 0, "Get")
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


@settings(deadline=None)  # correctness, not speed: a busy machine must not fail it
@given(plain, st.integers(0, 2**40))
def test_pieces_join_to_the_bytes_rpyc_sends(value: Any, seq: int) -> None:
    whole = brine.I1.pack(consts.MSG_REPLY) + brine.dump((seq, value))  # rpyc 6.0's _send
    parts = codec.pieces(consts.MSG_REPLY, seq, value)
    assert b"".join(parts) == whole
    # repr tells 1 from True and 1.0, b"" from "": the types must come back too
    assert repr(codec.load_message(whole + FLUSHER)) == repr((seq, value))
    assert repr(codec.load_message(memoryview(whole))) == repr(brine.load(whole[1:]))


@settings(deadline=None)
@given(plain, st.integers(0, 2**40), st.integers(0, 2**20), st.text(max_size=20))
def test_call_and_reply_pieces_are_the_generic_ones(
    value: Any, seq: int, handle: int, method: str
) -> None:
    call = (HANDLE_KOS_CALL, (consts.LABEL_VALUE, (handle, method, value)))
    for _ in range(2):  # the second time from the cached head of the call
        parts = codec.call_pieces(seq, HANDLE_KOS_CALL, handle, method, value)
        assert b"".join(parts) == b"".join(codec.pieces(consts.MSG_REQUEST, seq, call))
    reply = codec.reply_pieces(seq, value)
    whole = b"".join(codec.pieces(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, value)))
    assert b"".join(reply) == whole
    assert repr(codec.reply_of(memoryview(whole))) == repr((seq, value))
    request = memoryview(b"".join(parts))
    expected = repr((seq, HANDLE_KOS_CALL, (handle, method, value)))
    assert repr(codec.request_of(request)) == expected
    heads = codec.RequestHeads()
    for _ in range(2):  # the second time from the head kept in ``heads``
        assert repr(codec.request_of(request, heads)) == expected


def test_a_kept_request_head_is_used_only_for_the_same_call() -> None:
    heads = codec.RequestHeads()
    calls = [(0, "Get", ("a",)), (0, "Get", ("b", 2)), (0, "Set", ("a", b"x")), (7, "Get", ())]
    for seq, (handle, method, args) in enumerate(calls * 2, start=200):
        parts = codec.call_pieces(seq, HANDLE_KOS_CALL, handle, method, args)
        got = codec.request_of(memoryview(b"".join(parts)), heads)
        assert got == (seq, HANDLE_KOS_CALL, (handle, method, args))
    # a request of another handler, whose body is no call, is read as before
    other = b"".join(codec.pieces(consts.MSG_REQUEST, 5, (66, (consts.LABEL_VALUE, (1, 9)))))
    assert codec.request_of(memoryview(other), heads) == (5, 66, (1, 9))
    assert heads.target == (7, "Get")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            (consts.LABEL_TUPLE, ((consts.LABEL_VALUE, 1), (consts.LABEL_VALUE, 2))), id="tuple-box"
        ),
        pytest.param((consts.LABEL_REMOTE_REF, ("builtins.list", 1, 0)), id="netref"),
        pytest.param(b"\x11", id="unreadable"),
    ],
)
def test_reply_of_unboxes_a_tuple_box_and_refuses_the_rest(body: Any) -> None:
    data = brine.I1.pack(consts.MSG_REPLY) + brine.dump((4, body))
    if body[0] == consts.LABEL_TUPLE:
        assert codec.reply_of(data) == (4, (1, 2))
        return
    if isinstance(body, bytes):
        data = data[:-2]  # cut short
    with pytest.raises(codec.Refused):
        codec.reply_of(data)


def test_a_large_value_is_a_piece_of_its_own_not_copied() -> None:
    value = bytes(codec.LARGE)
    parts = codec.pieces(consts.MSG_REPLY, 7, (consts.LABEL_VALUE, (0, value)))
    assert len(parts) == 2 and parts[1] is value


def test_pieces_refuse_what_brine_cannot_dump() -> None:
    with pytest.raises(TypeError):
        brine.dump([1])
    with pytest.raises(TypeError):
        codec.pieces(consts.MSG_REPLY, 1, (0, [1]))


# -- the serving peer -------------------------------------------------------------------


def test_a_request_is_answered_and_rpycs_ping_echoed(pair: tuple[RpcPeer, Hand]) -> None:
    _, hand = pair
    hand.call(5, (1, "M", (b"v" * 100,)))
    assert hand.reply() == (5, (1, "M", (b"v" * 100,)))
    hand.call(6, ("hello",), handler=consts.HANDLE_PING)
    assert hand.reply() == (6, "hello")


def test_a_reply_to_no_request_of_the_servers_ends_the_connection(
    pair: tuple[RpcPeer, Hand],
) -> None:
    peer, hand = pair
    hand.frames.send(brine.I1.pack(consts.MSG_REPLY) + brine.dump((3, (1, None))))
    with pytest.raises(EOFError):
        hand.frames.recv(deadline=None)
    assert peer.closed


def test_the_served_side_is_told_when_the_connection_ends() -> None:
    ours, theirs = socket.socketpair()
    served = Served()
    peer = RpcPeer.serving(
        ours, served, {HANDLE_KOS_CALL: lambda *a: a}, 5.0, call=HANDLE_KOS_CALL, unsendable=None
    )
    client = ClientPeer(theirs, 5.0)
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
