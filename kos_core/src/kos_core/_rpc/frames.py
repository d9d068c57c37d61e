"""The frames of a kos connection on its socket, as rpyc lays them out.

A frame is its payload's length (4 bytes, big-endian), a compression flag (1 byte, always
0: compression costs more than it saves on local sockets), the payload and ``b"\\n"``.
:class:`Frames` reads and writes them without copying large ones more than once, and a
serving side's never holds more than ``max_frame`` bytes of one request unless
``allow(prefix, length)`` accepts a longer frame from its first bytes. A longer one is
read and dropped in small chunks; :meth:`Frames.recv` then returns :data:`OVERSIZED`, the
length (8 bytes) and those first bytes, from which the request is answered with an error
(so the caller gets a clear exception and the connection goes on).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Callable

#: frame header: payload length, compressed flag
HEADER = struct.Struct("!LB")
#: what ends a frame
FLUSHER = b"\n"
#: what :meth:`Frames.recv` returns first for a frame it did not hold in memory
OVERSIZED = b"\xff"
_PREFIX = 4096
_RECV_CHUNK = 256 * 1024
_DISCARD_CHUNK = 64 * 1024


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
        header = HEADER.pack(len(data), 0)
        if len(data) <= _RECV_CHUNK:
            self._write(header + data + FLUSHER)  # one system call
        else:  # no copy of a large frame
            self._write(header)
            self._write(memoryview(data))
            self._write(FLUSHER)

    def recv(self) -> bytes:
        """The payload of the next frame (or the marker of one too long to hold)."""
        length, compressed = HEADER.unpack(self._read(HEADER.size))
        if compressed:
            raise EOFError("compressed frames are not accepted")
        if self.max_frame is None or length <= self.max_frame:
            if length <= _RECV_CHUNK:  # small: frame and flusher in one read
                return self._read(length + len(FLUSHER))[: -len(FLUSHER)]
            frame = self._read(length)
            self._read(len(FLUSHER))
            return frame
        prefix = self._read(min(length, _PREFIX))
        if self._allow is not None and self._allow(prefix, length):
            rest = self._read(length - len(prefix)) if length > len(prefix) else b""
            self._read(len(FLUSHER))
            return prefix + rest
        left = length - len(prefix) + len(FLUSHER)
        while left > 0:
            left -= len(self._read(min(left, _DISCARD_CHUNK)))
        marker: bytes = OVERSIZED + length.to_bytes(8, "big") + prefix
        return marker

    def _read(self, count: int) -> bytes:
        """Exactly ``count`` bytes, or :class:`EOFError`."""
        try:
            first = self.sock.recv(min(count, _RECV_CHUNK))
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

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None
