"""The client API: connect to a kernel, look up services, call them directly."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from kos_core import _rpc
from kos_core._client.link import kernel_link
from kos_core._client.serving import LocalServices
from kos_core._os import paths
from kos_core.errors import UsageError
from kos_core.interface import Interface, find_interface
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.kernel_api import PluginRow

if TYPE_CHECKING:
    from kos_core._client.watch import WatchEvent

_T = TypeVar("_T")

__all__ = ["Context", "Kos", "connect", "run_kp"]


class Kos:
    """A connection to one kernel. Use :func:`connect` to make one.

    Services found through it are called directly in the processes that serve
    them; closing it closes those connections too.
    """

    def __init__(self, name: str, link: _rpc.ClientConnection, tcp_host: str | None = None) -> None:
        self.name = name
        self._link = link
        self._kernel: Any = _rpc.make_proxy(KernelInterface, link)
        self._links: list[_rpc.ClientConnection] = []
        self._lock = threading.Lock()
        #: the objects this connection serves, once it serves any
        self._services = LocalServices(name, tcp_host, self.bind, self.unbind)

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
            from kos_core._client.plugin_control import wait_bound

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

    # -- serving objects (see :class:`LocalServices`) ------------------------------------

    def bind_service(self, name: str, obj: object, typename: str) -> str:
        """Serve ``obj`` as a ``typename`` service bound at ``name``; return its sid.

        Calls reach ``obj`` in this process, on the server's threads, until the
        service is unbound or this connection closes. Raises
        :class:`~kos_core.errors.NameAlreadyBound` if the name is taken and
        ``TypeError`` if ``obj`` lacks a method of the interface.
        """
        return self._services.bind_service(name, obj, typename)

    def unbind_service(self, sid: str) -> None:
        """Unbind a service bound with :meth:`bind_service`; new clients can no longer reach
        it. Only forgets it if the kernel is already gone.
        """
        self._services.unbind_service(sid)

    def run(self) -> None:
        """Serve bound services until :meth:`stop` is called (or a signal ends the process)."""
        self._services.run()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._services.stop()

    @property
    def socket_dir(self) -> str | None:
        """Where served objects listen on a Unix socket (default: the runtime directory)."""
        return self._services.socket_dir

    @socket_dir.setter
    def socket_dir(self, where: str | None) -> None:
        self._services.socket_dir = where

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
        from kos_core._client import plugin_control

        getattr(self._kernel, f"{action}Plugin")(name)
        if not wait:
            return plugin_control.row_of(self._kernel, name)
        if action == "Stop":
            return plugin_control.wait_down(self._kernel, name, timeout)
        return plugin_control.wait_up(self._kernel, name, timeout)

    def reload(
        self, wait: bool = True, timeout: float = 30.0
    ) -> tuple[str, builtins.list[str], builtins.list[tuple[str, str]]]:
        """Make the kernel read its setup files again and apply them (see
        ``KernelAPI.Kernel.Reload``): the directory, the files read, and ``(plugin,
        what was done)`` per changed plugin. With ``wait``, return once each plugin
        started or restarted runs with its services bound.
        """
        from kos_core._client import plugin_control

        directory, files, changes = self._kernel.Reload()
        changes = [(str(name), str(what)) for name, what in changes]
        if wait:
            for name, what in changes:
                if what in ("started", "restarted"):
                    plugin_control.wait_up(self._kernel, name, timeout)
        return str(directory), [str(f) for f in files], changes

    def watch(self, path: str = "") -> Generator[WatchEvent, None, None]:
        """Yield each service bound or unbound at or under ``path`` from now on, as a
        :class:`~kos_core.WatchEvent` (``seq, kind, path, typename``), until closed.
        Uses a connection of its own; ``kind`` ``lost`` says events were dropped.
        """
        from kos_core._client.watch import watch

        return watch(self._link, path)

    def get_namespace(self) -> Context:
        """The kernel's top context."""
        return Context(self, "")

    def close(self) -> None:
        """Stop serving, and close the connection to the kernel and every service
        connection made through it.
        """
        self._services.close()
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
