"""kos over rpyc: the names the rest of kos uses, gathered from the modules that make it.

* :mod:`~kos_core._rpc.rpyc_seam` — the only package that touches rpyc: :class:`RpcPeer`,
  the serving end of a connection, which carries only kos messages over
  :mod:`~kos_core._rpc.frames`, and the codec of those messages;
* :mod:`~kos_core._rpc.client_peer` — the client's end (:class:`ClientPeer`), which does
  not import rpyc;
* :mod:`~kos_core._rpc.connection` — the kos protocol on it (request ids, reply
  statuses, configuration, what a serving connection answers);
* :mod:`~kos_core._rpc.session` — the server side of one connection (:class:`ServerSession`);
* :mod:`~kos_core._rpc.server` — the listener that accepts and authenticates connections;
* :mod:`~kos_core._rpc.client` — the client side (:class:`ClientConnection`) and the
  generated proxies.

Every call is one round trip: ``(handle, method, args)`` out, ``(status, payload)``
back. Reply statuses: ``0`` result, ``1`` a declared exception ``(wire_name, args)``,
``2`` an undeclared failure ``(kind, message)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kos_core._rpc.client import (
    ClientConnection,
    RemoteObject,
    connection_of,
    make_proxy,
    object_of_sbh,
    proxy_class,
    sbh_of,
)
from kos_core._rpc.client_peer import NoReply
from kos_core._rpc.connection import (
    DECLARED,
    DEFAULT_CONFIG,
    DEFAULT_MAX_REQUEST,
    FAULT,
    HANDLE_KOS_CALL,
    HANDLE_KOS_RELEASE,
    HANDLE_KOS_STREAM,
    HANDLE_KOS_STREAM_END,
    OK,
    RpcConfig,
    current_session,
)

if TYPE_CHECKING:
    from kos_core._rpc.rpyc_seam.peer import RpcPeer
    from kos_core._rpc.server import Server
    from kos_core._rpc.session import ServerSession

# The serving side is imported on first use: a client that only calls never loads it
# (nor rpyc).
_LAZY = {
    "RpcPeer": "kos_core._rpc.rpyc_seam.peer",
    "Server": "kos_core._rpc.server",
    "ServerSession": "kos_core._rpc.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DECLARED",
    "DEFAULT_CONFIG",
    "DEFAULT_MAX_REQUEST",
    "FAULT",
    "HANDLE_KOS_CALL",
    "HANDLE_KOS_RELEASE",
    "HANDLE_KOS_STREAM",
    "HANDLE_KOS_STREAM_END",
    "OK",
    "ClientConnection",
    "NoReply",
    "RemoteObject",
    "RpcConfig",
    "RpcPeer",
    "Server",
    "ServerSession",
    "connection_of",
    "current_session",
    "make_proxy",
    "object_of_sbh",
    "proxy_class",
    "sbh_of",
]
