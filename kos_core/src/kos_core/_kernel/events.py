"""The namespace's event log: every bind and unbind, numbered, for watchers
(``KernelAPI.Kernel.Events``, ``kos watch``, ``Kos.watch``).

One ring of the latest events serves every watcher: the kernel keeps no queue per
watcher, so a slow one cannot make it grow. A watcher that falls more than the ring
behind is told so with a ``lost`` event and goes on from the oldest event kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["KEEP", "MAX_WAIT", "Event", "EventLog"]

#: One event: sequence number, kind (``bind``, ``unbind``, or ``lost``: events were
#: dropped before this one), path, interface name ("" for ``lost``).
Event = tuple[int, str, str, str]

#: How many of the latest events are kept for watchers.
KEEP = 4096
#: The longest a watcher's ``Events`` call waits (seconds) before it returns empty.
MAX_WAIT = 10.0


class EventLog:
    """The latest namespace events, and watchers waiting for the next ones."""

    def __init__(self, keep: int = KEEP) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._seq = 0
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    def add(self, kind: str, path: str, typename: str) -> None:
        """Record an event and wake every watcher."""
        with self._changed:
            self._seq += 1
            self._events.append((self._seq, kind, path, typename))
            self._changed.notify_all()

    def close(self) -> None:
        """The kernel stops: wake every watcher, and let none wait again."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def since(
        self, after: int, timeout: float, wanted: Callable[[Event], bool] = lambda e: True
    ) -> tuple[int, list[Event]]:
        """The events after number ``after`` that are ``wanted``, waiting up to
        ``timeout`` seconds (at most :data:`MAX_WAIT`) for one; and the number to ask
        after next. ``after < 0`` means from now: the current number, no events.
        A ``lost`` event comes first when events after ``after`` were dropped.
        """
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT)
        with self._changed:
            if after < 0 or after > self._seq:
                return self._seq, []
            while True:
                found: list[Event] = []
                oldest = self._events[0][0] if self._events else self._seq + 1
                if after + 1 < oldest and after < self._seq:
                    found.append((oldest - 1, "lost", "", ""))
                found += [e for e in self._events if e[0] > after and wanted(e)]
                after = self._seq
                remaining = deadline - time.monotonic()
                if found or self._closed or remaining <= 0:
                    return after, found
                self._changed.wait(remaining)
