"""Caps on the live children of a factory: per client connection, and in all.

A factory child lives as long as its client keeps its connection to it, so without a
cap one client could hold any number of processes. :class:`ChildLimits` counts the
children a factory made until each exits (watched through a pidfd, so an exit is seen
at once and a reused pid is never mistaken for the child), and refuses to start one
more beyond either cap with :class:`ChildLimitReached`. "Per client" means per
connection to the factory: the session whose call is being served
(:func:`~kos_core._rpc.current_session`). Children started outside a kos call count
only toward the total.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import weakref
from collections.abc import Callable

from kos_core import _rpc
from kos_core.errors import KosError

#: live children one client connection may hold by default
DEFAULT_PER_CLIENT = 8
#: live children of one factory, all clients together, by default
DEFAULT_TOTAL = 64
#: how long a request at a cap waits for one of the children that fill it to exit
GRACE = 1.0
_POLL = 0.05

Start = Callable[[], tuple[str, int, list[int]]]


class ChildLimitReached(KosError):
    """A factory refused to start a child: a cap on live children is reached.

    ``scope`` is ``"client"`` (this client connection's cap) or ``"total"`` (the
    factory's); ``live`` is how many children count toward it, ``limit`` the cap.
    """

    def __init__(self, scope: str, live: int, limit: int) -> None:
        self.scope = scope
        self.live = live
        self.limit = limit
        whose = "made for this client" if scope == "client" else "of this factory"
        super().__init__(
            f"{live} children {whose} are still running, and {limit} is the most allowed"
        )


class _Child:
    """One child that counts until it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self.fd = -1  # gone already
        except (AttributeError, OSError):
            self.fd = None  # no pidfds here: ask the kernel by pid

    def exited(self) -> bool:
        if self.fd is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        if self.fd < 0:
            return True
        return bool(select.select([self.fd], [], [], 0.0)[0])

    def close(self) -> None:
        if self.fd is not None and self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class _Client:
    """What one client connection holds: its running children, the ones it is starting,
    and whether its last request was refused with no child of its exiting since.
    """

    def __init__(self) -> None:
        self.children: list[_Child] = []
        self.starting = 0
        self.refused = False

    def live(self) -> int:
        return len(self.children) + self.starting


class ChildLimits:
    """Caps on the live children a factory makes: ``per_client`` for each client
    connection, ``total`` for all of them together (each at least 1).

    :meth:`start` admits a new child or raises :class:`ChildLimitReached`. Safe to
    call from several threads.
    """

    DEFAULT_PER_CLIENT = DEFAULT_PER_CLIENT
    DEFAULT_TOTAL = DEFAULT_TOTAL

    def __init__(self, per_client: int = DEFAULT_PER_CLIENT, total: int = DEFAULT_TOTAL) -> None:
        if per_client < 1 or total < 1:
            raise ValueError(f"child limits must be at least 1, not {per_client} and {total}")
        self.per_client = per_client
        self.total = total
        self._lock = threading.Lock()
        self._all = _Client()
        self._clients: weakref.WeakKeyDictionary[_rpc.ServerSession, _Client] = (
            weakref.WeakKeyDictionary()
        )

    def live(self, client: _rpc.ServerSession | None = None) -> int:
        """How many children count now: in all, or those made for ``client``."""
        with self._lock:
            self._forget_exited()
            if client is None:
                return self._all.live()
            held = self._clients.get(client)
            return 0 if held is None else held.live()

    def start(self, start: Start) -> tuple[str, int, list[int]]:
        """Run ``start()`` (which starts a child and returns ``(sbh, pid, pids)`` as
        :func:`~kos_core.pluginlib.spawnserver` does) if both caps allow one more child;
        count that child until it exits.

        At a cap, wait up to :data:`GRACE` seconds for a child that fills it to exit
        (one just closed may not have exited yet), then raise
        :class:`ChildLimitReached`. A client refused before, none of whose children
        has exited since, is refused at once.
        """
        session = _rpc.current_session()
        with self._lock:
            client = _Client() if session is None else self._clients.setdefault(session, _Client())
        self._reserve(client)
        child: _Child | None = None
        try:
            sbh, pid, exited = start()
            if sbh and pid > 0:
                child = _Child(pid)
        finally:
            with self._lock:
                for holder in (client, self._all):
                    holder.starting -= 1
                    if child is not None:
                        holder.children.append(child)
        return sbh, pid, exited

    def _reserve(self, client: _Client) -> None:
        """Count a child about to start, for ``client`` and in all."""
        deadline = time.monotonic() + GRACE
        while True:
            with self._lock:
                self._forget_exited()
                full = self._full(client)
                if full is None:
                    client.refused = False
                    client.starting += 1
                    self._all.starting += 1
                    return
                scope, holder, limit = full
                live, filling = holder.live(), list(holder.children)
                if client.refused or time.monotonic() >= deadline:
                    client.refused = True
                    raise ChildLimitReached(scope, live, limit)
            fds = [c.fd for c in filling if c.fd is not None and c.fd >= 0]
            left = max(0.0, deadline - time.monotonic())
            if fds and len(fds) == len(filling):
                select.select(fds, [], [], left)  # wakes as soon as one exits
            else:
                time.sleep(min(left, _POLL))

    def _full(self, client: _Client) -> tuple[str, _Client, int] | None:
        """The cap a new child for ``client`` would break: ``(scope, holder, limit)``."""
        if client.live() >= self.per_client:
            return "client", client, self.per_client
        if self._all.live() >= self.total:
            return "total", self._all, self.total
        return None

    def _forget_exited(self) -> None:
        gone = {child for child in self._all.children if child.exited()}
        if not gone:
            return
        for child in gone:
            child.close()
        for holder in (self._all, *self._clients.values()):
            kept = [c for c in holder.children if c not in gone]
            if len(kept) < len(holder.children):
                holder.children = kept
                holder.refused = False
