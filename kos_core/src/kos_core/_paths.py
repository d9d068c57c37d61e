"""Names and places: the kernel's name, the runtime directory and the state directory."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from .errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid kernel or plugin name, else raise :class:`UsageError`."""
    if not _NAME.match(name):
        raise UsageError(
            f"bad {what} name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def kernel_name(explicit: str | None = None) -> str:
    """The kernel name: ``explicit``, else ``$KOS_KERNEL``, else the short host name."""
    name = explicit or os.environ.get("KOS_KERNEL") or socket.gethostname().split(".")[0]
    return check_name(name or "localhost", "kernel")


def runtime_dir(create: bool = True) -> Path:
    """Where sockets and the kernel's connection file live (created ``0700``).

    ``$KOS_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/kos``, else ``/tmp/kos-$UID``.
    """
    if env := os.environ.get("KOS_RUNTIME_DIR"):
        path = Path(env)
    elif xdg := os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(xdg) / "kos"
    else:
        path = Path(f"/tmp/kos-{os.getuid()}")
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid != os.getuid():
            raise UsageError(f"runtime directory {path} belongs to another user")
        path.chmod(0o700)
    return path


def state_dir(kernel: str) -> Path:
    """The kernel's state directory (plugins' working directories live below it).

    ``$KOS_STATE_DIR/<kernel>``, else ``$XDG_STATE_HOME/kos/<kernel>``,
    else ``~/.local/state/kos/<kernel>``.
    """
    if env := os.environ.get("KOS_STATE_DIR"):
        base = Path(env)
    elif xdg := os.environ.get("XDG_STATE_HOME"):
        base = Path(xdg) / "kos"
    else:
        base = Path.home() / ".local" / "state" / "kos"
    return base / kernel


def connection_file(kernel: str) -> Path:
    """The kernel's connection file: address, pid, protocol version and the run's secret."""
    return runtime_dir() / f"{kernel}.kernel.json"
