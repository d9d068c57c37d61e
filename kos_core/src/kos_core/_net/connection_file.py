"""The connection file: how a kernel tells the processes of its runtime directory where
it listens and what lets them in.

The kernel writes ``<runtime dir>/<kernel>.kernel.json`` (mode 0600) once it serves,
and removes it when it stops; clients, plugins and a later kernel of the same name
read it. It is a JSON object::

    {"kernel": "k1", "address": "unix:/run/user/1000/kos/k1.sock",
     "tcp": "tcp:10.0.0.5:7000", "ca": "-----BEGIN CERTIFICATE-----...",
     "pid": 4242, "protocol": 1, "version": "0.1.0", "secret": "..."}

``tcp`` and ``ca`` (the authority the kernel's processes serve TCP with) are there
only when the kernel listens on TCP. ``address`` and ``secret`` are required; a file
without them is damaged.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import NamedTuple

from kos_core import __version__
from kos_core._net import wire
from kos_core._os import paths
from kos_core.errors import KernelUnreachable

__all__ = ["ConnectionInfo", "read", "remove", "write"]


class ConnectionInfo(NamedTuple):
    """What a kernel's connection file says."""

    #: the kernel's name
    kernel: str
    #: its Unix socket (``unix:PATH``)
    address: str
    #: the operator credential
    secret: str
    #: the kernel's process, if the file names one
    pid: int | None = None
    #: its TCP address (``tcp:HOST:PORT``), "" if it listens on its Unix socket only
    tcp: str = ""
    #: the authority its processes serve TCP with (PEM), "" without TCP
    ca: str = ""
    #: the wire protocol and kos version it runs, as written ("" if absent)
    protocol: str = ""
    version: str = ""

    @property
    def pid_text(self) -> str:
        """The pid for messages: ``?`` if the file names none."""
        return "?" if self.pid is None else str(self.pid)


def read(kernel: str) -> ConnectionInfo | None:
    """Kernel ``kernel``'s connection file, or ``None`` if there is none.

    Raises :class:`~kos_core.errors.KernelUnreachable` if it cannot be read or is
    damaged.
    """
    path = paths.connection_file(kernel)
    try:
        data = json.loads(paths.read_private_file(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise KernelUnreachable(f"cannot read the connection file {path}: {exc}") from exc
    if not isinstance(data, dict) or "address" not in data or "secret" not in data:
        raise KernelUnreachable(f"the connection file {path} is damaged")
    fields = {str(k): str(v) for k, v in data.items()}
    return ConnectionInfo(
        kernel=fields.get("kernel", kernel),
        address=fields["address"],
        secret=fields["secret"],
        pid=_pid(fields.get("pid")),
        tcp=fields.get("tcp", ""),
        ca=fields.get("ca", ""),
        protocol=fields.get("protocol", ""),
        version=fields.get("version", ""),
    )


def _pid(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def write(
    kernel: str,
    *,
    address: wire.Address,
    secret: str,
    pid: int,
    tcp: wire.Address | None = None,
    ca: str = "",
) -> None:
    """Write kernel ``kernel``'s connection file (private to this user), naming this
    wire protocol and kos version.
    """
    data = {
        "kernel": kernel,
        "address": str(address),
        **({"tcp": str(tcp), "ca": ca} if tcp is not None else {}),
        "pid": pid,
        "protocol": wire.PROTOCOL_VERSION,
        "version": __version__,
        "secret": secret,
    }
    paths.write_private_file(paths.connection_file(kernel), json.dumps(data).encode())


def remove(kernel: str) -> None:
    """Remove kernel ``kernel``'s connection file, if there is one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.connection_file(kernel))
