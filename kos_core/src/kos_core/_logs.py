"""Reading plugin log files: the last lines, and following new ones across rotation."""

from __future__ import annotations

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
