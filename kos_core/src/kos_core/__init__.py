"""kos: a plugin host for Python.

Clients connect to a kernel and call services directly in the processes that serve
them::

    import kos_core

    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("greeting", b"hello")

Plugin authors use :mod:`kos_core.pluginlib`, :mod:`kos_core.interface` and the hooks
in :mod:`kos_core.hookspecs`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from kos_core.errors import (
    AuthenticationFailed,
    CallTimeout,
    CommunicationError,
    ConnectionLost,
    InterfaceError,
    InterfaceNotFound,
    KernelUnreachable,
    KosError,
    KPError,
    MigrationError,
    NameAlreadyBound,
    NameNotFound,
    NamespaceError,
    NotAContext,
    PermissionDenied,
    ProtocolMismatch,
    RegistrationRefused,
    RemoteError,
    ServiceUnavailable,
    SetupFileError,
    UsageError,
    WorldUnavailable,
)
from kos_core.hookspecs import PluginSpec, Setting, hookimpl
from kos_core.interface import Interface, raises

if TYPE_CHECKING:
    from kos_core._client import Context, Kos, connect, run_kp

_LAZY = {"Context", "Kos", "connect", "run_kp"}


def __getattr__(name: str) -> Any:
    # The client pulls in rpyc; import it on first use so `kos --help` stays fast.
    if name in _LAZY:
        from kos_core import _client

        return getattr(_client, name)
    raise AttributeError(f"module 'kos_core' has no attribute {name!r}")


__all__ = [
    "AuthenticationFailed",
    "CallTimeout",
    "CommunicationError",
    "ConnectionLost",
    "Context",
    "Interface",
    "InterfaceError",
    "InterfaceNotFound",
    "KPError",
    "KernelUnreachable",
    "Kos",
    "KosError",
    "MigrationError",
    "NameAlreadyBound",
    "NameNotFound",
    "NamespaceError",
    "NotAContext",
    "PermissionDenied",
    "PluginSpec",
    "ProtocolMismatch",
    "RegistrationRefused",
    "RemoteError",
    "ServiceUnavailable",
    "Setting",
    "SetupFileError",
    "UsageError",
    "WorldUnavailable",
    "__version__",
    "connect",
    "hookimpl",
    "raises",
    "run_kp",
]
