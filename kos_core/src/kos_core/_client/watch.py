"""Watching a kernel's namespace: bind and unbind events as they happen
(``Kos.watch``, ``kos watch``), by long polls of ``KernelAPI.Kernel.Events`` on a
connection of the watcher's own.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

from kos_core import _rpc
from kos_core._kernel.events import MAX_WAIT
from kos_core._rpc.connection import RpcConfig
from kos_core.kernel_api import Kernel as KernelInterface


class WatchEvent(NamedTuple):
    """A service bound or unbound (``kind`` ``bind``/``unbind``), or ``lost``: the
    watcher fell so far behind that events before this one were dropped.
    """

    seq: int
    kind: str
    path: str
    typename: str


def watch(link: _rpc.ClientConnection, path: str = "") -> Generator[WatchEvent, None, None]:
    """The events at or under ``path`` from now on (from this call, not the first
    ``next``), through a new connection made like ``link`` (same kernel, same
    credential), closed when the generator is.
    """
    own = _rpc.ClientConnection(link.address, link.token, f"{link.what} (watch)")
    try:
        own.connect()
        kernel: Any = _rpc.make_proxy(KernelInterface, own)
        after, _ = kernel.Events(path, -1, 0.0)
    except BaseException:
        own.close()
        raise
    return _follow(own, kernel, path, int(after))


def _follow(
    own: _rpc.ClientConnection, kernel: Any, path: str, after: int
) -> Generator[WatchEvent, None, None]:
    wait = min(MAX_WAIT, RpcConfig().call_timeout / 2)
    try:
        while True:
            after, events = kernel.Events(path, after, wait)
            for seq, kind, where, typename in events:
                yield WatchEvent(int(seq), str(kind), str(where), str(typename))
    finally:
        own.close()
