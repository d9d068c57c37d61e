"""Log files: each plugin's output and the kernel's own log, written privately and
rotated, every line with its time, a marker line where a kernel run starts a plugin;
read back (the last lines, following new ones across rotation, the last error line).

Both live in ``<state dir>/logs/``: ``NAME.log`` per plugin and ``kernel.log``, so
that ``kos logs`` reads them whether or not a kernel runs.
"""

from __future__ import annotations

import contextlib
import io
import logging.handlers
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from kos_core._kernel.policy import Supervision
from kos_core._os import paths

#: The format of every line of a log file: its local time, then the line.
LINE_FORMAT = "%(asctime)s %(message)s"
#: The kernel's own lines in ``kernel.log``.
KERNEL_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
KERNEL_LOG = "kernel.log"


def logs_dir(state_dir: Path) -> Path:
    """Where a kernel's log files are."""
    return state_dir / "logs"


def run_marker(kernel: str) -> str:
    """The line that starts a kernel run's part of a log."""
    return f"===== kernel {kernel} (pid {os.getpid()}) run started {time.strftime('%c')} ====="


def open_kernel_log(state_dir: Path, kernel: str, policy: Supervision) -> logging.Handler:
    """Copy the kernel's log records (logger ``kos``) into ``kernel.log``, after a run
    marker; returns the handler (to close at the end of the run).
    """
    directory = logs_dir(state_dir)
    paths.make_private_dir(state_dir)
    paths.make_private_dir(directory)
    handler = PrivateRotatingFileHandler(
        directory / KERNEL_LOG,
        maxBytes=policy.log_max_bytes,
        backupCount=policy.log_backups,
        encoding="utf-8",
    )
    handler.setFormatter(logging.Formatter(KERNEL_FORMAT))
    handler.emit(logging.makeLogRecord({"msg": run_marker(kernel), "levelname": "INFO"}))
    logging.getLogger("kos").addHandler(handler)
    return handler


def is_error_line(line: str) -> bool:
    """True for a line that reports an error (a traceback's last line, ``error:``...)."""
    head = line.split(":", 1)[0].strip()
    return (
        bool(head) and " " not in head and head.endswith(("Error", "Exception", "Exit"))
    ) or "error" in line.lower()


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
                # what was written to the old file after the last read, then the new file
                yield from (partial + fh.read()).splitlines()
                partial = ""
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


class PluginLog:
    """Copies one plugin process's output to its rotating log file, each line with its
    time, and, prefixed with the plugin's name, to the kernel's stderr. Keeps the last
    error line the process wrote (for ``kos status``).
    """

    def __init__(self, path: Path, name: str, policy: Supervision, marker: str = "") -> None:
        paths.make_private_dir(path.parent)
        self._name = name
        self._handler = PrivateRotatingFileHandler(
            path, maxBytes=policy.log_max_bytes, backupCount=policy.log_backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter(LINE_FORMAT))
        self.last_error = ""
        self.thread: threading.Thread | None = None
        if marker:
            self._write(marker)

    def _write(self, line: str) -> None:
        self._handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def follow(self, stream: IO[bytes]) -> threading.Thread:
        """Copy ``stream`` in a thread until its end; return the thread."""
        self.thread = threading.Thread(
            target=self._copy, args=(stream,), name=f"kos-log-{self._name}", daemon=True
        )
        self.thread.start()
        return self.thread

    def last_error_line(self, wait: float = 0.5) -> str:
        """The last error line the process wrote, once its output has ended (waiting up to
        ``wait`` seconds for the end); "" if none.
        """
        if self.thread is not None:
            self.thread.join(wait)
        return self.last_error

    def _copy(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if is_error_line(line):
                    self.last_error = line.strip()
                self._write(line)
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(f"{self._name}| {line}\n")
                    sys.stderr.flush()
        finally:
            stream.close()
            self._handler.close()
