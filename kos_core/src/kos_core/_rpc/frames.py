"""The frames of a kos connection on its socket, as rpyc lays them out.

A frame is its payload's length (4 bytes, big-endian), a compression flag (1 byte, always
0: compression costs more than it saves on local sockets), the payload and ``b"\\n"``.
:class:`Frames` reads and writes them without copying large ones more than once, and a
serving side's never holds more than ``max_frame`` bytes of one request unless
``allow(prefix, length)`` accepts a longer frame from its first bytes. A longer one is
read and dropped in small chunks; :meth:`Frames.recv` then returns :data:`OVERSIZED`, the
length (8 bytes) and those first bytes, from which the request is answered with an error
(so the caller gets a clear exception and the connection goes on).

Reads block in the kernel (no ``poll`` per frame): a frame of up to :data:`EXACT` bytes
is read into one buffer of its exact size (``MSG_WAITALL``; TLS, which takes no flags,
record by record), a longer one into a buffer that grows with what arrives. A read
waits at most until its ``deadline`` (``SO_RCVTIMEO``), else :attr:`Frames.patience`
seconds, else for ever. A frame goes out in one ``sendmsg`` of its header, its pieces
(a large value is one, not copied) and the flusher; TLS sockets have no ``sendmsg``, so
small pieces are joined there and large ones sent as they are.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

#: frame header: payload length, compressed flag
HEADER = struct.Struct("!LB")
#: what ends a frame
FLUSHER = b"\n"
#: what :meth:`Frames.recv` returns first for a frame it did not hold in memory
OVERSIZED = b"\xff"
#: frames up to this long are read into a buffer of their announced size at once
EXACT = 4 * 1024 * 1024
_PREFIX = 4096
_RECV_CHUNK = 256 * 1024
_DISCARD_CHUNK = 64 * 1024
_JOIN = 64 * 1024  # pieces shorter than this are joined before a TLS send
_SLACK = 0.01  # seconds a read may wait past its deadline rather than reset SO_RCVTIMEO
_TIMEVAL = struct.Struct("ll")


class Frames:
    """The frames on one connected socket (past the kos handshake)."""

    def __init__(
        self,
        sock: socket.socket,
        max_frame: int | None = None,
        allow: Callable[[bytes, int], bool] | None = None,
    ) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._allow = allow
        self._closed = False
        #: seconds a read with no deadline waits at most (``None``: for ever)
        self.patience: float | None = None
        self._waits: float | None = None  # the socket's SO_RCVTIMEO (None: for ever)
        self._tls = isinstance(sock, ssl.SSLSocket)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the connection broke)."""
        return self._closed

    def close(self) -> None:
        """Shut the socket down (waking a thread waiting on it) and close it."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def fileno(self) -> int:
        """The socket's file descriptor."""
        if self._closed:
            raise EOFError("connection closed")
        return self.sock.fileno()

    def poll(self, timeout: float | None) -> bool:
        """Whether there is something to read within ``timeout`` seconds (bytes TLS has
        already decrypted count, though the socket itself has none to read).
        """
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(None if timeout is None else timeout * 1000))

    def send(self, data: bytes) -> None:
        """Send one frame of ``data``."""
        self.send_pieces([data])

    def send_pieces(self, pieces: Sequence[bytes]) -> None:
        """Send one frame whose payload is ``pieces`` joined (a large piece is not copied)."""
        size = sum(map(len, pieces))
        buffers = [HEADER.pack(size, 0), *pieces, FLUSHER]
        try:
            if self._tls:
                self._send_tls(buffers)
            else:
                _send_all(self.sock, buffers)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None

    def _send_tls(self, buffers: list[bytes]) -> None:
        small: list[bytes] = []
        for piece in buffers:
            if len(piece) < _JOIN:
                small.append(piece)
                continue
            if small:
                self.sock.sendall(b"".join(small))
                small = []
            self.sock.sendall(piece)
        if small:
            self.sock.sendall(b"".join(small))

    def recv(self, deadline: float | None = None) -> bytes:
        """The payload of the next frame (or the marker of one too long to hold).

        Raises :class:`TimeoutError` (and closes) if it is not in by ``deadline`` (a
        ``time.monotonic()`` value), :class:`EOFError` if the connection ends.
        """
        length, compressed = HEADER.unpack(self._read(HEADER.size, deadline))
        if compressed:
            raise EOFError("compressed frames are not accepted")
        if self.max_frame is None or length <= self.max_frame:
            if length <= _RECV_CHUNK:  # small: frame and flusher in one read
                return self._read(length + len(FLUSHER), deadline)[: -len(FLUSHER)]
            frame = self._read(length, deadline)
            self._read(len(FLUSHER), deadline)
            return frame
        prefix = self._read(min(length, _PREFIX), deadline)
        if self._allow is not None and self._allow(prefix, length):
            rest = self._read(length - len(prefix), deadline) if length > len(prefix) else b""
            self._read(len(FLUSHER), deadline)
            return prefix + rest
        left = length - len(prefix) + len(FLUSHER)
        while left > 0:
            left -= len(self._read(min(left, _DISCARD_CHUNK), deadline))
        marker: bytes = OVERSIZED + length.to_bytes(8, "big") + prefix
        return marker

    def _wait_at_most(self, deadline: float | None) -> None:
        """Make the next read give up at ``deadline`` (else after :attr:`patience`)."""
        seconds = self.patience if deadline is None else deadline - time.monotonic()
        waits = self._waits
        if seconds is None:
            if waits is None:
                return
        elif waits is not None and abs(waits - seconds) <= _SLACK:
            return
        elif seconds <= 0:
            self.close()
            raise TimeoutError("no frame before the deadline")
        whole = int(seconds or 0)
        micros = int(((seconds or 0) - whole) * 1_000_000)
        try:
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.pack(whole, micros)
            )
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None
        self._waits = seconds

    def _read(self, count: int, deadline: float | None = None) -> bytes:
        """Exactly ``count`` bytes, or :class:`EOFError` (:class:`TimeoutError` past
        ``deadline``).
        """
        self._wait_at_most(deadline)
        sock = self.sock
        try:
            if self._tls or count > EXACT:
                first = sock.recv(min(count, _RECV_CHUNK))
            else:  # one buffer of the exact size, filled in the kernel
                first = sock.recv(count, socket.MSG_WAITALL)
        except (BlockingIOError, ssl.SSLWantReadError):
            self.close()
            raise TimeoutError("no frame before the deadline") from None
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None
        if len(first) == count:  # the common case: one system call, no copy
            return first
        if not first:
            self.close()
            raise EOFError("connection closed by peer")
        return self._read_rest(first, count, deadline)

    def _read_rest(self, first: bytes, count: int, deadline: float | None) -> bytes:
        # The buffer grows with what arrives, not with what a frame header announces.
        buffer = bytearray(first)
        buffer.extend(bytes(min(len(buffer), count - len(buffer))))
        got = len(first)
        while got < count:
            if got == len(buffer):
                buffer.extend(bytes(min(len(buffer), count - got)))
            self._wait_at_most(deadline)
            try:
                with memoryview(buffer) as view:
                    n = self.sock.recv_into(view[got:], min(len(buffer) - got, _RECV_CHUNK))
            except TimeoutError:  # a socket with a Python-level timeout
                continue
            except (BlockingIOError, ssl.SSLWantReadError):
                self.close()
                raise TimeoutError("the frame did not arrive before the deadline") from None
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not n:
                self.close()
                raise EOFError("connection closed by peer")
            got += n
        return bytes(buffer)


def _send_all(sock: socket.socket, buffers: list[bytes]) -> None:
    """``buffers`` in as few ``sendmsg`` calls as the socket takes them."""
    views: list[bytes | memoryview] = list(buffers)
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = memoryview(views[0])[sent:]
