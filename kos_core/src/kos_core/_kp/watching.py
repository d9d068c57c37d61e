"""What a station reads of a KP's process: its status line, its CPU time, and the
processes of the user id it runs as.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from pathlib import Path


def read_status(fd: int, timeout: float) -> tuple[bool, str]:
    """The KP's first status line: ``(True, "")`` once it runs, else ``(False, why)``."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data and len(data) < 4096:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False, f"it did not start within {timeout:g} s"
        chunk = os.read(fd, 4096)
        if not chunk:
            return False, "its process ended before its __main__ ran (see: kos logs kp/ID)"
        data += chunk
    line = data.partition(b"\n")[0].decode("utf-8", "replace").strip()
    if line == "R":
        return True, ""
    return False, line.removeprefix("!") or "no reason given"


def cpu_of(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far (0 if unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_of_uid(uid: int) -> list[int]:
    """Every process of user ``uid`` (from ``/proc``)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    found.append(int(entry.name))
    return found
