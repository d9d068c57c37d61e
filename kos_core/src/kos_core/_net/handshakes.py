"""What a listener's unauthenticated connections may cost it: a bounded number of them,
each for a bounded time.

A connection is *pending* from its accept until its handshake ends. A pending one is
cut — shut down, so that the thread reading its handshake wakes at once and closes
it — when its one total deadline passes (:data:`kos_core._net.wire.HANDSHAKE_TIMEOUT`
after its accept, however slowly its bytes trickle in; any later step of the
handshake runs inside the same deadline), when :data:`MAX_PENDING` others are
pending and a new one arrives (the oldest goes), or when the process runs out of
file descriptors.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from kos_core._net import wire

#: unauthenticated connections one listener keeps; a new one past this closes the oldest
MAX_PENDING = 64


class PendingHandshakes:
    """The pending connections of one listener, oldest first, and their deadlines."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._deadlines: dict[socket.socket, float] = {}  # insertion order: oldest first
        self._cut: set[socket.socket] = set()  # shut down; their threads have not closed them

    def admit(self, sock: socket.socket) -> None:
        """Start the clock of a newly accepted connection (closing the oldest one at the cap)."""
        with self._changed:
            if len(self._deadlines) >= MAX_PENDING:
                self._cut_locked(next(iter(self._deadlines)))
            self._deadlines[sock] = time.monotonic() + wire.HANDSHAKE_TIMEOUT

    def replace(self, old: socket.socket, new: socket.socket) -> None:
        """``new`` now stands for ``old`` (a TLS socket wrapping it), with its deadline;
        if ``old`` was already cut, ``new`` is cut too.
        """
        with self._changed:
            if old in self._cut:
                self._cut.discard(old)
                self._cut.add(new)
                with contextlib.suppress(OSError):
                    new.shutdown(socket.SHUT_RDWR)
            elif old in self._deadlines:
                self._deadlines = {
                    (new if sock is old else sock): deadline
                    for sock, deadline in self._deadlines.items()
                }

    def done(self, sock: socket.socket, *, failed: bool) -> None:
        """The handshake of ``sock`` has ended; a failed one's socket is closed here."""
        with self._changed:
            self._deadlines.pop(sock, None)
            self._cut.discard(sock)
            if failed:
                sock.close()
                self._changed.notify_all()

    def expire(self) -> float | None:
        """Cut the connections past their deadline; return the seconds until the next
        deadline, or ``None`` if no connection is pending.
        """
        now = time.monotonic()
        with self._changed:
            while self._deadlines:
                sock, deadline = next(iter(self._deadlines.items()))
                if deadline > now:
                    return deadline - now
                self._cut_locked(sock)
        return None

    def free_one(self, timeout: float) -> bool:
        """Cut the oldest pending connection and wait (up to ``timeout``) until a cut
        one's descriptor is closed; false if there was none to cut or wait for.
        """
        with self._changed:
            if self._deadlines:
                self._cut_locked(next(iter(self._deadlines)))
            if not self._cut:
                return False
            self._changed.wait(timeout)
            return True

    def cut_all(self) -> None:
        """Cut every pending connection (the listener is closing)."""
        with self._changed:
            while self._deadlines:
                self._cut_locked(next(iter(self._deadlines)))

    def _cut_locked(self, sock: socket.socket) -> None:
        del self._deadlines[sock]
        self._cut.add(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
