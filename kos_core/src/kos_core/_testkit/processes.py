"""Waiting on conditions and finding processes, for tests: never a bare sleep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


def wait_for(
    condition: Callable[[], _T | None],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> _T:
    """Poll ``condition`` until it returns something truthy; return that.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds. Exceptions
    from ``condition`` count as "not yet" (the last one is chained).
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}") from last_exc
        time.sleep(interval)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def children_of(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux ``/proc``; unreaped zombies included)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def process_ended(pid: int) -> bool:
    """True once ``pid`` has exited: gone, or a zombie nobody has reaped yet (an orphan
    handed to an init that does not reap counts as ended).
    """
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def process_reaped(pid: int) -> bool:
    """True once ``pid`` has ended *and* been reaped (``os.kill`` finds no process): the
    check for a child of a live parent, which must reap it. An orphan may never be
    reaped (its new parent may not reap): check it with :func:`process_ended`.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_ended(
    pid: int, what: str = "the process", timeout: float = 10.0, reaped: bool = False
) -> None:
    """Wait until ``pid`` has ended (:func:`process_ended`), or with ``reaped`` until it
    has also been reaped (:func:`process_reaped`); ``TimeoutError`` after ``timeout``.
    """
    check = process_reaped if reaped else process_ended
    wait_for(lambda: check(pid), timeout, f"{what} ({pid}) to end")


def sbh_pid(handle: object) -> int:
    """The pid of the process serving an SBH or a proxy (a plugin or a factory child):
    it serves on ``<runtime dir>/p<PID>.sock``.
    """
    from kos_core import _rpc
    from kos_core._net import wire

    sbh = handle if isinstance(handle, str) else _rpc.sbh_of(handle)
    assert sbh is not None, f"{handle!r} has no SBH"
    name = Path(wire.parse_sbh(sbh)[0].path or "").name
    assert name.startswith("p") and name.endswith(".sock") and name[1:-5].isdigit(), sbh
    return int(name[1:-5])


def idle_spare(fork_server: int, but: set[int] | None = None, timeout: float = 10.0) -> int:
    """The one child of ``fork_server`` not in ``but``: its idle spare (waited for)."""

    def one() -> int:
        found = children_of(fork_server) - (but or set())
        return found.pop() if len(found) == 1 else 0

    return wait_for(one, timeout, f"one spare under the fork server {fork_server}")
