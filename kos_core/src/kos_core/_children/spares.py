"""Spare children: forked by the fork server ahead of need, given their args on spawn.

Right after its fork a spare does what does not depend on its args: it makes its
token and listens on its one-shot socket. Then it waits on a private socket for its
assignment, one JSON line ``{"args": [...]}``, runs ``make(*args)`` and answers on the
same socket with its SBH line, or ``!why`` (see
:func:`~kos_core._children.factory.report_failure`); from then on it is an ordinary factory
child, whose client timeout counts from the assignment.

A spare of a factory that makes its objects ahead (``make_ahead``) is forked with the
args of the last spawn: it runs ``make(*args)`` with them at once and tells the fork
server the SBH of the object it serves, ``+SBH`` (nobody else knows it). A spawn with
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

An idle spare exits when the plugin dies (its lifeline closes), when the fork server
closes its end of the private socket or dies (end-of-file), or on SIGTERM.
"""

from __future__ import annotations

import contextlib
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


class Spare:
    """The fork server's end of one idle spare child (``ahead``: the args it makes its
    object with ahead of need, if any).
    """

    def __init__(self, pid: int, sock: socket.socket, ahead: list[Any] | None = None) -> None:
        self.pid = pid
        self.sock = sock
        self.ahead = ahead
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
            answer = self._answer(time.monotonic() + factory.SPAWN_TIMEOUT)
            if answer is None:
                return "", f"the child wrote no SBH within {factory.SPAWN_TIMEOUT:g} s"
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


class Spares:
    """The fork server's idle spares, kept at ``count`` (refilled by :meth:`fill`)."""

    def __init__(self, make: Callable[..., object], typename: str, count: int) -> None:
        self._make = make
        self._typename = typename
        self.count = count
        #: the args new spares make their object with ahead of need (``None``: they wait)
        self.ahead: list[Any] | None = None
        self._idle: list[Spare] = []

    def sockets(self) -> list[socket.socket]:
        """The fork server's ends of the idle spares' sockets (no child may keep them)."""
        return [spare.sock for spare in self._idle]

    def take(self) -> Spare | None:
        """The oldest idle spare (most likely warmed up by now), if there is one."""
        return self._idle.pop(0) if self._idle else None

    def forget(self, exited: Iterable[int]) -> None:
        """Drop the spares among ``exited`` (they died idle)."""
        gone = set(exited)
        for spare in [s for s in self._idle if s.pid in gone]:
            self._idle.remove(spare)
            spare.sock.close()

    def fill(self, plumbing: Sequence[forked.Closable | int]) -> None:
        """Fork spares until there are ``count``; ``plumbing`` is what each must close."""
        while len(self._idle) < self.count:
            ours, theirs = socket.socketpair()
            ahead = self.ahead
            try:
                pid = forked.fork(
                    [*plumbing, *self.sockets(), ours],
                    functools.partial(_live, self._make, self._typename, theirs, ahead),
                )
            except OSError as exc:
                ours.close()
                print(f"kos fork server: cannot fork a spare: {exc}", file=sys.stderr)
                return
            finally:
                theirs.close()
            self._idle.append(Spare(pid, ours, ahead))


# ------------------------------------------------------------------ the spare itself


def _live(
    make: Callable[..., object], typename: str, sock: socket.socket, ahead: list[Any] | None
) -> None:
    """The life of a spare child, in the forked process."""
    stop = threading.Event()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    child = factory.ChildServer.prepare()
    child.stop = stop  # a SIGTERM, however early, ends this child
    assignment = _Assignment(sock, stop, wake_read)
    try:
        made = _make_ahead(make, ahead, typename, child, sock)
        child.start_accepting()  # after the +SBH: the fork server may hand it out already
        try:
            message = assignment.wait(_IDLE_BEFORE_WARM_UP)
        except TimeoutError:
            _warm_up_unless(assignment.pending)
            message = assignment.wait(None)
        signal.set_wakeup_fd(-1)
        os.close(wake_read)
        os.close(wake_write)
        if message is not None and message.get("go") is True and made is not None:
            child.start_clock()  # the fork server has handed out the SBH
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

    def __init__(self, sock: socket.socket, stop: threading.Event, wake_fd: int) -> None:
        self._sock = sock
        self._stop = stop
        self._wake_fd = wake_fd
        self._lifeline = factory._lifeline_fd()
        self._data = b""

    def pending(self) -> bool:
        """True if the assignment (or end-of-file) is there to read."""
        return bool(select.select([self._sock], [], [], 0.0)[0])

    def wait(self, timeout: float | None) -> dict[str, Any] | None:
        """The assignment (``{"args": [...]}``, or ``{"go": true}``); ``None`` if this
        spare is to exit instead (the plugin or the fork server is gone, or SIGTERM).
        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: no limit) without
        either.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        watched = [self._sock.fileno(), self._wake_fd]
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
            if self._sock.fileno() in ready:
                try:
                    chunk = self._sock.recv(_MAX_ASSIGNMENT)
                except ConnectionResetError:  # it closed our socket with our +SBH unread
                    chunk = b""
                if not chunk:
                    return None  # the fork server closed our socket or died
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
