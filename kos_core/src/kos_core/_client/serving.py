"""Serving local objects: what lets a client (or a plugin, or a KP) bind objects of its
own process as services that others call directly.

The first object served starts one server for the process: on a Unix socket in the
runtime directory, or over TCP with TLS (the certificate the kernel issued for its run)
when the kernel listens on TCP. Each object is reached by a token of its own, which its
SBH carries.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

from kos_core import _rpc
from kos_core._net import wire
from kos_core._os import paths
from kos_core.errors import ServiceUnavailable, UsageError
from kos_core.interface import Interface, find_interface


class LocalServices:
    """The objects one connection to kernel ``kernel`` serves, and the server they are
    reached through. ``bind`` and ``unbind`` name and unname them in the kernel's
    namespace (the connection's own methods).
    """

    def __init__(
        self,
        kernel: str,
        tcp_host: str | None,
        bind: Callable[[str, str, str], str],
        unbind: Callable[[str], None],
    ) -> None:
        self.kernel = kernel
        #: served objects listen on TCP on this host when the kernel listens on TCP
        self.tcp_host = tcp_host
        #: what the server is called in logs and thread names
        self.server_name = f"client-{os.getpid()}"
        #: where served objects listen on a Unix socket (default: the runtime directory)
        self.socket_dir: str | None = None
        #: set when serving should end (:meth:`stop`, or the connection closed)
        self.stopped = threading.Event()
        self._bind = bind
        self._unbind = unbind
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[object, type[Interface]]] = {}
        self._sids: dict[str, str] = {}
        self._server: _rpc.Server | None = None
        self._local: _rpc.Server | None = None  # the Unix socket beside a TCP server

    def bind_service(self, name: str, obj: object, typename: str) -> str:
        """Serve ``obj`` as a ``typename`` service bound at ``name``; return its sid
        (see :meth:`kos_core.Kos.bind_service`).
        """
        if not typename:
            raise UsageError(
                "bind_service needs the interface's wire name (e.g. 'BitBucketAPI.BitBucket')"
            )
        from kos_core._rpc.session import check_implements  # the serving side: on first use

        iface = find_interface(typename)
        check_implements(obj, iface)
        token, sbh = self.serve(obj, iface)
        try:
            sid = self._bind(name, typename, sbh)
        except BaseException:
            with self._lock:
                del self._objects[token]
            raise
        with self._lock:
            self._sids[sid] = token
        return sid

    def unbind_service(self, sid: str) -> None:
        """Unbind a service bound with :meth:`bind_service` and stop serving its object;
        only forget it if the kernel is already gone.
        """
        with self._lock:
            token = self._sids.pop(sid, None)
            if token is not None:
                self._objects.pop(token, None)
        with contextlib.suppress(ServiceUnavailable):
            self._unbind(sid)

    def serve(self, obj: object, iface: type[Interface]) -> tuple[str, str]:
        """Serve ``obj`` (unbound); return its token and SBH."""
        import secrets  # once this process serves something

        server = self._ensure_server()
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._objects[token] = (obj, iface)
        return token, wire.format_sbh(server.address, token)

    def run(self) -> None:
        """Serve until :meth:`stop` is called (or a signal ends the process)."""
        while not self.stopped.wait(0.5):
            pass

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self.stopped.set()

    def close(self) -> None:
        """Stop serving: :meth:`run` returns and the server closes."""
        self.stopped.set()
        if self._server is not None:
            self._server.close()
        if self._local is not None:
            self._local.close()

    def _ensure_server(self) -> _rpc.Server:
        with self._lock:
            if self._server is None:
                context = None
                if self.tcp_host is None:
                    where = self.socket_dir or str(paths.runtime_dir())
                    path = os.path.join(where, f"p{os.getpid()}.sock")
                    address = wire.Address(path=path)
                else:
                    from kos_core._net import tls  # a client on a Unix socket never loads it

                    address = wire.Address(host=self.tcp_host, port=0)
                    context = tls.kernel_server_context(self.kernel)
                self._server = _rpc.Server(
                    address, self._authorize, name=self.server_name, tls=context
                )
                self._server.start()
                if context is not None and self.socket_dir is None:
                    # the same objects on the Unix socket, for the station's KPs: they
                    # have no network (the kernel gives them this address instead)
                    local = os.path.join(paths.runtime_dir(), f"p{os.getpid()}.sock")
                    self._local = _rpc.Server(
                        wire.Address(path=local), self._authorize, name=f"{self.server_name}-local"
                    )
                    self._local.start()
            return self._server

    def _authorize(self, token: str) -> _rpc.ServerSession | None:
        with self._lock:
            for known, (obj, iface) in self._objects.items():
                if wire.tokens_equal(token, known):
                    return _rpc.ServerSession(obj, iface)
        return None
