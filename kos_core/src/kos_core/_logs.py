"""Plugin log files: written privately and rotated; read back (the last lines, and
following new ones across rotation).
"""

from __future__ import annotations

import io
import logging.handlers
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path``."""
    if count == 0:
        return []
    with path.open(encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\n") for line in deque(fh, maxlen=count)]


def follow_file(path: Path, interval: float = 0.2) -> Iterator[str]:
    """Yield lines appended to ``path`` from now on; reopen it when it is rotated."""
    fh = path.open(encoding="utf-8", errors="replace")
    fh.seek(0, os.SEEK_END)
    inode = os.fstat(fh.fileno()).st_ino
    partial = ""
    try:
        while True:
            chunk = fh.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial.rstrip("\n")
                    partial = ""
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = False
            if rotated:
                fh.close()
                fh = path.open(encoding="utf-8", errors="replace")
                inode = os.fstat(fh.fileno()).st_ino
                continue
            time.sleep(interval)
    finally:
        fh.close()


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file readable by its owner only (``0600``): plugin output holds
    tracebacks. A log file left wider by an older kos is tightened when opened; a
    symlink at its name is not followed.
    """

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)
