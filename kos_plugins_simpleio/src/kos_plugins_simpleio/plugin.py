"""The simpleio plugin process: a factory that opens a window per client.

Run by the kernel as ``python -m kos_plugins_simpleio.plugin -n KERNEL``. Each window
is a child forked from a preloaded fork server (the same fast path as the http
plugin); the window lives on the display named by the kernel's ``$DISPLAY``.
"""

from __future__ import annotations

import itertools
import os
import threading

from kos_core import pluginlib
from kos_core.fileapi import File

from .api import SpawnError

MAX_SIZE = 500


class SimpleIOFactory:
    """Implements ``SimpleIOAPI.SimpleIOFactory``."""

    def __init__(self) -> None:
        # No spare window process: opening the window (~50 ms of Tk) dwarfs the few
        # milliseconds a spare saves, and a spare would be an idle process per plugin.
        self._children = pluginlib.ChildFactory(
            "kos_plugins_simpleio.window:make_window", File.wire_name, spares=0
        )
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def GetNewSimpleIO(self) -> File:
        return self._open(0, 0)

    def GetNewSimpleIOWH(self, height: int, width: int) -> File:
        if not (0 < height <= MAX_SIZE and 0 < width <= MAX_SIZE):
            raise SpawnError(f"height and width must be between 1 and {MAX_SIZE}")
        return self._open(height, width)

    def _open(self, height: int, width: int) -> File:
        display = os.environ.get("DISPLAY", "")
        if not display:
            raise SpawnError("no display: DISPLAY is not set for the kernel")
        with self._lock:
            number = next(self._numbers)
            try:
                sbh, _pid, _pids = self._children.spawn(height, width, f"simpleio window {number}")
            except pluginlib.ChildLimitReached as exc:
                raise SpawnError(f"too many windows open: {exc}") from None
            why = self._children.last_error
        if not sbh:
            raise SpawnError(f"cannot open a window on display {display!r}: {why}")
        return pluginlib.object_of_sbh(sbh, File)  # type: ignore[no-any-return]


def main() -> None:
    """Register, bind the factory as ``simpleio``, serve until stopped."""
    pluginlib.serve(
        "simpleio", "simpleio", "SimpleIOAPI.SimpleIOFactory", lambda kos: SimpleIOFactory()
    )


if __name__ == "__main__":
    main()
