"""Spare children: forked by the fork server ahead of need, given their args on spawn.

Right after its fork a spare does what does not depend on its args: it makes its
token and listens on its one-shot socket. Then it waits on a private socket, whose
other end the fork server hands to the plugin (see :mod:`~kos_core._children.stock`),
for its assignment, one JSON line ``{"args": [...]}``, runs ``make(*args)`` and
answers on the same socket with its SBH line, or ``!why`` (see
:func:`~kos_core._children.factory.report_failure`); from then on it is an ordinary factory
child, whose client timeout counts from the assignment.

A spare of a factory that makes its objects ahead (``make_ahead``) is forked with the
args of the last spawn: it runs ``make(*args)`` with them at once and tells, on its
private socket, the SBH of the object it serves, ``+SBH`` (nobody else knows it). A spawn with
the same args then only sends it ``{"go": true}`` (its client timeout starts) and hands
out that SBH without waiting for the spare; other args are an ordinary assignment, for
which the object made ahead is dropped. Such a spare starts the threads that accept
connections only once it has told its SBH: in a fresh fork, starting a thread costs
as much as making the object, and a client that connects before waits in the listen
backlog.

A spare left idle for a moment warms up the code its first client will run: it serves
itself a handshake and two calls through :mod:`~kos_core._rpc`, so the copy-on-write
faults and first-use costs are paid before anybody waits. One handed its args sooner
(a burst of requests) skips that, and an assignment that arrives meanwhile cuts it
short: there the warm-up would only take processor time from the children being served.

An idle spare exits when the plugin dies (its lifeline closes), when the plugin closes
its end of the private socket (end-of-file), when the fork server dies (a pipe only
the fork server writes to closes), or on SIGTERM.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kos_core import _rpc
from kos_core._children import factory, forked
from kos_core._net import wire
from kos_core.interface import Interface

_MAX_ASSIGNMENT = 1 << 20
_WARM_UP_TIMEOUT = 5.0
#: A spare handed its args this soon after it is ready is one of a burst: it skips the
#: warm-up, which would take processor time from the children being served.
_IDLE_BEFORE_WARM_UP = 0.01


class Spares:
    """The fork server's spares: ``count`` of them forked ahead of need and handed to
    the plugin (see :mod:`~kos_core._children.stock`), refilled by :meth:`fill` once the
    plugin has taken one or one has died.
    """

    def __init__(
        self, make: Callable[..., object], typename: str, count: int, server_watch: int
    ) -> None:
        self._make = make
        self._typename = typename
        self.count = count
        self._server_watch = server_watch
        #: the args new spares make their object with ahead of need (``None``: they wait)
        self.ahead: list[Any] | None = None
        self._idle: set[int] = set()

    def handed_over(self) -> int:
        """How many spares the plugin has, as far as this process knows."""
        return len(self._idle)

    def forget(self, gone: Iterable[int]) -> None:
        """Stop counting the spares among ``gone`` (taken by the plugin, or exited)."""
        self._idle -= set(gone)

    def fill(
        self, plumbing: Sequence[forked.Closable | int]
    ) -> list[tuple[int, socket.socket, list[Any] | None]]:
        """Fork spares until there are ``count``; ``plumbing`` is what each must close.

        Returns ``(pid, socket, ahead)`` of each new one: the fork server's end of its
        private socket, to hand to the plugin and close.
        """
        made: list[tuple[int, socket.socket, list[Any] | None]] = []
        while len(self._idle) < self.count:
            ours, theirs = socket.socketpair()
            ahead = self.ahead
            try:
                pid = forked.fork(
                    [*plumbing, *(sock for _, sock, _ in made), ours],
                    functools.partial(
                        _live, self._make, self._typename, theirs, ahead, self._server_watch
                    ),
                )
            except OSError as exc:
                ours.close()
                print(f"kos fork server: cannot fork a spare: {exc}", file=sys.stderr)
                break
            finally:
                theirs.close()
            self._idle.add(pid)
            made.append((pid, ours, ahead))
        return made


# ------------------------------------------------------------------ the spare itself


def _live(
    make: Callable[..., object],
    typename: str,
    sock: socket.socket,
    ahead: list[Any] | None,
    server_watch: int,
) -> None:
    """The life of a spare child, in the forked process (``server_watch``: the read end
    of a pipe only the fork server writes to: end-of-file once it has died).
    """
    stop = threading.Event()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    child = factory.ChildServer.prepare()
    child.stop = stop  # a SIGTERM, however early, ends this child
    assignment = _Assignment(sock, stop, wake_read, server_watch)
    try:
        made = _make_ahead(make, ahead, typename, child, sock)
        child.start_accepting()  # after the +SBH: the plugin may hand it out already
        try:
            message = assignment.wait(_IDLE_BEFORE_WARM_UP)
        except TimeoutError:
            _warm_up_unless(assignment.pending)
            message = assignment.wait(None)
        signal.set_wakeup_fd(-1)
        for fd in (wake_read, wake_write, server_watch):
            os.close(fd)
        if message is not None and message.get("go") is True and made is not None:
            child.start_clock()  # the plugin has handed out the SBH
            sock.close()
        elif message is not None:
            args = list(message["args"])
            sbh_fd = sock.detach()
            if made is None or args != ahead:
                made = forked.make_object(make, args, sbh_fd, before_report=child.close)
            child.assign(made, typename, sbh_fd)
    except BaseException:
        child.close()
        raise
    if message is None:
        child.close()  # not wanted any more
    else:
        child.run()


def _make_ahead(
    make: Callable[..., object],
    ahead: list[Any] | None,
    typename: str,
    child: factory.ChildServer,
    sock: socket.socket,
) -> object | None:
    """``make(*ahead)``, served by ``child`` and its SBH told on ``sock``; ``None`` if
    there are no args to make it with or it failed (the assignment makes it again, and
    reports why it fails).
    """
    if ahead is None:
        return None
    try:
        made = make(*ahead)
        sbh = child.offer(made, typename)
        sock.sendall(b"+" + sbh.encode("ascii") + b"\n")
    except Exception:
        return None
    return made


class _Assignment:
    """Where a spare's assignment comes from, and the reasons to stop waiting for it."""

    def __init__(
        self, sock: socket.socket, stop: threading.Event, wake_fd: int, server_watch: int
    ) -> None:
        self._sock = sock
        self._stop = stop
        self._wake_fd = wake_fd
        self._server_watch = server_watch
        self._lifeline = factory._lifeline_fd()
        self._data = b""

    def pending(self) -> bool:
        """True if the assignment (or end-of-file) is there to read."""
        return bool(select.select([self._sock], [], [], 0.0)[0])

    def wait(self, timeout: float | None) -> dict[str, Any] | None:
        """The assignment (``{"args": [...]}``, or ``{"go": true}``); ``None`` if this
        spare is to exit instead (the plugin is gone or let go of it, or SIGTERM).
        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: no limit) without
        either.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        watched = [self._sock.fileno(), self._wake_fd, self._server_watch]
        if self._lifeline is not None:
            watched.append(self._lifeline)
        while not self._stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            ready, _, _ = select.select(watched, [], [], left)
            if self._wake_fd in ready:
                os.read(self._wake_fd, 512)
            if self._lifeline in ready and factory._parent_gone(self._lifeline, 0.0):
                return None  # the plugin died
            if self._server_watch in ready and factory._parent_gone(self._server_watch, 0.0):
                return None  # the fork server died
            if self._sock.fileno() in ready:
                try:
                    chunk = self._sock.recv(_MAX_ASSIGNMENT)
                except ConnectionResetError:  # our socket closed with our +SBH unread
                    chunk = b""
                if not chunk:
                    return None  # the plugin closed our socket or died
                self._data += chunk
                if self._data.endswith(b"\n"):
                    message = json.loads(self._data)
                    return message if isinstance(message, dict) else None
        return None


def _warm_up_unless(interrupted: Callable[[], bool]) -> None:
    try:
        warm_up(interrupted)
    except Exception as exc:  # only slower: the spare still works
        print(f"kos spare {os.getpid()}: warm-up failed: {exc!r}", file=sys.stderr)


class _WarmUp(Interface, wire_name="KosCore.SpareWarmUp"):
    """What a spare serves to itself to warm up; never served to anybody else."""

    def Echo(self, text: str) -> str:
        """Return ``text``."""
        raise NotImplementedError

    def Close(self) -> None:
        """End the connection once this call is answered."""
        raise NotImplementedError


class _Echo:
    """Implements :class:`_WarmUp`."""

    def Echo(self, text: str) -> str:
        return text

    def Close(self) -> None:
        factory.end_connection()


def warm_up(interrupted: Callable[[], bool] = lambda: False) -> None:
    """Serve one client (this process) through a throwaway one-shot server: a
    handshake, a call, and a call that ends the connection. Stops early once
    ``interrupted()`` is true (it is asked between the steps).
    """
    if interrupted():
        return
    token = secrets.token_urlsafe(24)
    address = wire.Address(path=str(factory.socket_path(os.getpid(), "w")))

    def authorize(given: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(_Echo(), _WarmUp) if wire.tokens_equal(given, token) else None

    server = _rpc.Server(address, authorize, name="warm-up", one_shot=True).start()
    try:
        proxy = _rpc.object_of_sbh(wire.format_sbh(server.address, token), _WarmUp)
        link = _rpc.connection_of(proxy)
        assert link is not None
        try:
            for step in (link.connect, lambda: proxy.Echo("warm"), proxy.Close):
                if interrupted():
                    return
                step()
        finally:
            link.close()
        server.finished.wait(_WARM_UP_TIMEOUT)
    finally:
        server.close()
