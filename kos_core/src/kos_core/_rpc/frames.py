"""The frames of a kos connection on its socket, as rpyc lays them out.

A frame is its payload's length (4 bytes, big-endian), a compression flag (1 byte, always
0: compression costs more than it saves on local sockets), the payload and ``b"\\n"``.
:class:`Frames` reads and writes them without copying large ones more than once, and a
serving side's never holds more than ``max_frame`` bytes of one request unless
``allow(prefix, length)`` accepts a longer frame from its first bytes. A longer one is
read and dropped in small chunks; :meth:`Frames.recv` then returns :data:`OVERSIZED`, the
length (8 bytes) and those first bytes, from which the request is answered with an error
(so the caller gets a clear exception and the connection goes on).

Reads block in the kernel (no ``poll`` per frame) and go into one receive buffer per
connection, reused from frame to frame: a read takes whatever has arrived, so a small
frame (header, payload and flusher) usually takes one system call, and the rest of a
long one is read straight into place (``MSG_WAITALL``; TLS, which takes no flags,
record by record). The buffer grows with what arrives (doubling), never with what a
header announces, and one longer than :data:`EXACT` is given back after its frame. A
read waits at most until its ``deadline`` (``SO_RCVTIMEO``), else
:attr:`Frames.patience` seconds, else for ever.

A frame goes out in one ``sendmsg`` of its header, its pieces (a large value is one, not
copied) and the flusher; TLS sockets have no ``sendmsg``, so small pieces are joined
there and large ones sent as they are. Threads send one frame at a time; one that finds
another sending leaves its frame for that one to send (as rpyc does: a finalizer may
send from a thread that is sending already).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

from kos_core._net import wire

#: frame header: payload length, compressed flag
HEADER = struct.Struct("!LB")
#: what ends a frame
FLUSHER = b"\n"
#: what :meth:`Frames.recv` returns first for a frame it did not hold in memory
OVERSIZED = b"\xff"
#: a receive buffer longer than this is given back once its frame is taken
EXACT = 4 * 1024 * 1024
_PREFIX = 4096
_AHEAD = 64 * 1024  # a receive buffer's first length; reads take up to this much
_JOIN = 64 * 1024  # pieces shorter than this are joined before a TLS send
_SLACK = 0.01  # seconds a read may wait past its deadline rather than reset SO_RCVTIMEO
_TIMEVAL = struct.Struct("ll")
_FRAMING = HEADER.size + len(FLUSHER)  # bytes of a frame besides its payload


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
        self._tls = wire.is_tls(sock)
        self._sending = threading.Lock()
        self._unsent: list[Sequence[bytes]] = []
        # Received bytes: _buffer[_start:_end] is not yet taken by recv.
        self._buffer = bytearray(_AHEAD)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0

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

    def send(self, data: bytes) -> None:
        """Send one frame of ``data``."""
        self.send_pieces([data])

    def send_pieces(self, pieces: Sequence[bytes]) -> None:
        """Send one frame whose payload is ``pieces`` joined (a large piece is not copied),
        now or, if another thread is sending, by that thread once its own frame is out.
        """
        unsent = self._unsent
        if self._sending.acquire(False):  # nobody else sends: this frame goes first
            try:
                self._send_frame(pieces)
            finally:
                self._sending.release()
        else:
            unsent.append(pieces)
        while unsent:  # frames left by threads that found this one sending
            if not self._sending.acquire(False):
                return
            try:
                if unsent:
                    self._send_frame(unsent.pop(0))
            finally:
                self._sending.release()

    def _send_frame(self, pieces: Sequence[bytes]) -> None:
        size = sum(map(len, pieces))
        buffers = [HEADER.pack(size, 0), *pieces, FLUSHER]
        try:
            if self._tls:
                self._send_tls(buffers)
            else:
                _send_all(self.sock, buffers, size + _FRAMING)
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

    def recv(self, deadline: float | None = None) -> memoryview:
        """The payload of the next frame (or the marker of one too long to hold).

        The payload is a view of this connection's receive buffer, valid until the next
        ``recv``: decode it before reading on. Raises :class:`TimeoutError` (and closes)
        if it is not in by ``deadline`` (a ``time.monotonic()`` value), :class:`EOFError`
        if the connection ends.
        """
        if self._start == self._end:  # nothing unread: start at the front again
            self._start = self._end = 0
            if len(self._buffer) > EXACT:  # a long frame is done with: give its buffer back
                self._buffer = bytearray(_AHEAD)
                self._view = memoryview(self._buffer)
        self._fill(HEADER.size, deadline)
        length, compressed = HEADER.unpack_from(self._buffer, self._start)
        if compressed:
            raise EOFError("compressed frames are not accepted")
        if self.max_frame is not None and length > self.max_frame:
            head = min(length, _PREFIX)
            self._fill(HEADER.size + head, deadline)
            first = self._start + HEADER.size
            prefix = bytes(self._buffer[first : first + head])
            if self._allow is None or not self._allow(prefix, length):
                self._drop(HEADER.size + length + len(FLUSHER), deadline)
                return memoryview(OVERSIZED + length.to_bytes(8, "big") + prefix)
        size = HEADER.size + length + len(FLUSHER)
        self._fill(size, deadline)
        first = self._start + HEADER.size
        self._start += size
        return self._view[first : first + length]

    def _fill(self, count: int, deadline: float | None) -> None:
        """Have ``count`` bytes from :attr:`_start` in the buffer: read what is missing
        (and whatever else is there to read, up to the buffer's end).
        """
        while (have := self._end - self._start) < count:
            if self._start + count > len(self._buffer):
                self._make_room(count)
            self._wait_at_most(deadline)
            room = len(self._buffer) - self._end
            wanted = count - have
            try:
                if self._tls or wanted <= _AHEAD:  # take what is there, up to the room
                    n = self.sock.recv_into(self._view[self._end :], room)
                else:  # a long frame's rest, in the kernel, in one call
                    n = self.sock.recv_into(
                        self._view[self._end :], min(wanted, room), socket.MSG_WAITALL
                    )
            except TimeoutError:  # a socket with a Python-level timeout
                continue
            except OSError as exc:
                self.close()
                if wire.timed_out(exc):
                    raise TimeoutError("the frame did not arrive before the deadline") from None
                raise EOFError(exc) from None
            if not n:
                self.close()
                raise EOFError("connection closed by peer")
            self._end += n

    def _make_room(self, count: int) -> None:
        """Room for ``count`` bytes from the first unread one: the unread bytes moved to
        the front, or a buffer twice as long (it grows with what arrives, not with what
        a frame header announces).
        """
        have = self._end - self._start
        if count <= len(self._buffer):
            self._buffer[:have] = bytes(self._view[self._start : self._end])
        else:
            buffer = bytearray(min(count, 2 * len(self._buffer)))
            buffer[:have] = self._view[self._start : self._end]
            self._buffer, self._view = buffer, memoryview(buffer)  # old views stay valid
        self._start, self._end = 0, have

    def _drop(self, count: int, deadline: float | None) -> None:
        """Read and forget the next ``count`` bytes, a buffer's length at a time."""
        while count > 0:
            self._fill(min(count, len(self._buffer)), deadline)
            taken = min(count, self._end - self._start)
            self._start += taken
            count -= taken
            if self._start == self._end:
                self._start = self._end = 0

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


def _send_all(sock: socket.socket, buffers: list[bytes], size: int) -> None:
    """``buffers`` (``size`` bytes in all) in as few ``sendmsg`` calls as the socket takes."""
    sent = sock.sendmsg(buffers)
    if sent == size:  # all at once, as almost always
        return
    views: list[bytes | memoryview] = list(buffers)
    while True:
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if not views:
            return
        if sent:
            views[0] = memoryview(views[0])[sent:]
        sent = sock.sendmsg(views)
