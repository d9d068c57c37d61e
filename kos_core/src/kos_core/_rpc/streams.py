"""Large reads beside a connection: the bytes of one ``read()`` sent raw on a second socket.

A reply travels as a brine frame: right for calls, costly for 50 MB (the frame is built,
copied out of the socket, and the value sliced out of it again). A served object that
has a ``kos_read_stream(size)`` method (every :class:`~kos_core.fileapi.FileWrapper`
has) answers a large read like this:

1. the client sends ``KOS_STREAM(handle, size)``. The object returns a
   :class:`ReadStream`; if the read turns out small (it ends within :data:`INLINE`
   bytes) the reply carries the bytes, else a one-time token and the length if known;
2. the client opens a second connection to the same address, presents the token in the
   handshake, and receives the bytes raw — into one buffer when the length is known;
3. the client sends ``KOS_STREAM_END(token)``. The reply is the read's outcome: nothing,
   or the exception the object raised while the bytes were sent, reported as any call's.

A token is good for one connection, on the server that issued it, within
:data:`TOKEN_LIFETIME` seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from kos_core._net import wire
from kos_core.errors import CallTimeout, ConnectionLost, ServiceUnavailable

if TYPE_CHECKING:
    import ssl

#: reads that end within this many bytes come back in the reply itself
INLINE = 256 * 1024
#: how much a stream's source is asked for at a time
PIECE = 1024 * 1024
#: seconds a stream token stays good for its connection (and an ended stream is kept for its end)
TOKEN_LIFETIME = 30.0
_ONE_RECV = 256 * 1024 * 1024  # a known length larger than this arrives in parts

#: the reply to a call, as :class:`~kos_core._rpc.ServerSession` encodes it: ``(status, payload)``
Reply = tuple[int, Any]


class ReadStream(NamedTuple):
    """What ``kos_read_stream(size)`` returns: the bytes to send, as ``pieces``.

    ``length`` is how many bytes the pieces add up to, if known in advance (the client
    then receives them into one buffer); ``None`` means until the pieces end.
    """

    length: int | None
    pieces: Iterator[bytes]


class PendingStream:
    """One stream from its opening to its end."""

    def __init__(self, stream: ReadStream, prefix: list[bytes], fail: Callable[..., Reply]):
        self.stream = stream
        self.prefix = prefix
        self._fail = fail
        self.issued = time.monotonic()
        self.connected = False
        self.done = threading.Event()
        #: ``None`` once every byte went out, else the reply that reports the failure
        self.failure: Reply | None = None

    def send(self, sock: socket.socket, timeout: float) -> None:
        """Send every piece on ``sock``; record a failure in :attr:`failure`."""
        length = self.stream.length
        sent = 0
        try:
            set_os_timeouts(sock, timeout)
            if sock.family == socket.AF_UNIX:
                # A piece at a time in the socket: the two ends take turns a few times
                # per MiB instead of a few dozen (the kernel caps it at wmem_max).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)
            for piece in itertools.chain(self.prefix, self.stream.pieces):
                room = len(piece) if length is None else length - sent
                sock.sendall(piece if len(piece) <= room else piece[:room])
                sent += min(len(piece), room)
                if sent == length:
                    break
        except OSError as exc:  # the client went away or stopped reading
            broken = ServiceUnavailable(f"stream broken after {sent} bytes: {exc}")
            self.failure = self._fail(broken)
        except Exception as exc:
            self.failure = self._fail(exc)
        finally:
            self.prefix = []
            self.done.set()


class StreamTable:
    """The streams a server has opened and not yet ended, by token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, PendingStream] = {}

    def open(self, stream: ReadStream, fail: Callable[[BaseException], Reply]) -> tuple[Any, ...]:
        """The reply payload for ``KOS_STREAM``: ``("i", data)`` when the read ends within
        :data:`INLINE` bytes, else ``("s", token, length)``. ``fail`` encodes an
        exception raised while the bytes are sent, as a reply.
        """
        prefix: list[bytes] = []
        if stream.length is None or stream.length <= INLINE:
            taken = 0
            while taken <= INLINE:
                piece = next(stream.pieces, None)
                if piece is None:
                    return ("i", b"".join(prefix))
                prefix.append(piece)
                taken += len(piece)
        import secrets  # the serving side's: a client never loads it

        token = secrets.token_urlsafe(24)
        with self._lock:
            self._sweep()
            self._streams[token] = PendingStream(stream, prefix, fail)
        return ("s", token, stream.length)

    def take(self, token: str) -> PendingStream | None:
        """The stream ``token`` opened, if it is waiting for its connection (once only)."""
        with self._lock:
            self._sweep()
            pending = self._streams.get(token)
            if pending is None or pending.connected:
                return None
            pending.connected = True
            return pending

    def end(self, token: Any, timeout: float) -> Reply | None:
        """For ``KOS_STREAM_END``: the failure of the stream ``token`` opened, or ``None``.

        Raises :class:`LookupError` if no stream was sent with ``token``, and
        :class:`TimeoutError` if it is still being sent after ``timeout`` seconds.
        """
        with self._lock:
            pending = self._streams.pop(token, None) if type(token) is str else None
        if pending is None or not pending.connected:
            raise LookupError("no stream was sent with this token")
        if not pending.done.wait(timeout):
            raise TimeoutError(f"the stream did not end within {timeout:g} s")
        return pending.failure

    def _sweep(self) -> None:
        old = time.monotonic() - TOKEN_LIFETIME
        for token, pending in list(self._streams.items()):
            if pending.issued < old and (not pending.connected or pending.done.is_set()):
                del self._streams[token]


def set_os_timeouts(sock: socket.socket, seconds: float) -> None:
    """Block in the kernel, not in Python's poll loop, but give up after ``seconds``
    without progress (``MSG_WAITALL`` fills one buffer only on a blocking socket).
    """
    sock.settimeout(None)
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def receive(sock: socket.socket, length: int | None, timeout: float, what: str) -> bytes:
    """Every byte the server sends on ``sock`` (``length`` of them, if known).

    Raises :class:`~kos_core.errors.CallTimeout` if nothing arrives for ``timeout``
    seconds, :class:`~kos_core.errors.ConnectionLost` if the connection breaks (both
    with ``what`` as their target).
    """
    set_os_timeouts(sock, timeout)
    try:
        if wire.is_tls(sock):
            return _receive_tls(sock, length)
        parts: list[bytes] = []
        left = length
        while left is None or left > 0:
            want = PIECE if left is None else min(left, _ONE_RECV)
            part = sock.recv(want, socket.MSG_WAITALL)
            if not part:
                break
            parts.append(part)
            if left is not None:
                left -= len(part)
    except OSError as exc:
        if wire.timed_out(exc):
            raise CallTimeout(f"no data for {timeout:g} s", target=what, method="read") from None
        raise ConnectionLost(f"stream broken: {exc}", target=what, method="read") from None
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _receive_tls(sock: ssl.SSLSocket, length: int | None) -> bytes:
    # TLS takes no MSG_WAITALL: fill one buffer record by record when the length is
    # known, else gather pieces until the server closes.
    if length is None:
        parts = []
        while part := sock.recv(PIECE):
            parts.append(part)
        return b"".join(parts)
    buffer = bytearray(length)
    got = 0
    with memoryview(buffer) as view:
        while got < length:
            n = sock.recv_into(view[got:])
            if not n:
                break
            got += n
    return bytes(buffer[:got]) if got != length else bytes(buffer)


def is_inline(reply: Any) -> bool:
    """``reply`` to ``KOS_STREAM`` carries the read's bytes: ``("i", data)``."""
    return (
        type(reply) is tuple
        and len(reply) == 2
        and reply[0] == "i"
        and isinstance(reply[1], (bytes, str))
    )


def is_stream(reply: Any) -> bool:
    """``reply`` to ``KOS_STREAM`` opens a stream: ``("s", token, length or None)``."""
    if type(reply) is not tuple or len(reply) != 3 or reply[0] != "s":
        return False
    _, token, length = reply
    return type(token) is str and (length is None or (type(length) is int and length >= 0))
