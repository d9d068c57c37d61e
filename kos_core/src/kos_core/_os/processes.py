"""Small process helpers: exit descriptions and dying with the parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import sys
from pathlib import Path

PARENT_ENV = "KOS_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def describe_exit(returncode: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` for a Popen return code."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when the process that started it dies.

    Only done when ``$KOS_PARENT_PID`` names our parent (so a plugin started by hand is
    not tied to its shell). Returns True if armed. Other platforms rely on the
    connection to the parent dropping instead.
    """
    expected = os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux") or expected != str(os.getppid()):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if str(os.getppid()) != expected:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)
    return True


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PROCESS_SOCKET = re.compile(r"^p(\d+)\.sock$")


def sweep_stale_sockets(directory: Path) -> list[Path]:
    """Remove ``p<pid>.sock`` files whose process is gone (left by killed plugins)."""
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _PROCESS_SOCKET.match(name)
        if match and not pid_alive(int(match.group(1))):
            try:
                (directory / name).unlink()
                removed.append(directory / name)
            except OSError:
                pass
    return removed
