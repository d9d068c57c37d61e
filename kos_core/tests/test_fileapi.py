"""FileAPI over real sockets: ``FileWrapper`` served by reference, and large reads that
travel inline or as a stream on a second connection (``kos_core._rpc.streams``).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from coretest_util import short_dir, trusted_tls
from kos_core import _rpc
from kos_core._net import wire
from kos_core._rpc import streams
from kos_core.errors import AuthenticationFailed, RemoteError, ServiceUnavailable
from kos_core.fileapi import READ_PIECE, File, FileIOError, FileWrapper
from kos_core.testing import wait_for

TOKEN = "file-token_0123456789"
MIB = 1024 * 1024


class Recording(FileWrapper):
    """A FileWrapper that remembers the size of every read asked of it."""

    def __init__(self, fp: IO[Any]) -> None:
        super().__init__(fp)
        self.sizes: list[int] = []

    def read(self, size: int = -1) -> bytes | str:
        self.sizes.append(size)
        return super().read(size)


class Served:
    """One in-process server whose every client gets the file ``make()`` returns, on
    the Unix socket ``path`` or, with ``tls``, on loopback TCP.
    """

    def __init__(
        self, make: Callable[[], object], path: Path, tls: ssl.SSLContext | None = None
    ) -> None:
        self.files: list[Any] = []

        def authorize(token: str) -> _rpc.ServerSession | None:
            if token != TOKEN:
                return None
            self.files.append(make())
            return _rpc.ServerSession(self.files[-1], File)

        address = wire.Address(host="127.0.0.1") if tls else wire.Address(path=str(path))
        self.server = _rpc.Server(address, authorize, name="files", tls=tls).start()

    def client(self) -> Any:
        return _rpc.object_of_sbh(wire.format_sbh(self.server.address, TOKEN), File)


@pytest.fixture(params=["unix", "tcp+tls"])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[[Callable[[], object]], Served]]:
    """Serve files on a Unix socket, and again over TCP with TLS (streams included)."""
    servers: list[Served] = []
    with short_dir() as directory:
        tls = trusted_tls(directory) if request.param == "tcp+tls" else None

        def start(make: Callable[[], object]) -> Served:
            served = Served(make, directory / f"f{len(servers)}.sock", tls)
            servers.append(served)
            return served

        try:
            yield start
        finally:
            for served in servers:
                served.server.close()


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * MIB + 12345)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


def test_a_large_read_of_a_regular_file_is_streamed_whole(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    served = serve(lambda: Recording(path.open("rb")))
    f = served.client()
    assert f.read(10) == data[:10]
    assert f.read() == data[10:]
    assert f.read() == b""
    # The stream asks the file for 1 MiB pieces; a piece-by-piece read asks 256 KiB.
    sizes = served.files[0].sizes
    assert streams.PIECE in sizes and READ_PIECE not in sizes
    assert served.server.streams._streams == {}  # ended and forgotten


def test_a_sized_large_read_returns_exactly_that_many_bytes(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    f = serve(lambda: FileWrapper(path.open("rb"))).client()
    assert f.read(MIB + 7) == data[: MIB + 7]
    assert f.tell() == MIB + 7  # nothing read past what was asked
    assert f.read(READ_PIECE + 1) == data[MIB + 7 : MIB + 8 + READ_PIECE]
    assert f.read(10 * MIB) == data[MIB + 8 + READ_PIECE :]


def test_a_read_of_unknown_length_is_streamed_until_the_end(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    _, data = data_file
    served = serve(lambda: Recording(io.BytesIO(data)))  # no file number: length unknown
    f = served.client()
    assert f.read() == data
    assert streams.PIECE in served.files[0].sizes
    assert served.files[0].bytes_left() is None


def test_a_small_read_comes_back_in_the_reply_without_a_stream(
    serve: Callable[[Callable[[], object]], Served],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies: list[str] = []
    original = streams.StreamTable.open

    def spy(table: streams.StreamTable, *args: Any) -> Any:
        reply = original(table, *args)
        replies.append(reply[0])
        return reply

    monkeypatch.setattr(streams.StreamTable, "open", spy)
    small = b"tiny body\n" * 1000
    served = serve(lambda: Recording(io.BytesIO(small)))
    f = served.client()
    assert f.read() == small
    assert f.read(-1) == b""
    assert replies == ["i", "i"]  # the bytes came inline: no second connection
    assert served.files[0].sizes[0] == streams.PIECE  # it went through kos_read_stream


def test_a_failure_while_streaming_reaches_the_client_as_its_declared_exception(
    serve: Callable[[Callable[[], object]], Served],
) -> None:
    class Breaks(FileWrapper):
        def read(self, size: int = -1) -> bytes | str:
            if self._fp.tell() >= 2 * MIB:
                raise FileIOError("read: the disk caught fire", 7, "fire")
            return super().read(size)

    f = serve(lambda: Breaks(io.BytesIO(bytes(5 * MIB)))).client()
    with pytest.raises(FileIOError, match="caught fire") as caught:
        f.read()
    assert (caught.value.status, caught.value.reason) == (7, "fire")
    assert f.tell() == 2 * MIB  # the connection goes on


def test_a_file_shorter_than_it_announced_is_an_error_not_short_data(
    serve: Callable[[Callable[[], object]], Served],
) -> None:
    class Overpromises(FileWrapper):
        def bytes_left(self) -> int | None:
            return 3 * MIB

    f = serve(lambda: Overpromises(io.BytesIO(bytes(2 * MIB)))).client()
    with pytest.raises(FileIOError, match="ended 1048576 bytes before its announced end"):
        f.read()


def test_a_text_file_is_read_in_pieces_and_stays_text(
    serve: Callable[[Callable[[], object]], Served],
) -> None:
    text = "a line of text\n" * 60000  # 900 000 characters
    f = serve(lambda: FileWrapper(io.StringIO(text))).client()
    assert f.read() == text


def test_a_file_without_the_stream_hook_is_read_in_pieces(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file

    class Plain:
        """Implements File.read by hand (no FileWrapper, no kos_read_stream)."""

        def __init__(self) -> None:
            self._fp = path.open("rb")
            self.sizes: list[int] = []

        def read(self, size: int = -1) -> bytes:
            self.sizes.append(size)
            return self._fp.read(size)

    served = serve(Plain)
    assert served.client().read() == data
    assert set(served.files[0].sizes) == {READ_PIECE}


def test_a_stream_token_is_good_for_one_connection_only(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    served = serve(lambda: FileWrapper(path.open("rb")))
    f = served.client()
    link = f._kos_link
    spec = File.methods()["read"]
    reply = link._request(_rpc.HANDLE_KOS_STREAM, spec, (f._kos_handle, -1))
    kind, token, length = reply
    assert (kind, length) == ("s", len(data))
    first = link._open_socket(token, stream=True)
    with pytest.raises(AuthenticationFailed):
        link._open_socket(token, stream=True)  # the same token again
    with pytest.raises(AuthenticationFailed):
        link._open_socket(token[:-2] + "xx")  # a guessed token
    assert streams.receive(first, length, 10, "test") == data
    assert link._request(_rpc.HANDLE_KOS_STREAM_END, spec, (token,)) is None
    with pytest.raises(RemoteError, match="no stream was sent with this token"):
        link._request(_rpc.HANDLE_KOS_STREAM_END, spec, (token,))


def test_malformed_stream_requests_are_refused_and_the_connection_goes_on(
    serve: Callable[[Callable[[], object]], Served], data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    f = serve(lambda: FileWrapper(path.open("rb"))).client()
    link = f._kos_link
    spec = File.methods()["read"]
    for args in ((f._kos_handle, "all"), (f._kos_handle, None)):
        with pytest.raises(RemoteError, match="TypeError"):
            link._request(_rpc.HANDLE_KOS_STREAM, spec, args)
    with pytest.raises(RemoteError, match="NoSuchObject"):
        link._request(_rpc.HANDLE_KOS_STREAM, spec, (99, -1))
    for token in ("never-issued", 12, None):
        with pytest.raises(RemoteError, match="no stream was sent"):
            link._request(_rpc.HANDLE_KOS_STREAM_END, spec, (token,))
    assert f.read() == data


def test_a_client_that_stops_reading_a_stream_does_not_hold_the_server(
    serve: Callable[[Callable[[], object]], Served],
) -> None:
    served = serve(lambda: FileWrapper(io.BytesIO(bytes(40 * MIB))))
    f = served.client()
    link = f._kos_link
    spec = File.methods()["read"]
    _, token, _ = link._request(_rpc.HANDLE_KOS_STREAM, spec, (f._kos_handle, -1))
    sock = link._open_socket(token, stream=True)
    sock.recv(1000)
    pending = next(iter(served.server.streams._streams.values()))
    sock.close()  # the client hangs up in the middle
    wait_for(pending.done.is_set, 10, "the server to end the stream")
    assert pending.failure is not None
    assert "stream broken" in pending.failure[1][1]
    assert f.read(4) == b"\0" * 4  # the file and its connection go on


def test_closing_the_server_ends_a_stream_in_progress(
    serve: Callable[[Callable[[], object]], Served],
) -> None:
    served = serve(lambda: FileWrapper(io.BytesIO(bytes(40 * MIB))))
    f = served.client()
    spec = File.methods()["read"]
    _, token, _ = f._kos_link._request(_rpc.HANDLE_KOS_STREAM, spec, (f._kos_handle, -1))
    sock = f._kos_link._open_socket(token, stream=True)
    sock.recv(1000)
    pending = next(iter(served.server.streams._streams.values()))
    served.server.close()
    wait_for(pending.done.is_set, 10, "the stream to end with its server")
    assert pending.failure is not None  # the stream was cut, not completed
    assert "stream broken" in pending.failure[1][1]
    received = 0
    with contextlib.suppress(ConnectionResetError), sock:
        sock.settimeout(10)
        while chunk := sock.recv(1 << 16):
            received += len(chunk)
    assert received < 40 * MIB  # the client sees the end before the last byte


def test_receive_reads_a_known_length_or_until_the_end() -> None:
    data = os.urandom(3 * MIB)
    for length in (len(data), None):
        ours, theirs = socket.socketpair()
        sender = threading.Thread(target=lambda s=theirs: (s.sendall(data), s.close()))
        sender.start()
        assert streams.receive(ours, length, 10, "test") == data
        sender.join(10)
        assert ours.fileno() == -1  # receive closes its socket


def test_receive_returns_short_data_when_the_sender_stops_early() -> None:
    ours, theirs = socket.socketpair()
    theirs.sendall(b"12345")
    theirs.close()
    assert streams.receive(ours, 10, 10, "test") == b"12345"


def test_receive_gives_up_when_nothing_arrives() -> None:
    ours, theirs = socket.socketpair()
    with contextlib.closing(theirs), pytest.raises(ServiceUnavailable, match=r"no data for 0\.2 s"):
        streams.receive(ours, 10, 0.2, "test")


def test_reading_50_mb_takes_a_constant_number_of_requests(
    serve: Callable[[Callable[[], object]], Served],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = {"call": 0, "stream": 0, "stream_end": 0}
    answers = {"call": "dispatch", "stream": "open_stream", "stream_end": "end_stream"}
    for kind, name in answers.items():
        original = getattr(_rpc.ServerSession, name)

        def counted(session: Any, *args: Any, _kind: str = kind, _original: Any = original) -> Any:
            counts[_kind] += 1
            return _original(session, *args)

        monkeypatch.setattr(_rpc.ServerSession, name, counted)
    data = os.urandom(50 * 1000 * 1000)
    path = tmp_path / "50mb.bin"
    path.write_bytes(data)
    for make in (lambda: FileWrapper(path.open("rb")), lambda: FileWrapper(io.BytesIO(data))):
        counts.update(call=0, stream=0, stream_end=0)
        assert serve(make).client().read() == data
        assert counts == {"call": 0, "stream": 1, "stream_end": 1}
