"""The client API: connect to a kernel, look up services, call them directly."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import secrets
import ssl
import threading
import time
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from kos_core import _rpc
from kos_core._net import tls, wire
from kos_core._os import paths
from kos_core.errors import KernelUnreachable, KosError, ServiceUnavailable, UsageError
from kos_core.interface import Interface, find_interface
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.kernel_api import PluginRow

if TYPE_CHECKING:
    from kos_core._watch import WatchEvent

_T = TypeVar("_T")
#: seconds a client keeps trying a live kernel that dropped its connection
KERNEL_RETRY = 1.0

__all__ = ["Context", "Kos", "connect", "run_kp"]


def read_connection_file(kernel: str) -> dict[str, str] | None:
    """The kernel's connection file as a dict, or ``None`` if there is none."""
    path = paths.connection_file(kernel)
    try:
        data = json.loads(paths.read_private_file(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise KernelUnreachable(f"cannot read the connection file {path}: {exc}") from exc
    if not isinstance(data, dict) or "address" not in data or "secret" not in data:
        raise KernelUnreachable(f"the connection file {path} is damaged")
    return {str(k): str(v) for k, v in data.items()}


def kernel_link(
    kernel: str, credential: str | None = None
) -> tuple[_rpc.ClientConnection, str | None]:
    """An open, authenticated link to the kernel named ``kernel``, presenting
    ``credential`` (default: the operator's, from the connection file), and the host the
    kernel listens on over TCP (``None`` if it listens on its Unix socket only).

    The kernel's Unix socket is used when it is on this machine, else its TCP address.
    """
    info = read_connection_file(kernel)
    if info is None:
        raise KernelUnreachable(
            f"no kernel named {kernel!r} is running (no {paths.connection_file(kernel)});"
            f" start one with: kos run -n {kernel}"
        )
    address = wire.Address.parse(info["address"])
    tcp = wire.Address.parse(info["tcp"]) if info.get("tcp") else None
    if info.get("ca"):
        tls.trust(info["ca"])  # the kernel's processes serve TCP with what it signed
    if tcp is not None and address.path is not None and not os.path.exists(address.path):
        address = tcp
    link = _rpc.ClientConnection(address, credential or info["secret"], f"kernel {kernel!r}")
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
                    f"does not answer at {address} (pid {info.get('pid', '?')} may have died;"
                    f" stale connection file {paths.connection_file(kernel)})",
                    target=link.what,
                ) from exc
            time.sleep(0.02)
    return link, tcp.host if tcp is not None else None


def _alive_here(info: dict[str, str], address: wire.Address) -> bool:
    """Whether the kernel of a connection file runs on this machine (its pid lives)."""
    if address.path is None:
        return False
    try:
        os.kill(int(info.get("pid", "0")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(info.get("pid", "0")) > 0


class Kos:
    """A connection to one kernel. Use :func:`connect` to make one.

    Services found through it are called directly in the processes that serve
    them; closing it closes those connections too.
    """

    def __init__(self, name: str, link: _rpc.ClientConnection, tcp_host: str | None = None) -> None:
        self.name = name
        self._link = link
        #: served objects listen on TCP on this host when the kernel listens on TCP
        self._tcp_host = tcp_host
        self._kernel: Any = _rpc.make_proxy(KernelInterface, link)
        self._links: list[_rpc.ClientConnection] = []
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[object, type[Interface]]] = {}
        self._sids: dict[str, str] = {}
        self._server: _rpc.Server | None = None
        self._server_name = f"client-{os.getpid()}"
        self._stopped = threading.Event()
        #: where served objects listen on a Unix socket (default: the runtime directory)
        self.socket_dir: str | None = None

    @property
    def kernel(self) -> Any:
        """The kernel's own ``KernelAPI.Kernel`` proxy."""
        return self._kernel

    @overload
    def lookup(self, path: str, *, wait: float = 0.0) -> Any: ...

    @overload
    def lookup(self, path: str, interface: type[_T], *, wait: float = 0.0) -> _T: ...

    def lookup(self, path: str, interface: type[Any] | None = None, *, wait: float = 0.0) -> Any:
        """The object bound at ``path``: a typed proxy for a service, a :class:`Context`
        for a context. With ``interface``, check the service has that type. With
        ``wait``, wait up to that many seconds for something to be bound there.

        Raises :class:`~kos_core.errors.NameNotFound` if nothing is bound there.
        """
        if wait > 0:
            from kos_core._plugin_control import wait_bound

            kind, typename, detail = wait_bound(lambda: self._kernel.Lookup(path), path, wait)
        else:
            kind, typename, detail = self._kernel.Lookup(path)
        if kind == "context":
            return Context(self, detail)
        iface: type[Interface] = interface if interface is not None else find_interface(typename)
        if iface.wire_name != typename:
            raise UsageError(f"{path} is a {typename}, not a {iface.wire_name}")
        proxy = _rpc.object_of_sbh(detail, iface)
        link = _rpc.connection_of(proxy)
        assert link is not None
        link.what = f"{typename} {path!r}"
        link.connect()
        with self._lock:
            self._links.append(link)
        return proxy

    def list(self, path: str = "") -> builtins.list[str]:
        """Names in the context at ``path``."""
        return [name for name, _, _ in self._kernel.List(path)]

    def entries(self, path: str = "") -> builtins.list[tuple[str, str, str]]:
        """``(name, kind, detail)`` for the context at ``path``: kind is service
        (detail: interface name), context, or link (detail: target).
        """
        return [(str(n), str(k), str(d)) for n, k, d in self._kernel.List(path)]

    def bind(self, path: str, typename: str, sbh: str) -> str:
        """Bind an SBH under ``path``; unbound when this connection closes."""
        return str(self._kernel.Bind(path, typename, sbh))

    def unbind(self, path: str) -> None:
        """Unbind something this connection bound."""
        self._kernel.Unbind(path)

    # -- serving objects ----------------------------------------------------------------

    def bind_service(self, name: str, obj: object, typename: str) -> str:
        """Serve ``obj`` as a ``typename`` service bound at ``name``; return its sid.

        Calls reach ``obj`` in this process, on the server's threads, until the
        service is unbound or this connection closes. Raises
        :class:`~kos_core.errors.NameAlreadyBound` if the name is taken and
        ``TypeError`` if ``obj`` lacks a method of the interface.
        """
        if not typename:
            raise UsageError(
                "bind_service needs the interface's wire name (e.g. 'BitBucketAPI.BitBucket')"
            )
        iface = find_interface(typename)
        missing = [m for m in iface.methods() if not callable(getattr(obj, m, None))]
        if missing:
            raise TypeError(
                f"{type(obj).__name__} does not implement {typename}: missing {missing}"
            )
        token, sbh = self._serve(obj, iface)
        try:
            sid = self.bind(name, typename, sbh)
        except BaseException:
            with self._lock:
                del self._objects[token]
            raise
        with self._lock:
            self._sids[sid] = token
        return sid

    def unbind_service(self, sid: str) -> None:
        """Unbind a service bound with :meth:`bind_service`; new clients can no longer reach
        it. Only forgets it if the kernel is already gone.
        """
        with self._lock:
            token = self._sids.pop(sid, None)
            if token is not None:
                self._objects.pop(token, None)
        with contextlib.suppress(ServiceUnavailable):
            self.unbind(sid)

    def run(self) -> None:
        """Serve bound services until :meth:`stop` is called (or a signal ends the process)."""
        while not self._stopped.wait(0.5):
            pass

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stopped.set()

    def _serve(self, obj: object, iface: type[Interface]) -> tuple[str, str]:
        """Serve ``obj``; return its token and SBH."""
        server = self._ensure_server()
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._objects[token] = (obj, iface)
        return token, wire.format_sbh(server.address, token)

    def _ensure_server(self) -> _rpc.Server:
        with self._lock:
            if self._server is None:
                tls = None
                if self._tcp_host is None:
                    where = self.socket_dir or str(paths.runtime_dir())
                    path = os.path.join(where, f"p{os.getpid()}.sock")
                    address = wire.Address(path=path)
                else:
                    address = wire.Address(host=self._tcp_host, port=0)
                    tls = _server_tls(self.name)
                self._server = _rpc.Server(
                    address, self._authorize, name=self._server_name, tls=tls
                )
                self._server.start()
            return self._server

    def _authorize(self, token: str) -> _rpc.ServerSession | None:
        with self._lock:
            for known, (obj, iface) in self._objects.items():
                if wire.tokens_equal(token, known):
                    return _rpc.ServerSession(obj, iface)
        return None

    # -- the kernel -----------------------------------------------------------------------

    def plugins(self) -> builtins.list[PluginRow]:
        """The kernel's plugin table (name, state, pid, services, uptime, last exit)."""
        return builtins.list(self._kernel.Plugins())

    def start_plugin(self, name: str, wait: bool = True, timeout: float = 30.0) -> PluginRow:
        """Start plugin ``name``; with ``wait``, return once it runs with its services
        bound (raise :class:`~kos_core.errors.KosError` saying why if it does not).
        Returns its row of :meth:`plugins`.
        """
        return self._control("Start", name, wait, timeout)

    def stop_plugin(self, name: str, wait: bool = True, timeout: float = 30.0) -> PluginRow:
        """Stop plugin ``name`` (it is not restarted); with ``wait``, until it has ended."""
        return self._control("Stop", name, wait, timeout)

    def restart_plugin(self, name: str, wait: bool = True, timeout: float = 30.0) -> PluginRow:
        """Restart plugin ``name``; with ``wait``, return once its services are bound."""
        return self._control("Restart", name, wait, timeout)

    def _control(self, action: str, name: str, wait: bool, timeout: float) -> PluginRow:
        from kos_core import _plugin_control

        getattr(self._kernel, f"{action}Plugin")(name)
        if not wait:
            return _plugin_control.row_of(self._kernel, name)
        if action == "Stop":
            return _plugin_control.wait_down(self._kernel, name, timeout)
        return _plugin_control.wait_up(self._kernel, name, timeout)

    def reload(
        self, wait: bool = True, timeout: float = 30.0
    ) -> tuple[str, builtins.list[str], builtins.list[tuple[str, str]]]:
        """Make the kernel read its setup files again and apply them (see
        ``KernelAPI.Kernel.Reload``): the directory, the files read, and ``(plugin,
        what was done)`` per changed plugin. With ``wait``, return once each plugin
        started or restarted runs with its services bound.
        """
        from kos_core import _plugin_control

        directory, files, changes = self._kernel.Reload()
        changes = [(str(name), str(what)) for name, what in changes]
        if wait:
            for name, what in changes:
                if what in ("started", "restarted"):
                    _plugin_control.wait_up(self._kernel, name, timeout)
        return str(directory), [str(f) for f in files], changes

    def watch(self, path: str = "") -> Generator[WatchEvent, None, None]:
        """Yield each service bound or unbound at or under ``path`` from now on, as a
        :class:`~kos_core.WatchEvent` (``seq, kind, path, typename``), until closed.
        Uses a connection of its own; ``kind`` ``lost`` says events were dropped.
        """
        from kos_core._watch import watch

        return watch(self._link, path)

    def get_namespace(self) -> Context:
        """The kernel's top context."""
        return Context(self, "")

    def close(self) -> None:
        """Stop serving, and close the connection to the kernel and every service
        connection made through it.
        """
        self._stopped.set()
        if self._server is not None:
            self._server.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()
        self._link.close()

    def __enter__(self) -> Kos:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _server_tls(kernel: str) -> ssl.SSLContext:
    """The TLS context this process serves TCP with: the certificate kernel ``kernel``
    issued for its run (only a process on the kernel's own machine has it).
    """
    path = paths.tls_file(kernel)
    try:
        return tls.server_context(str(path))
    except OSError as exc:
        raise KosError(
            f"cannot serve over TCP for kernel {kernel!r}: no certificate at {path}"
            f" ({exc.strerror or exc})"
        ) from None


class Context:
    """A context of a kernel's namespace; names are relative to it."""

    def __init__(self, kos: Kos, path: str) -> None:
        self._kos = kos
        self.path = path.strip("/")

    def _join(self, name: str) -> str:
        if name.startswith("/"):
            return name
        return f"{self.path}/{name}" if self.path else name

    def lookup(self, name: str, interface: type[Any] | None = None, *, wait: float = 0.0) -> Any:
        """Like :meth:`Kos.lookup`, relative to this context."""
        return self._kos.lookup(self._join(name), interface, wait=wait)  # type: ignore[arg-type]

    def list(self) -> list[str]:
        """Names in this context."""
        return self._kos.list(self.path)

    def __repr__(self) -> str:
        return f"<kos context /{self.path} of kernel {self._kos.name!r}>"


def run_kp(kp: Any, kernel: str | None = None) -> Any:
    """Run a KP-style object: ``kp.__main__(kos)`` with a connection to the kernel.

    The same class can serve as a plugin (``kp.__main__(*pluginlib.register(name))``)
    or, through this, as a client; it tells which from whether it gets ``ns``.
    Returns what ``__main__`` returns; the connection is closed afterwards.
    """
    with connect(kernel) as kos:
        return kp.__main__(kos)


def connect(kernel: str | None = None) -> Kos:
    """Connect to a running kernel.

    ``kernel`` defaults to ``$KOS_KERNEL``, else the short host name. Raises
    :class:`~kos_core.errors.KernelUnreachable` if it is not running.
    """
    name = paths.kernel_name(kernel)
    return Kos(name, *kernel_link(name))
