"""``FileWrapper`` over a real connection, every method and every way the wrapped file
fails; and the edges of large reads: a stream token used too late, and a stream that
delivers fewer bytes than it announced.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coretest_util import TOKEN, echo_server
from kos_core import _rpc
from kos_core._net import wire
from kos_core._rpc import streams
from kos_core.errors import AuthenticationFailed, ConnectionLost, RemoteError
from kos_core.fileapi import File, FileIOError, FileWrapper

MIB = 1024 * 1024
Serve = Callable[[object], Any]
#: the server of each proxy ``serve`` made
SERVERS: dict[int, _rpc.Server] = {}


@pytest.fixture(params=["unix", "tcp+tls"])
def serve(request: pytest.FixtureRequest) -> Iterator[Serve]:
    """``serve(obj)``: a client proxy of ``obj`` served as ``FileAPI.File`` by a real
    server (a Unix socket, or loopback TCP with TLS); the server is closed after the test.
    """
    with contextlib.ExitStack() as stack:

        def start(obj: object) -> Any:
            def authorize(token: str) -> _rpc.ServerSession | None:
                return _rpc.ServerSession(obj, File) if token == TOKEN else None

            address = wire.Address(host="127.0.0.1") if request.param == "tcp+tls" else None
            served = stack.enter_context(echo_server(address, authorize))
            proxy = _rpc.object_of_sbh(wire.format_sbh(served.address, TOKEN), File)
            stack.callback(_rpc.connection_of(proxy).close)  # type: ignore[union-attr]
            SERVERS[id(proxy)] = served.server
            stack.callback(SERVERS.pop, id(proxy))
            return proxy

        yield start


# ---------------------------------------------------------------------------- FileWrapper


def test_write_seek_readline_readlines_tell_flush_close(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "notes.bin"
    fp = path.open("w+b")
    f = serve(FileWrapper(fp))
    assert f.write(b"first\n") == 6
    assert f.writelines([b"second\n", b"third\n"]) is None
    f.flush()
    assert path.read_bytes() == b"first\nsecond\nthird\n"  # flushed to the disk
    assert f.tell() == 19
    assert f.seek(0) == 0
    assert f.readline() == b"first\n"
    assert f.readline(3) == b"sec"
    assert f.readlines() == [b"ond\n", b"third\n"]
    assert f.readline() == b""  # end of file
    assert f.seek(-6, os.SEEK_END) == 13
    assert f.read() == b"third\n"
    assert f.seek(-3, os.SEEK_CUR) == 16
    with pytest.raises(FileIOError, match=r"^seek: \[Errno 22\] Invalid argument$"):
        f.seek(-1)  # an OSError of the file
    f.close()
    assert fp.closed
    with pytest.raises(FileIOError, match=r"^read: read of closed file$"):
        f.read(1)


def test_a_text_file_travels_as_text(serve: Serve) -> None:
    fp = io.StringIO()
    f = serve(FileWrapper(fp))
    assert f.write("grüße\n") == 6
    assert f.writelines(["zwei\n"]) is None
    assert f.seek(0) == 0
    assert f.readlines() == ["grüße\n", "zwei\n"]
    assert fp.getvalue() == "grüße\nzwei\n"


def test_an_oserror_of_the_wrapped_file_is_a_file_io_error(serve: Serve) -> None:
    full = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 (closed through the proxy)
    f = serve(FileWrapper(full))
    with pytest.raises(FileIOError) as caught:
        f.write(b"no room")
    assert str(caught.value) == "write: [Errno 28] No space left on device"
    assert (caught.value.status, caught.value.reason) == (0, "")
    f.close()


def test_an_operation_the_file_does_not_support_is_a_file_io_error(
    serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "read-only"
    path.write_bytes(b"data")
    f = serve(FileWrapper(path.open("rb")))
    with pytest.raises(FileIOError, match=r"^write: write"):
        f.write(b"more")  # io.UnsupportedOperation
    with pytest.raises(FileIOError, match=r"^open\('w'\) is not supported by this file$"):
        f.open("w")
    assert f.read() == b"data"  # the file goes on after each refusal


def test_a_subclass_failure_keeps_its_status_and_an_unguarded_oserror_is_undeclared(
    serve: Serve,
) -> None:
    class Remote(FileWrapper):
        def readline(self, size: int = -1) -> bytes | str:
            raise FileIOError("readline: gone", 410, "GONE")

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    f = serve(Remote(io.BytesIO(b"x")))
    with pytest.raises(FileIOError) as caught:
        f.readline()
    assert (str(caught.value), caught.value.status, caught.value.reason) == (
        "readline: gone",
        410,
        "GONE",
    )
    with pytest.raises(RemoteError, match="OSError"):
        f.flush()  # not through _guard: an undeclared failure, reported as such


def test_a_raw_write_that_returns_none_counts_what_it_was_given() -> None:
    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> None:  # type: ignore[override]
            return None  # a non-blocking raw file that could not write now

    assert FileWrapper(Sink()).write(b"12345") == 5


# ---------------------------------------------------------------------------- streams


def stream_token(f: Any) -> tuple[str, int | None]:
    """Ask for a stream of all of ``f`` as a large read does; its token and length."""
    reply = f._kos_link._request(
        _rpc.HANDLE_KOS_STREAM, File.methods()["read"], (f._kos_handle, -1)
    )
    kind, token, length = reply
    assert kind == "s", reply
    return token, length


def test_a_stream_token_not_used_in_time_is_refused(serve: Serve, tmp_path: Path) -> None:
    data = os.urandom(MIB + 5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    f = serve(FileWrapper(path.open("rb")))
    table = SERVERS[id(f)].streams
    link = f._kos_link

    late, _ = stream_token(f)
    table._streams[late].issued -= streams.TOKEN_LIFETIME + 1  # as if issued long ago
    with pytest.raises(AuthenticationFailed):
        link._open_socket(late, stream=True)
    assert late not in table._streams  # swept: it can never be used
    with pytest.raises(RemoteError, match="no stream was sent with this token"):
        link._request(_rpc.HANDLE_KOS_STREAM_END, File.methods()["read"], (late,))

    in_time, length = stream_token(f)
    table._streams[in_time].issued -= streams.TOKEN_LIFETIME - 5  # old, but not too old
    assert streams.receive(link._open_socket(in_time, stream=True), length, 10, "test") == data
    assert link._request(_rpc.HANDLE_KOS_STREAM_END, File.methods()["read"], (in_time,)) is None

    assert f.seek(0) == 0
    assert f.read() == data  # and reads go on as usual


class Overpromising(FileWrapper):
    """Announces three MiB and sends one: a stream that under-delivers without an error."""

    def kos_read_stream(self, size: int) -> streams.ReadStream | None:
        return streams.ReadStream(3 * MIB, iter([bytes(MIB)]))


def test_a_stream_shorter_than_announced_is_an_error_not_a_hang(serve: Serve) -> None:
    f = serve(Overpromising(io.BytesIO(b"next")))
    with pytest.raises(ConnectionLost) as caught:  # the client sees it, not the server
        f.read()
    assert str(caught.value).endswith(f"the stream ended after {MIB} of {3 * MIB} bytes")
    assert caught.value.method == "read"
    assert SERVERS[id(f)].streams._streams == {}  # ended and forgotten
    assert f.read(4) == b"next"  # the connection goes on


def _wmem_max() -> int:
    try:
        with open("/proc/sys/net/core/wmem_max") as f:
            return int(f.read())
    except OSError:
        return streams.PIECE


def test_a_unix_stream_gets_a_send_buffer_of_a_piece() -> None:
    """With the Unix socket's default buffer (about 200 KiB) the two ends take turns
    dozens of times per MiB; a piece-sized one cuts that (the kernel caps it at wmem_max).
    """
    ours, theirs = socket.socketpair()
    default = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    data = os.urandom(3 * MIB)
    pending = streams.PendingStream(streams.ReadStream(len(data), iter([data])), [], repr)
    with ours, theirs:
        sender = threading.Thread(target=pending.send, args=(ours, 5.0))
        sender.start()
        received = streams.receive(theirs, len(data), 5.0, "test")
        sender.join(5)
        size = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert received == data and pending.failure is None
    # Linux doubles what it is given, up to twice wmem_max
    assert size == 2 * min(streams.PIECE, _wmem_max()) >= default
