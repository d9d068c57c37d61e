"""pluginlib: what a plugin calls to join a kernel and serve its services.

A plugin is a script (or module) that registers, binds its services and serves::

    from kos_core import pluginlib

    def main() -> None:
        kos, ns = pluginlib.register("bitbucket")
        sid = kos.bind_service("bitbucket", BitBucket(102400), "BitBucketAPI.BitBucket")
        print("bitbucket plugin registered", sid)
        try:
            kos.run()
        finally:
            kos.unbind_service(sid)
            print("bitbucket plugin exiting")

The kernel starts it as ``python -m <module> -n KERNEL`` in its own directory; it
can also be started by hand (``python myplugin.py -n NAME``, or without ``-n`` to
join the kernel named by ``$KOS_KERNEL`` or the short host name).

A plugin's own settings come from its section of the setup files. Declare them in its
:class:`~kos_core.hookspecs.PluginSpec` (``settings=(Setting(...), ...)``): the kernel
then checks them when it reads the files, and :func:`settings` gives their values,
typed, with the defaults applied::

    TIMEOUT = Setting("timeout", float, 30.0, "seconds a request may take", minimum=0)

    values = pluginlib.settings()
    timeout = values[TIMEOUT]  # a float; values["timeout"] works too

:func:`options` gives the whole section as strings, declared or not.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import getopt
import json
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kos_core import _rpc
from kos_core._children.factory import CHILD_TCP_ENV, end_connection, serve_child, spawnserver
from kos_core._children.forkserver import ChildFactory
from kos_core._children.limits import ChildLimitReached, ChildLimits
from kos_core._client import Context, Kos, kernel_link
from kos_core._kernel import access
from kos_core._os import paths, processes
from kos_core._setting import Setting, SettingValues, setting_values
from kos_core._world.member import EXPORT_ENV
from kos_core.errors import KosError, RegistrationRefused, UsageError
from kos_core.kernel_api import PluginHealth

__all__ = [
    "ChildFactory",
    "ChildLimitReached",
    "ChildLimits",
    "PluginKos",
    "Setting",
    "SettingValues",
    "end_connection",
    "object_of_sbh",
    "options",
    "register",
    "serve",
    "serve_child",
    "settings",
    "setup_file",
    "spawnserver",
    "state_dir",
]

object_of_sbh = _rpc.object_of_sbh


def register(
    plugin_name: str,
    kernel_name: str | None = None,
    shortopts: str = "",
    longopts: Sequence[str] = (),
) -> tuple[PluginKos, Context]:
    """Register this process as plugin ``plugin_name`` with a kernel.

    Parses ``sys.argv`` itself: ``-n NAME`` / ``--kernel NAME`` always override
    ``kernel_name``; pass the plugin's own getopt ``shortopts`` and ``longopts`` so
    they are accepted (the plugin parses them again itself). Raises
    ``getopt.GetoptError`` on a bad command line.

    Returns ``(kos, ns)``: the plugin's KOS object and its private context
    ``plugins/<plugin_name>``, which holds ``kos`` (the kernel's top context) and
    ``world`` (the world root). Ends the process with exit status 1 and one line
    on stderr if the kernel cannot be found, the name is taken, or registration
    is refused. Afterwards Ctrl-C (``KeyboardInterrupt``) and SIGTERM
    (``SystemExit(0)``) end the plugin, running its ``finally`` blocks.
    """
    opts, _ = getopt.getopt(sys.argv[1:], "n:" + shortopts, ["kernel=", *longopts])
    _install_signal_handlers()
    for opt, value in opts:
        if opt in ("-n", "--kernel"):
            kernel_name = value
    try:
        paths.check_name(plugin_name, "plugin")
        kernel = paths.kernel_name(kernel_name)
    except KosError as exc:
        _fail(plugin_name, str(exc))
    processes.die_with_parent()
    try:
        link, tcp_host = kernel_link(kernel, access.take_credential())
    except KosError as exc:
        _fail(plugin_name, str(exc))
    export = os.environ.get(EXPORT_ENV)
    if export == "no":  # in a world, a plugin that does not export stays local
        tcp_host = None
    elif export == "yes" and tcp_host is not None:  # its children are reachable too
        os.environ[CHILD_TCP_ENV] = f"{kernel} {tcp_host}"
    kos = PluginKos(kernel, link, plugin_name, tcp_host)
    try:
        health_sbh = kos._serve_health()
        entry = kos.kernel.RegisterPlugin(plugin_name, os.getpid(), health_sbh)
        context = entry.Context()
    except RegistrationRefused as exc:
        kos.close()
        _fail(plugin_name, f"registration refused by kernel {kernel!r}: {exc}")
    except KosError as exc:
        kos.close()
        _fail(plugin_name, f"cannot register with kernel {kernel!r}: {exc}")
    kos._arm()
    _registered.update(plugin=plugin_name, kernel=kernel)
    return kos, Context(kos, context)


#: the plugin name and kernel this process registered with (:func:`register`)
_registered: dict[str, str] = {}


def state_dir(plugin_name: str | None = None, kernel_name: str | None = None) -> Path:
    """The plugin's own directory for files it keeps between runs, made private (0700)
    if it does not exist: ``<kernel's state dir>/plugins/<plugin>``, the working
    directory the kernel starts the plugin in. Use it rather than the working
    directory, which is wherever a plugin started by hand was started.

    The names default to those :func:`register` was called with (the kernel: as
    :func:`register` finds it); a plugin that has not registered passes its name.
    """
    plugin = plugin_name or _registered.get("plugin")
    if not plugin:
        raise UsageError("state_dir(): call register() first, or pass the plugin's name")
    paths.check_name(plugin, "plugin")
    kernel = kernel_name or _registered.get("kernel") or paths.kernel_name(None)
    return paths.make_private_dir(paths.plugin_dir(paths.state_dir(kernel), plugin))


def serve(
    plugin_name: str,
    service_name: str,
    typename: str,
    make_service: Callable[[PluginKos], object],
    *,
    shortopts: str = "",
    longopts: Sequence[str] = (),
) -> None:
    """The usual main of a plugin with one service: register, build the service with
    ``make_service(kos)``, bind it at ``service_name``, serve until stopped, unbind.

    ``make_service`` may raise ``ValueError`` for a bad setting: the plugin then ends
    with exit status 2 and the message on one line.
    """
    kos, _ns = register(plugin_name, None, shortopts, longopts)
    try:
        service = make_service(kos)
    except ValueError as exc:
        print(f"kos plugin {plugin_name}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    sid = kos.bind_service(service_name, service, typename)
    print(f"{plugin_name} plugin registered {sid}", flush=True)
    try:
        kos.run()
    finally:
        kos.unbind_service(sid)


def settings(
    declared: Sequence[Setting[Any]] | None = None, section: Mapping[str, str] | None = None
) -> SettingValues:
    """The values of this plugin's declared settings: each one its section of the setup
    files sets (``[DEFAULTS]`` merged in), converted to the setting's type, and the
    default of every other one (all defaults when started by hand).

    ``declared``: the settings to read; by default those the registered plugin's
    :class:`~kos_core.hookspecs.PluginSpec` declares (call :func:`register` first).
    A plugin run from a ``file:`` script has no ``PluginSpec``: it passes its own.
    ``section``: the keys to read them from (default: :func:`options`), for tests.

    The kernel has checked the values already; a bad one (when started by hand with
    ``$KOS_PLUGIN_OPTIONS``) raises ``ValueError`` naming the key, which
    :func:`serve` turns into one line and exit status 2. So does a plugin that
    declares no settings.
    """
    name = _current.plugin_name if _current is not None else None
    if declared is None:
        declared = _declared_settings(name)
    try:
        return setting_values(declared, options() if section is None else section)
    except ValueError as exc:
        if name is None:
            raise
        raise ValueError(f"bad setting in [{name}]: {exc}") from None


def _declared_settings(name: str | None) -> Sequence[Setting[Any]]:
    from kos_core._kernel.discovery import installed_spec

    if name is None:
        raise RuntimeError("pluginlib.settings(): call pluginlib.register() first")
    spec = installed_spec(name)
    if isinstance(spec, str):
        raise ValueError(f"plugin {name} cannot be loaded: {spec}")
    if spec is None or spec.settings is None:
        raise ValueError(
            f"plugin {name} declares no settings: give its PluginSpec settings=(...),"
            " or pass them to pluginlib.settings()"
        )
    return spec.settings


def options() -> dict[str, str]:
    """The plugin's section of the setup files (every key, interpolated, ``[DEFAULTS]``
    merged in) as strings, as the kernel passed it; empty when started by hand.
    Declared settings are better read with :func:`settings`: checked and typed.
    """
    raw = os.environ.get("KOS_PLUGIN_OPTIONS", "")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def setup_file() -> str:
    """The setup file that holds this plugin's section, or where its section would go
    (``plugins`` in the kernel's configuration directory); empty when started by hand.
    For messages that tell the operator which file to edit.
    """
    return os.environ.get("KOS_PLUGIN_SETUP_FILE", "")


class _Health:
    """Implements ``KernelAPI.PluginHealth``: answering at all is the point."""

    def Ping(self) -> int:
        return os.getpid()


_current: PluginKos | None = None


def _install_signal_handlers() -> None:
    # Installed before registering, so a SIGTERM at any point runs the plugin's cleanup.
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGTERM, _on_sigterm)


def _ignore_further_signals() -> None:
    # One interrupt ends the plugin; a second (Ctrl-C reaches the whole process
    # group while the kernel also sends SIGTERM) must not cut its cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _on_sigint(signum: int, frame: Any) -> None:
    _ignore_further_signals()
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: Any) -> None:
    _ignore_further_signals()
    kos = _current
    if kos is not None and kos._kernel_lost:
        print(
            f"kos plugin {kos.plugin_name}: kernel {kos.name!r} went away; exiting",
            file=sys.stderr,
            flush=True,
        )
    raise SystemExit(0)


def _fail(plugin_name: str, message: str) -> NoReturn:
    print(f"kos plugin {plugin_name}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


class PluginKos(Kos):
    """The KOS object a plugin gets from :func:`register`: a :class:`~kos_core.Kos`
    connection plus service binding and the serve loop.
    """

    def __init__(
        self, name: str, link: _rpc.ClientConnection, plugin_name: str, tcp_host: str | None = None
    ) -> None:
        super().__init__(name, link, tcp_host)
        self.plugin_name = plugin_name
        self._services.server_name = f"plugin-{plugin_name}"
        self._kernel_lost = False

    def _serve_health(self) -> str:
        """Serve the kernel's health pings; return the SBH to give it."""
        return self._services.serve(_Health(), PluginHealth)[1]

    def _arm(self) -> None:
        global _current
        _current = self
        atexit.register(self.close)
        conn = self._link.connect()
        threading.Thread(
            target=self._watch_kernel, args=(conn.fileno(),), name="kernel-lifeline", daemon=True
        ).start()

    def _watch_kernel(self, fd: int) -> None:
        # Wait for the kernel's end of the connection to close without reading from
        # it (callers do the reading); then end this plugin like a SIGTERM would.
        poller = select.poll()
        poller.register(fd, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        try:
            while not poller.poll(1000):
                if self._services.stopped.is_set():
                    return
        except OSError:
            pass
        if self._services.stopped.is_set():
            return
        self._kernel_lost = True
        self._services.stopped.set()
        with contextlib.suppress(OSError):  # already stopping: the handler ignores it
            _thread.interrupt_main(signal.SIGTERM)
