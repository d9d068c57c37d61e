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
    from kos_core._rpc.session import ServerSession

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
_REPLY = brine.I1.pack(consts.MSG_REPLY)
_MAX_WORKERS = 4
_MAX_QUEUED = 64  # calls of one concurrent connection waiting for a worker
_MAX_BOX_DEPTH = 32
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
            "bind_threads": False,
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

    def poll(self, timeout: Any) -> bool:
        """Whether there is something to read within ``timeout`` (bytes TLS has already
        decrypted count, though the socket itself has none to read).
        """
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        return bool(super().poll(timeout))

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


class KosChannel(Channel):  # type: ignore[misc]
    """An rpyc channel that never holds more than ``max_frame`` bytes of one request,
    or what ``cap_for(handle, method)`` allows the call a longer frame starts with.

    A longer frame is read and dropped in small chunks; ``recv`` then returns a marker
    with the frame's first bytes, from which the connection answers the request with
    an error (so the caller gets a clear exception and the connection goes on).
    """

    def __init__(
        self,
        stream: SocketStream,
        max_frame: int | None = None,
        cap_for: Callable[[Any, Any], int] | None = None,
    ) -> None:
        super().__init__(stream, compress=False)
        self.max_frame = max_frame
        self._cap_for = cap_for

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
        call = _peek_call(prefix) if self._cap_for is not None else None
        if call is not None and self._cap_for is not None and length <= self._cap_for(*call[2:]):
            rest = self.stream.read(length - len(prefix)) if length > len(prefix) else b""
            self.stream.read(len(self.FLUSHER))
            return bytes(prefix) + rest
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


class _Refused(EOFError):
    """A message no kos peer sends: its connection ends before rpyc handles it."""


def _unboxed(boxed: Any, depth: int = 0) -> Any:
    """The value in an rpyc box of plain values (a netref's box, or anything else,
    refuses the message).
    """
    if type(boxed) is tuple and len(boxed) == 2:
        label, value = boxed
        if label == consts.LABEL_VALUE:  # brine made it: plain values only
            return value
        if label == consts.LABEL_TUPLE and type(value) is tuple and depth < _MAX_BOX_DEPTH:
            return tuple(_unboxed(item, depth + 1) for item in value)
        if label in (consts.LABEL_LOCAL_REF, consts.LABEL_REMOTE_REF):
            raise _Refused("a value boxed by reference")
    raise _Refused("a malformed box")


class KosConnection(Connection):  # type: ignore[misc]
    """An rpyc connection that carries only kos messages.

    Serving (``serving``), it answers kos requests; as a client it answers only
    rpyc's ping and close. It accepts replies only to requests it sent and only of
    plain values. Any other message — an exception message, a value boxed by
    reference, an unknown request — ends the connection before rpyc handles it, and
    it never sends an exception message itself: rpyc's exception and netref machinery
    (which caches a class per name it is sent, process-wide) is never reached.
    """

    _workers: ThreadPoolExecutor | None = None

    def __init__(
        self, root: Any, channel: KosChannel, config: dict[str, Any], *, serving: bool = True
    ) -> None:
        super().__init__(root, channel, config)
        self._served = _SERVED if serving else _ANSWERED
        self._concurrent = getattr(root, "concurrent", False) is True
        self._queued = threading.BoundedSemaphore(_MAX_QUEUED)

    def serve(self, timeout: Any = 1, wait_for_lock: bool = True, waiting: Any = None) -> bool:
        """Serve one message (rpyc's ``serve``); a refused one ends the connection."""
        try:
            served: bool = super().serve(timeout, wait_for_lock, waiting or (lambda: True))
        except _Refused as exc:
            log.info("closed a connection: %s", exc)
            self._cleanup(_anyway=False)
            raise
        return served

    def _dispatch(self, data: bytes) -> None:
        # rpyc's recvlock is held on entry; released before a request is served and
        # after a reply is handed over, as rpyc's own dispatch does.
        kind = data[:1]
        if kind == _REPLY:
            try:
                callback, value = self._reply(data)
            except _Refused:
                self._recvlock.release()
                raise
            callback(False, value)
            self._recvlock.release()
            return
        self._recvlock.release()
        if kind == _REQUEST:
            seq, handler, args = self._request(data)
            if not self._concurrent:
                self._serve_request(seq, handler, args)
                return
            # The call runs on a worker thread; at most _MAX_QUEUED wait for one.
            while not self._queued.acquire(timeout=1.0):
                if self.closed:
                    raise EOFError("connection closed")
            if self._workers is None:
                self._workers = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="kos-call")
            self._workers.submit(self._serve_queued, seq, handler, args)
        elif kind == _OVERSIZED and self._served is _SERVED:
            self._refuse_oversized(data)
        else:
            raise _Refused(f"an unsolicited rpyc message of type {data[:1].hex()}")

    def _request(self, data: bytes) -> tuple[int, Callable[..., Any], tuple[Any, ...]]:
        try:
            seq, (handler, boxed) = brine.load(data[1:])
        except Exception:
            raise _Refused("an unreadable request") from None
        name = self._served.get(handler) if type(handler) is int else None
        if name is None:
            raise _Refused(f"rpyc request {handler!r}, which kos does not serve")
        args = _unboxed(boxed)
        if type(seq) is not int or type(args) is not tuple:
            raise _Refused("a malformed request")
        return seq, getattr(self, name), args

    def _reply(self, data: bytes) -> tuple[Callable[[bool, Any], None], Any]:
        try:
            seq, boxed = brine.load(data[1:])
        except Exception:
            raise _Refused("an unreadable reply") from None
        value = _unboxed(boxed)
        callback = self._request_callbacks.pop(seq, None) if type(seq) is int else None
        if callback is None:
            raise _Refused("a reply to no request of ours")
        return callback, value

    def _serve_request(self, seq: int, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = handler(*args)
        except EOFError:
            raise
        except Exception as exc:  # arguments a kos peer never sends
            raise _Refused(f"a malformed request ({type(exc).__name__})") from None
        if not brine.dumpable(result):
            result = (FAULT, ("TypeError", "the reply is not a plain value"))
        self._send(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, result))
        if getattr(self._local_root, "ending", False) is True:
            # The reply is sent; now hang up (a servant asked for it, e.g. Close()).
            self._channel.close()

    def _serve_queued(self, seq: int, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._serve_request(seq, handler, args)
        except Exception as exc:  # the reading thread sees the connection end
            log.info("closed a connection: %s", exc)
            self._channel.close()
        finally:
            self._queued.release()

    def _refuse_oversized(self, data: bytes) -> None:
        size = int.from_bytes(data[1:9], "big")
        call = _peek_call(data[9:])
        if call is None:
            raise _Refused(f"an unreadable request of {size} bytes")
        seq, _handler, handle, method = call
        session = cast("ServerSession", self._local_root)
        reply = session.too_large(handle, method, size)
        self._send(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, reply))

    @classmethod
    def _request_handlers(cls) -> dict[int, Callable[..., Any]]:
        return {handler: getattr(cls, name) for handler, name in _SERVED.items()}

    def _cleanup(self, _anyway: bool = True) -> None:
        super()._cleanup(_anyway)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    def _handle_kos_call(self, handle: int, method: str, args: tuple[Any, ...]) -> Any:
        session = cast("ServerSession", self._local_root)
        _current.session = session
        try:
            return session.dispatch(handle, method, args)
        finally:
            _current.session = None

    def _handle_kos_release(self, handle: int) -> None:
        cast("ServerSession", self._local_root).release(handle)

    def _handle_kos_stream(self, handle: int, size: int) -> Any:
        return cast("ServerSession", self._local_root).open_stream(handle, size)

    def _handle_kos_stream_end(self, token: str) -> Any:
        timeout = float(self._config["sync_request_timeout"])
        return cast("ServerSession", self._local_root).end_stream(token, timeout)


#: the requests a serving connection answers (by method name), and those a client's does
_SERVED: dict[int, str] = {
    consts.HANDLE_PING: "_handle_ping",
    consts.HANDLE_CLOSE: "_handle_close",
    HANDLE_KOS_CALL: "_handle_kos_call",
    HANDLE_KOS_RELEASE: "_handle_kos_release",
    HANDLE_KOS_STREAM: "_handle_kos_stream",
    HANDLE_KOS_STREAM_END: "_handle_kos_stream_end",
}
_ANSWERED = {h: _SERVED[h] for h in (consts.HANDLE_PING, consts.HANDLE_CLOSE)}


_current = threading.local()


def current_session() -> ServerSession | None:
    """The session whose call the current thread is serving, if any."""
    return cast("ServerSession | None", getattr(_current, "session", None))
