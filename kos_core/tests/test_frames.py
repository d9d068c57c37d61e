"""kos_core._rpc.frames: frames on a real socket pair, read through one reused buffer."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from kos_core._rpc import frames as frames_module
from kos_core._rpc.frames import EXACT, FLUSHER, HEADER, Frames


@pytest.fixture
def ends() -> Iterator[tuple[Frames, socket.socket]]:
    ours, theirs = socket.socketpair()
    try:
        yield Frames(ours), theirs
    finally:
        ours.close()
        theirs.close()


def framed(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), 0) + payload + FLUSHER


def send_later(sock: socket.socket, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def test_frames_that_arrive_together_are_taken_one_by_one(
    ends: tuple[Frames, socket.socket],
) -> None:
    frames, theirs = ends
    payloads = [b"", b"a", os.urandom(100), os.urandom(5000)]
    theirs.sendall(b"".join(framed(p) for p in payloads))
    assert [bytes(frames.recv()) for _ in payloads] == payloads


def test_a_long_frame_arrives_whole_and_its_buffer_is_kept_for_the_next(
    ends: tuple[Frames, socket.socket],
) -> None:
    frames, theirs = ends
    first, second = os.urandom(1 << 20), os.urandom(1 << 20)
    sender = send_later(theirs, framed(first) + framed(second))
    assert bytes(frames.recv()) == first
    buffer = frames._buffer
    assert len(buffer) < 4 * (1 << 20)  # it grew with the frame, no further
    assert bytes(frames.recv()) == second
    assert frames._buffer is buffer  # the same buffer: nothing allocated for the second
    sender.join(5)


def test_a_buffer_longer_than_exact_is_given_back_after_its_frame(
    ends: tuple[Frames, socket.socket],
) -> None:
    frames, theirs = ends
    big = os.urandom(EXACT + 1)
    sender = send_later(theirs, framed(big) + framed(b"small"))
    assert bytes(frames.recv()) == big
    assert len(frames._buffer) > EXACT
    assert bytes(frames.recv()) == b"small"
    assert len(frames._buffer) <= frames_module._AHEAD
    sender.join(5)


def test_an_announced_frame_is_not_allocated_before_it_arrives(
    ends: tuple[Frames, socket.socket],
) -> None:
    frames, theirs = ends
    theirs.sendall(HEADER.pack(60 << 20, 0) + b"x" * 1000)
    theirs.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        frames.recv()
    assert len(frames._buffer) <= 2 * frames_module._AHEAD


def test_a_read_past_its_deadline_times_out_and_closes(
    ends: tuple[Frames, socket.socket],
) -> None:
    frames, theirs = ends
    theirs.sendall(HEADER.pack(10, 0) + b"part")  # and never the rest
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        frames.recv(start + 0.3)
    assert 0.25 <= time.monotonic() - start < 3.0
    assert frames.closed


def test_a_frame_in_pieces_goes_out_as_one(ends: tuple[Frames, socket.socket]) -> None:
    frames, theirs = ends
    large = os.urandom(300_000)
    sender = threading.Thread(
        target=frames.send_pieces, args=([b"head", large, b"tail"],), daemon=True
    )
    sender.start()
    reader = Frames(theirs)
    assert bytes(reader.recv()) == b"head" + large + b"tail"
    sender.join(5)
