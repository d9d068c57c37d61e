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
from collections import deque
from collections.abc import Callable
from typing import IO, Any, TypeVar

from .errors import InterfaceError
from .interface import Interface, raises

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
    """What ``File`` proxies do on the client: a large read travels as pieces of
    ``READ_PIECE``, ``READ_AHEAD`` of them in flight at once. One huge message costs
    far more in copies and page faults than the round trips this overlaps.
    """

    _kos_remote_read: Callable[[int], bytes | str]
    _kos_link: Any
    _kos_handle: int

    def read(self, size: int = -1) -> bytes | str:
        """Up to ``size`` bytes (or characters); everything left when ``size`` is negative."""
        if 0 <= size <= READ_PIECE:
            return self._kos_remote_read(size)
        spec = File.methods()["read"]
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


class FileWrapper:
    """Implements ``FileAPI.File`` on top of a file-like object ``self._fp``.

    Every call passes through to ``self._fp``; failures become :class:`FileIOError`.
    ``open`` is refused unless a subclass defines what it means.
    """

    def __init__(self, fp: IO[Any]) -> None:
        self._fp = fp

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
