"""The kernel as one connection sees it: each request checked against the rights of
the credential the connection presented, then handed to the kernel.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from kos_core import __version__
from kos_core._kernel import access, namespace, reload
from kos_core._kernel.access import Grant
from kos_core._kernel.events import Event
from kos_core._kernel.store import ServiceNode
from kos_core._kp import migration
from kos_core._kp.policy import reachable_sbh
from kos_core._kp.session import KPOperations
from kos_core._kp.station import Station
from kos_core._net import wire
from kos_core._os import paths
from kos_core.errors import NameNotFound, PermissionDenied, UsageError
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.kernel_api import KPTraveller, PluginRow, WorldRow

if TYPE_CHECKING:
    from kos_core._kernel.core import KernelCore

#: The largest request the kernel accepts: names and paths are small.
MAX_KERNEL_REQUEST = 64 * 1024


class KernelServant(KPOperations):
    """The kernel as one connection sees it (implements ``KernelAPI.Kernel``), with the
    rights of the credential it presented.
    """

    _ids = itertools.count(1)
    kos_max_request = MAX_KERNEL_REQUEST
    kos_larger_requests = migration.LARGER_REQUESTS  # the two calls that carry a KP's state

    def __init__(self, kernel: KernelCore, grant: Grant) -> None:
        self._kernel = kernel
        self.grant = grant
        self.owner = f"conn:{next(self._ids)}"
        self.plugin: str | None = None

    @property
    def station(self) -> Station:
        """The kernel's station (KPs)."""
        return self._kernel.station

    def Lookup(self, path: str) -> tuple[str, str, str]:
        self.grant.check_look(path)
        world = self._kernel.world
        if world is not None and world.covers(path):
            return world.lookup(path)
        try:
            node = self._kernel.namespace.lookup(path)
        except NameNotFound as exc:
            raise self._kernel.supervisor.why_not_bound(path, exc, self._kernel.reserved) from None
        if isinstance(node, ServiceNode):
            sbh = node.sbh
            if self.grant.kind == access.KP:  # no network: the server's Unix socket
                sbh = reachable_sbh(sbh, self._kernel.server_pid(node.owner), paths.runtime_dir())
            return ("service", node.typename, sbh)
        return ("context", "", namespace.join(namespace.split_path(path)))

    def List(self, path: str) -> list[tuple[str, str, str]]:
        self.grant.check_look(path)
        world = self._kernel.world
        if world is not None and world.covers(path):
            return world.list(path)
        entries = self._kernel.namespace.list(path)
        if world is not None and not namespace.split_path(path):
            entries = sorted([*entries, ("world", "context", "")])
        return entries

    def Bind(self, path: str, typename: str, sbh: str) -> str:
        wire.parse_sbh(sbh)
        self.grant.check_bind(path, self._kernel.reserved)
        bound = self._kernel.namespace.bind(path, ServiceNode(typename, sbh, self.owner))
        self._kernel.owner_changed(self.owner)
        return bound

    def Unbind(self, path: str) -> None:
        self.grant.check_bind(path, self._kernel.reserved)
        self._kernel.namespace.unbind(path, owner=self.owner)
        self._kernel.owner_changed(self.owner)
        if self.plugin is not None:
            self._kernel.supervisor.note_unbound(self.plugin, path)

    def Events(
        self, path: str, after: int, timeout: float
    ) -> tuple[int, list[tuple[int, str, str, str]]]:
        self.grant.check_look(path)
        prefix = namespace.split_path(path)

        def wanted(event: Event) -> bool:
            parts = namespace.split_path(event[2])
            if parts[: len(prefix)] != prefix:
                return False
            try:
                self.grant.check_look(event[2])
            except PermissionDenied:
                return False
            return True

        return self._kernel.namespace.events.since(int(after), float(timeout), wanted)

    def RegisterPlugin(self, name: str, pid: int, health_sbh: str = "") -> PluginEntry:
        self.grant.check_register(name)
        return self._kernel.register_plugin(self, name, pid, health_sbh)

    def Plugins(self) -> list[PluginRow]:
        self.grant.check_operator("the plugin table")
        return self._kernel.plugin_rows()

    def StartPlugin(self, name: str) -> str:
        self.grant.check_operator("starting a plugin")
        return self._kernel.supervisor.start(name)

    def StopPlugin(self, name: str) -> str:
        self.grant.check_operator("stopping a plugin")
        return self._kernel.supervisor.stop(name)

    def RestartPlugin(self, name: str) -> str:
        self.grant.check_operator("restarting a plugin")
        return self._kernel.supervisor.restart(name)

    def Reload(self) -> tuple[str, list[str], list[tuple[str, str]]]:
        self.grant.check_operator("reloading the setup files")
        reload.log.info("reload asked by the operator")
        return reload.reload_setup(self._kernel)

    def LogPath(self, name: str) -> str:
        self.grant.check_operator("a plugin's log")
        if name.startswith("kp/"):
            return self.station.known_log(name[3:])
        record = self._kernel.supervisor.records.get(name)
        if record is None or record.command is None:
            raise NameNotFound(f"no plugin named {name!r} is run by this kernel")
        return str(self._kernel.supervisor.log_path(name))

    def World(self) -> list[WorldRow]:
        self.grant.check_look("world")
        if self._kernel.world is None:
            raise UsageError(f"kernel {self._kernel.name!r} is alone (run it with --world)")
        return self._kernel.world.rows()

    def Info(self) -> tuple[str, int, str]:
        return (self._kernel.name, os.getpid(), __version__)

    def closed(self) -> None:
        """The connection ended: forget what it bound and its registration."""
        self._kernel.session_closed(self)


class StationServant:
    """The kernel as the station of another kernel of its world sees it (implements
    ``KernelAPI.Kernel``): ``ReceiveKP`` and nothing else; every other method raises
    :class:`PermissionDenied`. The KP's origin is the kernel its certificate names.
    """

    kos_max_request = MAX_KERNEL_REQUEST
    kos_larger_requests = {"ReceiveKP": migration.MAX_REQUEST}

    def __init__(self, station: Station, grant: Grant) -> None:
        self.station = station
        self.grant = grant

    def ReceiveKP(self, kp: KPTraveller, state: bytes) -> str:
        traveller = migration.Traveller(*kp, state)
        origin = migration.arrived_from(self.grant.name, traveller.origin)
        return migration.receive(self.station, dataclasses.replace(traveller, origin=origin))

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        if name not in KernelInterface.methods():
            raise AttributeError(name)

        def refused(*args: object) -> NoReturn:
            raise PermissionDenied(f"{self.grant} may hand this kernel a KP, not call {name}")

        return refused


class PluginEntry:
    """A registered plugin (implements ``KernelAPI.PluginEntry``)."""

    def __init__(self, kernel: KernelCore, name: str) -> None:
        self._kernel = kernel
        self._name = name

    def Name(self) -> str:
        return self._name

    def Context(self) -> str:
        return f"plugins/{self._name}"

    def Services(self) -> list[str]:
        return self._kernel.namespace.services_of(f"plugin:{self._name}")
