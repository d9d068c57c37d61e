"""Helpers of the KP tests: write KP files, submit them, read what they reported.

A KP reports by storing JSON in the station's bitbucket (``report-<key>``), which the
test reads back with the operator's credential.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kos_core.testing import wait_for
from kos_helpers import dedent

#: the start of every KP file: a ``report(kos, key, value)`` helper
PRELUDE = dedent(
    """
    import json, os, sys, time

    def report(kos, key, value):
        kos.lookup("bitbucket").Set("report-" + key, json.dumps(value).encode())
    """
)


#: moves once, carrying a counter, a small bytes value and 1 MiB of state
HOPPER = """
import hashlib
from kos_plugins_bitbucket.plugin import BitBucket

class Hopper:
    def __init__(self):
        self.count = 0
        self.tag = b"\\x00\\xffkp"
        self.blob = b"".join(hashlib.sha256(bytes([i % 256, i // 256])).digest()
                             for i in range(32768))  # 1 MiB
        self.visits = []

    def __main__(self, kos):
        self.count += 1
        self.visits.append(kos.name)
        if len(self.visits) == 1:
            kos.bind_service("here", BitBucket(1024), "BitBucketAPI.BitBucket")
            report(kos, "home", {"id": kos.id, "pid": os.getpid()})
            kos.migrate(kos.args[0])
            report(kos, "after-migrate", "the old process went on")
        kos.lookup("bitbucket").Set("hopper-tag", self.tag)
        report(kos, "away", {
            "count": self.count, "visits": self.visits, "id": kos.id, "pid": os.getpid(),
            "args": kos.args, "blob": hashlib.sha256(self.blob).hexdigest(),
        })
        time.sleep(60)
"""
#: the SHA-256 (hex) of the 1 MiB a Hopper carries
HOPPER_BLOB = hashlib.sha256(
    b"".join(hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(32768))
).hexdigest()


def write_kp(directory: Path, name: str, body: str) -> Path:
    """Write a KP file (the prelude, then ``body``) and return its path."""
    path = directory / f"{name}.py"
    path.write_text(PRELUDE + dedent(body))
    return path


def submit(kos: Any, path: Path, cls: str, *args: str, limits: str = "") -> str:
    """Submit ``path:cls`` through the kernel API as the operator; return the KP's id."""
    return str(kos.kernel.SubmitKP(f"{path}:{cls}", path.read_text(), list(args), limits))


def row(kos: Any, kp_id: str) -> dict[str, Any] | None:
    """The KP's row in the kernel's table, as a dict, or ``None``."""
    for values in kos.kernel.KPs():
        if values[0] == kp_id:
            keys = ("id", "class", "state", "pid", "cpu", "origin", "last_exit", "uptime")
            return dict(zip(keys, values, strict=True))
    return None


def wait_ended(kos: Any, kp_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the KP has ended; return its row."""

    def ended() -> dict[str, Any] | None:
        found = row(kos, kp_id)
        return found if found is not None and found["state"] == "ended" else None

    return wait_for(ended, timeout, f"KP {kp_id} to end")


def reported(kos: Any, key: str, timeout: float = 15.0) -> Any:
    """What a KP reported under ``key`` (waits for it)."""
    bb = kos.lookup("bitbucket")
    return json.loads(wait_for(lambda: bb.Get("report-" + key), timeout, f"report {key!r}"))
