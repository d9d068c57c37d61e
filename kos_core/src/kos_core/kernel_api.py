"""``KernelAPI``: what a kernel offers to clients and plugins over its socket."""

from __future__ import annotations

from kos_core.errors import (
    KPError,
    MigrationError,
    NameAlreadyBound,
    NameNotFound,
    NotAContext,
    PermissionDenied,
    RegistrationRefused,
    UsageError,
    WorldUnavailable,
)
from kos_core.interface import Interface, raises

__all__ = [
    "KPRow",
    "KPTraveller",
    "Kernel",
    "PluginEntry",
    "PluginHealth",
    "PluginRow",
    "WorldRow",
]

#: One row of :meth:`Kernel.Plugins`: name, state, pid (0 if none), services bound,
#: seconds since start (0 if not running), last exit reason ("" if none), restarts.
PluginRow = tuple[str, str, int, list[str], float, str, int]
#: One row of :meth:`Kernel.World`: kernel name, host, TLS address, seconds since it
#: started, the names it exports.
WorldRow = tuple[str, str, str, float, list[str]]

#: One row of :meth:`Kernel.KPs`: id, class, state (starting, running, ended), pid (0
#: once ended), CPU seconds used, where it came from, how it ended ("" while it runs),
#: seconds it has run (or ran).
KPRow = tuple[str, str, str, int, float, str, str, float]

#: A KP on its way to :meth:`Kernel.ReceiveKP`: ``FILE:CLASS``, its source, its
#: arguments, the limits it asked for ("" for the defaults), where it comes from.
KPTraveller = tuple[str, str, list[str], str, str]


class PluginHealth(Interface, wire_name="KernelAPI.PluginHealth"):
    """Served by every plugin for its kernel's health checks."""

    def Ping(self) -> int:
        """Answer at once with the plugin's pid."""
        raise NotImplementedError


class PluginEntry(Interface, wire_name="KernelAPI.PluginEntry"):
    """A registered plugin, as returned by :meth:`Kernel.RegisterPlugin`."""

    def Name(self) -> str:
        """The plugin's name."""
        raise NotImplementedError

    def Context(self) -> str:
        """The path of the plugin's private context (``plugins/<name>``)."""
        raise NotImplementedError

    def Services(self) -> list[str]:
        """Paths of the services the plugin has bound."""
        raise NotImplementedError


class Kernel(Interface, wire_name="KernelAPI.Kernel"):
    """The kernel: its namespace and its receiver (plugin registration)."""

    @raises(NameNotFound, NotAContext, PermissionDenied, UsageError, WorldUnavailable)
    def Lookup(self, path: str) -> tuple[str, str, str]:
        """Resolve ``path``: ``("service", typename, sbh)`` or ``("context", "", path)``."""
        raise NotImplementedError

    @raises(NameNotFound, NotAContext, PermissionDenied, UsageError, WorldUnavailable)
    def List(self, path: str) -> list[tuple[str, str, str]]:
        """Entries of a context: ``(name, kind, detail)``, kind service/context/link."""
        raise NotImplementedError

    @raises(NameAlreadyBound, NameNotFound, NotAContext, PermissionDenied, UsageError)
    def Bind(self, path: str, typename: str, sbh: str) -> str:
        """Bind a service; it is unbound when this connection closes. Returns the path."""
        raise NotImplementedError

    @raises(NameNotFound, NotAContext, PermissionDenied, UsageError)
    def Unbind(self, path: str) -> None:
        """Unbind a service this connection bound."""
        raise NotImplementedError

    @raises(PermissionDenied, RegistrationRefused, UsageError)
    def RegisterPlugin(self, name: str, pid: int, health_sbh: str = "") -> PluginEntry:
        """Register this connection as plugin ``name`` (process ``pid``).

        Creates ``plugins/<name>`` holding ``kos`` and ``world``. The registration,
        and everything the plugin bound, ends when this connection closes. The kernel
        pings ``health_sbh`` (a ``KernelAPI.PluginHealth``) to see the plugin answers.
        """
        raise NotImplementedError

    @raises(PermissionDenied)
    def Plugins(self) -> list[PluginRow]:
        """The plugin table, one row per known plugin."""
        raise NotImplementedError

    @raises(NameNotFound, PermissionDenied, UsageError)
    def StartPlugin(self, name: str) -> str:
        """Start a plugin the kernel supervises; returns its state."""
        raise NotImplementedError

    @raises(NameNotFound, PermissionDenied, UsageError)
    def StopPlugin(self, name: str) -> str:
        """Stop a plugin and keep it stopped; returns its state."""
        raise NotImplementedError

    @raises(NameNotFound, PermissionDenied, UsageError)
    def RestartPlugin(self, name: str) -> str:
        """Stop a plugin and start it again; returns its state."""
        raise NotImplementedError

    @raises(NameNotFound, NotAContext, PermissionDenied, UsageError)
    def Events(
        self, path: str, after: int, timeout: float
    ) -> tuple[int, list[tuple[int, str, str, str]]]:
        """Services bound and unbound at or under ``path`` after event number ``after``
        (``-1``: from now), waiting up to ``timeout`` seconds (at most 10) for one.

        Returns the number to pass as ``after`` next, and the events: ``(number, kind,
        path, interface)``, kind ``bind`` or ``unbind``, or ``lost`` (the caller fell
        so far behind that events were dropped; it goes on from the oldest kept).
        Only paths this connection may look up are reported.
        """
        raise NotImplementedError

    @raises(PermissionDenied, UsageError)
    def Reload(self) -> tuple[str, list[str], list[tuple[str, str]]]:
        """Read the setup files again and apply them: start, stop or restart exactly the
        plugins whose settings changed (a new section becomes a plugin; a removed one is
        stopped and forgotten). Returns the configuration directory, the files read and
        ``(plugin, what was done)`` per change: started, stopped, restarted, or updated
        (a plugin that is not running; its new settings apply at its next start).

        A bad file changes nothing: :class:`UsageError` saying ``file:line: what``.
        """
        raise NotImplementedError

    @raises(NameNotFound, PermissionDenied)
    def LogPath(self, name: str) -> str:
        """The file a supervised plugin's output goes to."""
        raise NotImplementedError

    @raises(KPError, PermissionDenied, UsageError)
    def SubmitKP(
        self, target: str, source: str, args: list[str], limits: str, unconfined: bool = False
    ) -> str:
        """Run KP ``target`` (``FILE:CLASS``; ``source`` is the file's text) in a confined
        process of its own, with ``args``; return its id once its ``__main__`` runs.

        ``limits`` is ``cpu=SECONDS,mem=MiB,wall=SECONDS`` (any of them, or ""); the
        station refuses what it cannot confine unless ``unconfined``.
        """
        raise NotImplementedError

    @raises(PermissionDenied)
    def KPs(self) -> list[KPRow]:
        """The KPs this kernel runs, and those that ended (with how)."""
        raise NotImplementedError

    @raises(KPError, PermissionDenied)
    def KillKP(self, kp: str) -> str:
        """End KP ``kp`` (SIGKILL, with every process it started); returns its state.

        A KP that is moving is killed once its migration is over if it stayed; if it
        moved, the answer is where it went (``migrated to B (KP <id>)``).
        """
        raise NotImplementedError

    @raises(PermissionDenied, UsageError, WorldUnavailable)
    def World(self) -> list[WorldRow]:
        """Every kernel of this kernel's world, from its cache."""
        raise NotImplementedError

    @raises(MigrationError, PermissionDenied)
    def MigrateKP(self, kernel: str, state: bytes) -> str:
        """(A KP's own call.) Move the calling KP to ``kernel``, with ``state`` (its
        attributes as plain data): its new id there, once its ``__main__`` runs there;
        the caller's process is ended first, so it never sees the answer.
        """
        raise NotImplementedError

    @raises(MigrationError, PermissionDenied)
    def ReceiveKP(self, kp: KPTraveller, state: bytes) -> str:
        """(A station's call.) Run KP ``kp`` arriving from another kernel, ``state`` its
        attributes, if this kernel's ``[kp-access]`` accepts it; its id here once its
        ``__main__`` runs.
        """
        raise NotImplementedError

    def Info(self) -> tuple[str, int, str]:
        """``(kernel name, kernel pid, kos version)``."""
        raise NotImplementedError
