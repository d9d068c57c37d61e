"""Running functions on one chosen thread for callers on other threads.

Some work must happen on one thread: Tk's widgets belong to the thread that made
them, and the kernel starts plugin processes only from its main thread. The owning
thread calls :meth:`CallQueue.run_pending` in its loop; any other thread calls
:meth:`CallQueue.call` and gets the result (or the exception) back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["CallQueue"]

_T = TypeVar("_T")


class CallQueue:
    """Functions waiting to run on the thread that owns this queue."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self.owner = threading.get_ident()

    def call(self, func: Callable[[], _T], timeout: float) -> _T:
        """Run ``func`` on the owning thread (at once, if this is it) and return its result.

        Raises ``TimeoutError`` if the owner has not run it within ``timeout`` seconds
        (it is then not run at all).
        """
        if threading.get_ident() == self.owner:
            return func()
        future: Future[_T] = Future()
        self._queue.put((func, future))
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def run_pending(self) -> None:
        """Run every queued function (the owning thread calls this in its loop)."""
        while True:
            try:
                func, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func())
                except BaseException as exc:
                    future.set_exception(exc)
