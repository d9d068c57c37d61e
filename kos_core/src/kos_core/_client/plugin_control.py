"""Start, stop and restart a kernel's plugins and wait for the outcome (``kos plugin
start|stop|restart``, ``Kos.start_plugin`` ...), and wait for a name to be bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kos_core.errors import KosError, NameNotFound
from kos_core.kernel_api import PluginRow

_T = TypeVar("_T")

#: How long a plugin that registered but binds nothing is watched before it counts as up.
_SETTLE = 1.0
_POLL = 0.05
#: States in which a plugin is not running and will not run without an operator.
_DOWN = ("stopped", "exited", "fatal")


def row_of(kernel: Any, name: str) -> PluginRow:
    """Plugin ``name``'s row of the kernel's plugin table."""
    for row in kernel.Plugins():
        if row[0] == name:
            return tuple(row)
    raise NameNotFound(f"no plugin named {name!r} (see: kos status)")


def _until(what: Callable[[], _T | None], timeout: float, late: Callable[[], str]) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise KosError(late())
        time.sleep(_POLL)


def wait_up(kernel: Any, name: str, timeout: float) -> PluginRow:
    """Wait until plugin ``name`` runs with its services bound (or has run a moment and
    binds nothing); raise :class:`KosError` saying why if it ends or ``timeout`` passes.
    """
    last: list[PluginRow] = []

    def up() -> PluginRow | None:
        row = row_of(kernel, name)
        last[:] = [row]
        state, services, uptime, last_exit = row[1], row[3], row[4], row[5]
        if state == "running" and (services or uptime >= _SETTLE):
            return row
        if state in _DOWN:
            why = f": {last_exit}" if last_exit else ""
            raise KosError(f"plugin {name} did not start; it is {state}{why} (kos logs {name})")
        return None

    def late() -> str:
        state = last[0][1] if last else "unknown"
        return (
            f"plugin {name} is {state} after {timeout:g} s, its services not bound"
            f" (kos logs {name})"
        )

    return _until(up, timeout, late)


def wait_down(kernel: Any, name: str, timeout: float) -> PluginRow:
    """Wait until plugin ``name`` has stopped."""

    def down() -> PluginRow | None:
        row = row_of(kernel, name)
        return row if row[1] in _DOWN else None

    return _until(down, timeout, lambda: f"plugin {name} has not stopped after {timeout:g} s")


def describe(row: PluginRow) -> str:
    """One line for ``kos plugin ...``: state, pid, bound services."""
    name, state, pid, services = row[0], row[1], row[2], row[3]
    detail = f" (pid {pid}; bound {', '.join(services) or 'nothing'})" if state == "running" else ""
    return f"{name}: {state}{detail}"


def wait_bound(lookup: Callable[[], _T], path: str, timeout: float) -> _T:
    """Call ``lookup`` until ``path`` is bound (it stops raising :class:`NameNotFound`)
    or ``timeout`` seconds pass; then the last :class:`NameNotFound` is raised.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return lookup()
        except NameNotFound:
            if time.monotonic() >= deadline:
                raise
        time.sleep(_POLL)
