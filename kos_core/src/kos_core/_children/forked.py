"""Children of the fork server: what each one does first and last.

First it lets go of the fork server's plumbing (its control socket must see
end-of-file when the fork server dies, so no child may keep a copy) and of the fork
server's signal handling; last it exits, never returning into the fork server's loop.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kos_core._children import factory


class Closable(Protocol):
    """Anything of the fork server's that a child must close (a socket, a file)."""

    def close(self) -> None:
        """Close it."""


def fork(plumbing: Iterable[Closable | int], body: Callable[[], None]) -> int:
    """Fork a child that closes ``plumbing`` (objects or fds), then runs ``body``.

    Returns the child's pid. The child never returns: it exits with status 0 once
    ``body`` returns, 1 if it raised (the error goes to stderr).
    """
    gc.freeze()  # what the fork server holds stays shared with children, unscanned
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        _let_go(plumbing)
        body()
        status = 0
    except BaseException as exc:
        print(f"kos child {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _let_go(plumbing: Iterable[Closable | int]) -> None:
    signal.set_wakeup_fd(-1)
    for item in plumbing:
        with contextlib.suppress(OSError):
            if isinstance(item, int):
                os.close(item)
            else:
                item.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def make_object(
    make: Callable[..., object],
    args: list[Any],
    sbh_fd: int,
    before_report: Callable[[], None] | None = None,
) -> object:
    """``make(*args)``; if it raises, run ``before_report`` and report why on ``sbh_fd``
    (the fork server kills a child once it reads the report), then raise.
    """
    try:
        return make(*args)
    except Exception as exc:
        if before_report is not None:
            before_report()
        factory.report_failure(f"{type(exc).__name__}: {exc}", sbh_fd)
        raise
