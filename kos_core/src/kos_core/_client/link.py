"""Dialling a kernel: an authenticated connection from what its connection file says."""

from __future__ import annotations

import os
import time

from kos_core import _rpc
from kos_core._net import connection_file, wire
from kos_core._os import paths
from kos_core.errors import KernelUnreachable, ServiceUnavailable

#: seconds a client keeps trying a live kernel that dropped its connection
KERNEL_RETRY = 1.0


def kernel_link(
    kernel: str, credential: str | None = None
) -> tuple[_rpc.ClientConnection, str | None]:
    """An open, authenticated link to the kernel named ``kernel``, presenting
    ``credential`` (default: the operator's, from the connection file), and the host the
    kernel listens on over TCP (``None`` if it listens on its Unix socket only).

    The kernel's Unix socket is used when it is on this machine, else its TCP address.
    """
    info = connection_file.read(kernel)
    if info is None:
        raise KernelUnreachable(
            f"no kernel named {kernel!r} is running (no {paths.connection_file(kernel)});"
            f" start one with: kos run -n {kernel}"
        )
    address = wire.Address.parse(info.address)
    tcp = wire.Address.parse(info.tcp) if info.tcp else None
    if info.ca:
        from kos_core._net import tls  # only for a kernel that listens on TCP

        tls.trust(info.ca)  # the kernel's processes serve TCP with what it signed
    if tcp is not None and address.path is not None and not os.path.exists(address.path):
        address = tcp
    link = _rpc.ClientConnection(address, credential or info.secret, f"kernel {kernel!r}")
    give_up = time.monotonic() + KERNEL_RETRY
    while True:
        try:
            link.connect()
            break
        except ServiceUnavailable as exc:
            # A kernel under attack sheds unauthenticated connections (ours among them);
            # one that is alive on this machine is tried again for a moment.
            if time.monotonic() >= give_up or not _alive_here(info, address):
                raise KernelUnreachable(
                    f"does not answer at {address} (pid {info.pid_text} may have died;"
                    f" stale connection file {paths.connection_file(kernel)})",
                    target=link.what,
                ) from exc
            time.sleep(0.02)
    return link, tcp.host if tcp is not None else None


def _alive_here(info: connection_file.ConnectionInfo, address: wire.Address) -> bool:
    """Whether the kernel of a connection file runs on this machine (its pid lives)."""
    if address.path is None or info.pid is None:
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return info.pid > 0
