"""``FileAPI``: Python's file-like interface as a kos interface, and a wrapper that serves
any file-like object by reference (the successor of ``FileImpl.FileWrapper``).

A method typed ``-> File`` returns a :class:`FileWrapper` (or a subclass); the client
gets a proxy whose calls go to the wrapped file where it lives::

    class Requester:
        def Get(self, url: str) -> File:
            return FileWrapper(urlopen(url))

Every failure of the wrapped file reaches the client as :class:`FileIOError`.
"""

from __future__ import annotations

import io
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

from kos_core.errors import InterfaceError
from kos_core.interface import Interface, raises

if TYPE_CHECKING:
    from kos_core._rpc.streams import ReadStream

__all__ = ["File", "FileIOError", "FileWrapper"]

_R = TypeVar("_R")
Data = bytes | str


class FileIOError(InterfaceError):
    """A file operation failed (the message says which and why).

    ``status`` and ``reason`` carry a protocol's error code and text when there is
    one (an HTTP 404 gives ``status == 404``, ``reason == "NOT FOUND"``); else 0 and "".
    """

    wire_name = "FileAPI.FileIOError"

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message, status, reason)
        self.message = message
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class File(Interface, wire_name="FileAPI.File"):
    """A file-like object: bytes for binary files, text for text files."""

    @raises(FileIOError)
    def read(self, size: int = -1) -> bytes | str:
        """Up to ``size`` bytes (or characters); everything left when ``size`` is negative."""
        raise NotImplementedError

    @raises(FileIOError)
    def readline(self, size: int = -1) -> bytes | str:
        """One line, with its newline; empty at end of file."""
        raise NotImplementedError

    @raises(FileIOError)
    def readlines(self, hint: int = -1) -> list[bytes | str]:
        """The remaining lines."""
        raise NotImplementedError

    @raises(FileIOError)
    def write(self, s: bytes | str) -> int:
        """Write ``s``; return how much was written."""
        raise NotImplementedError

    @raises(FileIOError)
    def writelines(self, lines: list[bytes | str]) -> None:
        """Write each of ``lines``."""
        raise NotImplementedError

    @raises(FileIOError)
    def tell(self) -> int:
        """The current position."""
        raise NotImplementedError

    @raises(FileIOError)
    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        raise NotImplementedError

    @raises(FileIOError)
    def flush(self) -> None:
        """Flush written data."""
        raise NotImplementedError

    @raises(FileIOError)
    def close(self) -> None:
        """Close the file."""
        raise NotImplementedError

    @raises(FileIOError)
    def open(self, mode: str) -> None:
        """(Re)open the file in ``mode``; what that means depends on the file."""
        raise NotImplementedError


READ_PIECE = 256 * 1024
READ_AHEAD = 2


class _FileClient:
    """What ``File`` proxies do on the client: a read of more than ``READ_PIECE`` is a
    stream request (see :mod:`kos_core._rpc.streams`): the bytes come back in the reply if
    there are few, else raw on a second connection. A file served without
    ``kos_read_stream`` is read in pieces of ``READ_PIECE``, ``READ_AHEAD`` of them in
    flight at once.
    """

    _kos_remote_read: Callable[[int], bytes | str]
    _kos_link: Any
    _kos_handle: int

    def read(self, size: int = -1) -> bytes | str:
        """Up to ``size`` bytes (or characters); everything left when ``size`` is negative."""
        if 0 <= size <= READ_PIECE:
            return self._kos_remote_read(size)
        spec = File.methods()["read"]
        data = self._kos_link.read_stream(self._kos_handle, spec, size)
        if data is not None:
            return data  # type: ignore[no-any-return]
        pending: deque[Callable[[], bytes | str]] = deque()
        pieces: list[bytes | str] = []
        asked, ended = 0, False
        while True:
            while not ended and len(pending) < READ_AHEAD and (size < 0 or asked < size):
                piece_size = READ_PIECE if size < 0 else min(READ_PIECE, size - asked)
                pending.append(self._kos_link.begin(self._kos_handle, spec, (piece_size,)))
                asked += piece_size
            if not pending:
                break
            piece = pending.popleft()()
            ended = ended or not piece
            pieces.append(piece)
        return pieces[0][:0].join(pieces)  # type: ignore[arg-type]


File._kos_client_mixin = _FileClient  # type: ignore[attr-defined]


def _guard(what: str, call: Callable[[], _R]) -> _R:
    try:
        return call()
    except FileIOError:
        raise
    except (OSError, ValueError, io.UnsupportedOperation) as exc:
        raise FileIOError(f"{what}: {exc}") from exc


def _is_text(fp: object) -> bool:
    return isinstance(fp, io.TextIOBase)


def _pieces(read: Callable[[int], Data], limit: int | None, promised: bool) -> Iterator[bytes]:
    """``read`` in pieces of at most ``_streams.PIECE`` until its end or ``limit`` bytes;
    with ``promised``, ending before ``limit`` is an error.
    """
    from kos_core._rpc.streams import PIECE

    left = limit
    while left is None or left > 0:
        piece = read(PIECE if left is None else min(PIECE, left))
        if not piece:
            if promised and left:
                raise FileIOError(f"read: the file ended {left} bytes before its announced end")
            return
        if not isinstance(piece, bytes):
            raise FileIOError("read: a file that returns text cannot be streamed")
        if left is not None:
            left -= len(piece)
        yield piece


class FileWrapper:
    """Implements ``FileAPI.File`` on top of a file-like object ``self._fp``.

    Every call passes through to ``self._fp``; failures become :class:`FileIOError`.
    ``open`` is refused unless a subclass defines what it means. A large ``read``
    reaches the client as a stream (:meth:`kos_read_stream`).
    """

    def __init__(self, fp: IO[Any]) -> None:
        self._fp = fp

    def bytes_left(self) -> int | None:
        """How many bytes a read to the end would return, if known without reading.

        Known for a regular file opened in binary mode; a subclass that knows
        better (a response with a Content-Length) says so here. A large read of a
        known length reaches the client in one buffer.
        """
        try:
            if _is_text(self._fp) or not self._fp.seekable():
                return None
            status = os.fstat(self._fp.fileno())
            if not stat.S_ISREG(status.st_mode):
                return None
            return max(0, status.st_size - self._fp.tell())
        except (AttributeError, OSError, ValueError):
            return None

    def kos_read_stream(self, size: int) -> ReadStream | None:
        """How kos sends ``read(size)`` of this file when it is large: this file's
        :meth:`read` in pieces, and the total if :meth:`bytes_left` knows it.
        ``None`` for a text file (it is read in pieces through calls instead).
        """
        if _is_text(self._fp):
            return None
        # Here, not at the top: an interface module that declares ``-> File`` imports
        # this one, and must not import kos's rpc (rpyc) with it.
        from kos_core._rpc.streams import ReadStream

        known = self.bytes_left()
        if known is None:
            return ReadStream(None, _pieces(self.read, None if size < 0 else size, promised=False))
        length = known if size < 0 else min(size, known)
        return ReadStream(length, _pieces(self.read, length, promised=True))

    def read(self, size: int = -1) -> bytes | str:
        return _guard("read", lambda: self._fp.read(size))  # type: ignore[no-any-return]

    def readline(self, size: int = -1) -> bytes | str:
        return _guard("readline", lambda: self._fp.readline(size))  # type: ignore[no-any-return]

    def readlines(self, hint: int = -1) -> list[bytes | str]:
        return _guard("readlines", lambda: list(self._fp.readlines(hint)))

    def write(self, s: bytes | str) -> int:
        written = _guard("write", lambda: self._fp.write(s))
        return len(s) if written is None else int(written)

    def writelines(self, lines: list[bytes | str]) -> None:
        _guard("writelines", lambda: self._fp.writelines(lines))

    def tell(self) -> int:
        return int(_guard("tell", self._fp.tell))

    def seek(self, offset: int, whence: int = 0) -> int:
        result = _guard("seek", lambda: self._fp.seek(offset, whence))
        return int(result) if result is not None else int(_guard("tell", self._fp.tell))

    def flush(self) -> None:
        _guard("flush", self._fp.flush)

    def close(self) -> None:
        _guard("close", self._fp.close)

    def open(self, mode: str) -> None:
        raise FileIOError(f"open({mode!r}) is not supported by this file")
