"""The plugin's side of spare children: the idle spares its fork server handed over.

The fork server forks each spare and passes the plugin its end of the spare's private
socket with ``{"spare": PID, "ahead": ARGS, "timeout": SECONDS}``, keeping no copy. A
spawn then talks to a spare directly: ``{"go": true}`` to one that made its object
ahead with the same args (the SBH it told is handed out at once), ``{"args": [...]}``
otherwise (see :mod:`~kos_core._children.spares`); then it tells the fork server which
spare it took, ``{"took": PID, "args": ARGS}`` (``null`` args if the spare failed), and
the fork server forks the replacement. The fork server is on a spawn's path only when
no spare is at hand; it reports the children it reaps, ``{"exited": [PIDS]}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
from typing import Any

from kos_core._children import factory

_MAX_FDS = 16


class Spare:
    """The plugin's end of one idle spare child (``ahead``: the args it makes its object
    with ahead of need, if any; ``timeout``: how long its answer may take).
    """

    def __init__(
        self, pid: int, sock: socket.socket, ahead: list[Any] | None, timeout: float
    ) -> None:
        self.pid = pid
        self.sock = sock
        self.ahead = ahead
        self.timeout = timeout
        self._data = b""

    def assign(self, args: list[Any]) -> tuple[str, str] | None:
        """Hand the spare its args; return ``(sbh, why)`` as
        :func:`~kos_core._children.factory.read_sbh` does, or ``None`` if the spare was gone
        before it could take them.
        """
        try:
            made = self._made_ahead() if args == self.ahead else ""
            try:
                message = {"go": True} if made else {"args": args}
                self.sock.sendall(json.dumps(message).encode() + b"\n")
            except OSError:
                return None
            if made:
                return made, ""
            answer = self._answer(time.monotonic() + self.timeout)
            if answer is None:
                return "", f"the child wrote no SBH within {self.timeout:g} s"
            return factory.sbh_of_line(answer)
        finally:
            self.sock.close()

    def _made_ahead(self) -> str:
        """The SBH of the object the spare made ahead, if it has said so ("" if not yet)."""
        with contextlib.suppress(OSError):
            self._data += self.sock.recv(factory.MAX_SBH, socket.MSG_DONTWAIT)
        line, newline, rest = self._data.partition(b"\n")
        if not newline or not line.startswith(b"+"):
            return ""
        self._data = rest
        return factory.sbh_of_line(line[1:])[0]

    def _answer(self, deadline: float) -> bytes | None:
        """The spare's answer to its args (skipping its ``+SBH`` line); ``None`` if it
        gave none before ``deadline``.
        """
        while True:
            line, newline, rest = self._data.partition(b"\n")
            if newline and not line.startswith(b"+"):
                return line
            if newline:
                self._data = rest
                continue
            left = deadline - time.monotonic()
            if len(self._data) > factory.MAX_SBH:
                return line
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            chunk = self.sock.recv(factory.MAX_SBH)
            if not chunk:
                return line
            self._data += chunk


class Stock:
    """What the plugin holds of its fork server's work: the idle spares handed over,
    and the pids of the children it reaped since the last :meth:`take_exited`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._fds: list[int] = []
        self.idle: list[Spare] = []
        self._exited: list[int] = []

    def read(self, *, wait: bool) -> dict[str, Any] | None:
        """Take in what the fork server sent; with ``wait``, until its reply to a
        request arrives (returned). Raises ``OSError`` if the fork server is gone or
        does not answer within the socket's timeout.
        """
        while True:
            while b"\n" in self._data:
                line, _, self._data = self._data.partition(b"\n")
                message = json.loads(line)
                if "spare" in message:
                    fd = self._fds.pop(0)
                    sock = socket.socket(fileno=fd)
                    timeout = float(message.get("timeout", factory.SPAWN_TIMEOUT))
                    self.idle.append(Spare(int(message["spare"]), sock, message["ahead"], timeout))
                elif "sbh" in message:
                    return dict(message)
                else:
                    self._exited += [int(pid) for pid in message.get("exited", [])]
            if not wait and not select.select([self._sock], [], [], 0.0)[0]:
                return None
            data, fds, _, _ = socket.recv_fds(self._sock, 65536, _MAX_FDS)
            self._fds += fds
            if not data:
                raise ConnectionResetError("the fork server is gone")
            self._data += data

    def take(self, args: list[Any]) -> tuple[str, int, str] | None:
        """A child for ``args`` from an idle spare, ``(sbh, pid, why)``; ``None`` if no
        spare is at hand. The fork server is told which spare was taken.
        """
        while self.idle:
            spare = self.idle.pop(0)
            made = spare.assign(args)
            sbh, why = made if made is not None else ("", "")
            if not sbh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(spare.pid, signal.SIGKILL)
            took = {"took": spare.pid, "args": args if sbh else None}
            with contextlib.suppress(OSError):  # a dead fork server is noticed next time
                self._sock.sendall(json.dumps(took).encode() + b"\n")
            if made is not None:
                return sbh, spare.pid, why
        return None

    def take_exited(self, more: list[int]) -> list[int]:
        """The children reaped since the last call (and ``more``)."""
        exited, self._exited = self._exited + more, []
        return exited

    def close(self) -> None:
        """End the idle spares (their sockets close) and drop what was not taken in."""
        for spare in self.idle:
            spare.sock.close()
        self.idle = []
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
