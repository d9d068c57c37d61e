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

import importlib

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

TYPE_CHECKING = False  # as typing's, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from kos_core._client import Context, Kos, connect, run_kp
    from kos_core.hookspecs import PluginSpec, Setting, hookimpl
    from kos_core.interface import Interface, raises

# Imported on first use, so that `import kos_core` is cheap: the client pulls in rpyc,
# the hooks pluggy, interfaces inspect and typing (kos_core/tests/test_startup.py).
_LAZY = {
    "Context": "kos_core._client",
    "Kos": "kos_core._client",
    "connect": "kos_core._client",
    "run_kp": "kos_core._client",
    "PluginSpec": "kos_core.hookspecs",
    "hookimpl": "kos_core.hookspecs",
    "Setting": "kos_core.hookspecs",
    "Interface": "kos_core.interface",
    "raises": "kos_core.interface",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kos_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


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
