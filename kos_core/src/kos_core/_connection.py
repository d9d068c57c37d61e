"""The connection layer of kos over rpyc: the one module that touches rpyc's internals.

rpyc gives us framing, request/reply matching, threading and brine serialisation.
:class:`KosConnection` keeps a request table that holds only what kos needs — ping,
close, *call a declared method*, *release a reference*, and the two steps of a large
read — so rpyc's attribute access, netrefs, pickling and code execution are not
reachable from the wire at all. Frame compression is off (it costs more than it saves
on local sockets); :class:`KosChannel` never holds more of one request than its
session accepts.

Reply statuses: ``0`` result, ``1`` a declared exception ``(wire_name, args)``,
``2`` an undeclared failure ``(kind, message)``.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.stream import SocketStream

if TYPE_CHECKING:
    from ._session import Session

log = logging.getLogger("kos.rpc")

HANDLE_KOS_CALL = 64
HANDLE_KOS_RELEASE = 65
HANDLE_KOS_STREAM = 66
HANDLE_KOS_STREAM_END = 67
OK, DECLARED, FAULT = 0, 1, 2
#: The largest request a service accepts unless it says otherwise (``kos_max_request``).
DEFAULT_MAX_REQUEST = int(os.environ.get("KOS_MAX_REQUEST", str(64 * 1024 * 1024)))
_OVERSIZED = b"\xff"  # marks a frame the channel refused to hold in memory
_PREFIX = 4096
_RECV_CHUNK = 256 * 1024
_REQUEST = brine.I1.pack(consts.MSG_REQUEST)
_MAX_WORKERS = 4
_DISCARD_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RpcConfig:
    """Tuning of kos connections (rpyc's configuration dict, typed and closed)."""

    call_timeout: float = float(os.environ.get("KOS_CALL_TIMEOUT", "30"))
    connect_timeout: float = 5.0

    def rpyc(self) -> dict[str, Any]:
        """The rpyc protocol configuration this stands for."""
        return {
            "allow_pickle": False,
            "allow_public_attrs": False,
            "allow_all_attrs": False,
            "allow_setattr": False,
            "allow_delattr": False,
            "import_custom_exceptions": False,
            "instantiate_custom_exceptions": False,
            "include_local_traceback": False,
            "include_local_version": False,
            "log_exceptions": False,
            "close_catchall": True,
            "logger": None,
            "sync_request_timeout": self.call_timeout,
        }


DEFAULT_CONFIG = RpcConfig()


class KosStream(SocketStream):  # type: ignore[misc]
    """rpyc's socket stream without its quadratic copying of large writes and reads."""

    def read(self, count: int) -> bytes:
        try:
            first: bytes = self.sock.recv(min(count, _RECV_CHUNK))
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None
        if len(first) == count:  # the common case: one system call, no copy
            return first
        if not first:
            self.close()
            raise EOFError("connection closed by peer")
        # The buffer grows with what arrives, not with what a frame header announces.
        buffer = bytearray(first)
        buffer.extend(bytes(min(len(buffer), count - len(buffer))))
        got = len(first)
        while got < count:
            if got == len(buffer):
                buffer.extend(bytes(min(len(buffer), count - got)))
            try:
                with memoryview(buffer) as view:
                    n = self.sock.recv_into(view[got:], min(len(buffer) - got, _RECV_CHUNK))
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not n:
                self.close()
                raise EOFError("connection closed by peer")
            got += n
        return bytes(buffer)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


class KosChannel(Channel):  # type: ignore[misc]
    """An rpyc channel that never holds more than ``max_frame`` bytes of one request.

    A longer frame is read and dropped in small chunks; ``recv`` then returns a marker
    with the frame's first bytes, from which the connection answers the request with
    an error (so the caller gets a clear exception and the connection goes on).
    """

    def __init__(self, stream: SocketStream, max_frame: int | None = None) -> None:
        super().__init__(stream, compress=False)
        self.max_frame = max_frame

    def send(self, data: bytes) -> None:
        header = self.FRAME_HEADER.pack(len(data), 0)
        if len(data) <= _RECV_CHUNK:
            self.stream.write(header + data + self.FLUSHER)  # one system call
        else:  # no copy of a large frame
            self.stream.write(header)
            self.stream.write(memoryview(data))
            self.stream.write(self.FLUSHER)

    def recv(self) -> bytes:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if compressed:
            raise EOFError("compressed frames are not accepted")
        if self.max_frame is None or length <= self.max_frame:
            if length <= _RECV_CHUNK:  # small: frame and flusher in one read
                data: bytes = self.stream.read(length + len(self.FLUSHER))
                return data[: -len(self.FLUSHER)]
            frame: bytes = self.stream.read(length)
            self.stream.read(len(self.FLUSHER))
            return frame
        prefix = self.stream.read(min(length, _PREFIX))
        left = length - len(prefix) + len(self.FLUSHER)
        while left > 0:
            left -= len(self.stream.read(min(left, _DISCARD_CHUNK)))
        marker: bytes = _OVERSIZED + length.to_bytes(8, "big") + bytes(prefix)
        return marker


def _peek_call(prefix: bytes) -> tuple[int, int, Any, Any] | None:
    """``(seq, handler, handle, method)`` from the start of a request frame, if readable."""
    stream = io.BytesIO(prefix)
    try:
        if stream.read(1) != brine.I1.pack(consts.MSG_REQUEST) or stream.read(1) != brine.TAG_TUP2:
            return None
        seq = brine._load(stream)
        if stream.read(1) != brine.TAG_TUP2:
            return None
        handler = brine._load(stream)
        if handler != HANDLE_KOS_CALL or stream.read(1) != brine.TAG_TUP2:
            return int(seq), int(handler), None, None
        brine._load(stream)  # the boxing label
        if stream.read(1) != brine.TAG_TUP3:
            return int(seq), int(handler), None, None
        return int(seq), int(handler), brine._load(stream), brine._load(stream)
    except Exception:
        return None


class KosConnection(Connection):  # type: ignore[misc]
    """An rpyc connection that serves only kos requests."""

    _workers: ThreadPoolExecutor | None = None

    def __init__(self, root: Any, channel: KosChannel, config: dict[str, Any]) -> None:
        super().__init__(root, channel, config)
        concurrent = getattr(root, "concurrent", False) is True
        self._concurrent = concurrent and not self._bind_threads

    def _dispatch(self, data: bytes) -> None:
        if self._concurrent and data[:1] == _REQUEST:
            # rpyc's own request dispatch, except that the call runs on a worker thread.
            self._recvlock.release()
            seq, args = brine.load(data[1:])
            if self._workers is None:
                self._workers = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="kos-call")
            self._workers.submit(self._dispatch_request, seq, args)
            return
        if not data.startswith(_OVERSIZED):
            super()._dispatch(data)
            return
        size = int.from_bytes(data[1:9], "big")
        call = _peek_call(data[9:])
        self._recvlock.release()  # as rpyc's own dispatch does before handling a request
        if call is None:
            raise EOFError(f"refused an unreadable request of {size} bytes")
        seq, _handler, handle, method = call
        session = cast("Session", self._local_root)
        reply = session.too_large(handle, method, size)
        self._send(consts.MSG_REPLY, seq, self._box(reply))

    @classmethod
    def _request_handlers(cls) -> dict[int, Callable[..., Any]]:
        return {
            consts.HANDLE_PING: cls._handle_ping,
            consts.HANDLE_CLOSE: cls._handle_close,
            HANDLE_KOS_CALL: cls._handle_kos_call,
            HANDLE_KOS_RELEASE: cls._handle_kos_release,
            HANDLE_KOS_STREAM: cls._handle_kos_stream,
            HANDLE_KOS_STREAM_END: cls._handle_kos_stream_end,
        }

    def _handle_kos_call(self, handle: int, method: str, args: tuple[Any, ...]) -> Any:
        session = cast("Session", self._local_root)
        _current.session = session
        try:
            return session.dispatch(handle, method, args)
        finally:
            _current.session = None

    def _cleanup(self, _anyway: bool = True) -> None:
        super()._cleanup(_anyway)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    def _dispatch_request(self, seq: int, raw_args: Any) -> None:
        super()._dispatch_request(seq, raw_args)
        if getattr(self._local_root, "ending", False) is True:
            # The reply is sent; now hang up (a servant asked for it, e.g. Close()).
            self._channel.close()

    def _handle_kos_release(self, handle: int) -> None:
        cast("Session", self._local_root).release(handle)

    def _handle_kos_stream(self, handle: int, size: int) -> Any:
        return cast("Session", self._local_root).open_stream(handle, size)

    def _handle_kos_stream_end(self, token: str) -> Any:
        timeout = float(self._config["sync_request_timeout"])
        return cast("Session", self._local_root).end_stream(token, timeout)


_current = threading.local()


def current_session() -> Session | None:
    """The session whose call the current thread is serving, if any."""
    return cast("Session | None", getattr(_current, "session", None))
