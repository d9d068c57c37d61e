"""The kos exception tree.

Every error kos raises on purpose derives from :class:`KosError`::

    KosError
    ├── UsageError                  bad arguments given to a kos API or command
    ├── SetupFileError              a plugin setup file is malformed (file, line, what)
    ├── CommunicationError          talking to another kos process failed (target, method)
    │   ├── KernelUnreachable       no kernel by that name, or it does not answer
    │   ├── AuthenticationFailed    the peer refused our credentials (or we refused theirs)
    │   ├── ProtocolMismatch        the peer speaks another kos protocol (or sent nonsense)
    │   └── ServiceUnavailable      the process serving an object is gone or not answering
    │       ├── CallTimeout         a call got no reply in time (its connection is dropped)
    │       └── ConnectionLost      the serving process died or the connection broke
    ├── RegistrationRefused         the kernel refused a plugin's registration
    ├── PermissionDenied            the credential does not allow what was asked
    ├── KPError                     a KP cannot be run, found or confined
    │   └── MigrationError          a KP cannot move (it keeps running where it was)
    ├── NamespaceError              a namespace operation failed
    │   ├── NameNotFound            lookup/unbind of a name that is not bound
    │   ├── NameAlreadyBound        bind of a name that is already bound
    │   └── NotAContext             a path walks through something that is not a context
    ├── WorldUnavailable            the world's etcd cannot be reached (local names still work)
    ├── RemoteError                 the remote side failed in a way its interface does not declare
    ├── InterfaceNotFound           no installed distribution declares this interface
    └── InterfaceError              base of the exceptions interfaces declare
                                    (BitBucketAPI.BucketFull, FileAPI.FileIOError, ...)
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "CallTimeout",
    "CommunicationError",
    "ConnectionLost",
    "InterfaceError",
    "InterfaceNotFound",
    "KPError",
    "KernelUnreachable",
    "KosError",
    "MigrationError",
    "NameAlreadyBound",
    "NameNotFound",
    "NamespaceError",
    "NotAContext",
    "PermissionDenied",
    "ProtocolMismatch",
    "RegistrationRefused",
    "RemoteError",
    "ServiceUnavailable",
    "SetupFileError",
    "UsageError",
    "WorldUnavailable",
]


class KosError(Exception):
    """Root of every error kos raises on purpose.

    A subclass with a non-empty ``wire_name`` may be declared by an interface method
    (see :func:`kos_core.interface.raises`) and then crosses the wire as itself.
    """

    wire_name: str = ""


class UsageError(KosError):
    """Bad arguments given to a kos API or command."""

    wire_name = "KernelAPI.UsageError"


class SetupFileError(KosError):
    """A plugin setup file is malformed.

    ``str()`` gives ``path:line: message``, the form editors and compilers use.
    """

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class CommunicationError(KosError):
    """Talking to another kos process failed: no kernel, no answer, a broken connection,
    refused credentials, another protocol.

    ``target`` names what the connection was made for (``"BitBucket at kos+unix://..."``,
    ``"kernel 'default'"``; never its credential) and ``method`` the call it concerns;
    each is ``None`` when not known, and ``str()`` shows both when set.
    """

    def __init__(self, message: str = "", *, target: str | None = None, method: str | None = None):
        super().__init__(message)
        self.detail = message
        self.target = target
        self.method = method

    def __str__(self) -> str:
        where = [self.target] if self.target else []
        if self.method:
            where.append(f"{self.method}()")
        return ": ".join([*where, self.detail])

    def concerning(self, target: str, method: str | None = None) -> CommunicationError:
        """Fill in ``target`` and ``method`` where not already known; returns ``self``."""
        self.target = self.target or target
        self.method = self.method or method
        return self


class KernelUnreachable(CommunicationError):
    """No kernel by that name is running, or it does not answer."""


class AuthenticationFailed(CommunicationError):
    """The peer refused our credentials, or sent bytes that are not a kos handshake."""


class ProtocolMismatch(CommunicationError):
    """The peer speaks another version of the kos protocol, or sent a reply that this
    client cannot decode.
    """


class RegistrationRefused(KosError):
    """The kernel refused a plugin's registration (for example: the name is taken)."""

    wire_name = "KernelAPI.RegistrationRefused"


class PermissionDenied(KosError):
    """The connection's credential does not allow what was asked (a plugin stopping
    another plugin, binding a name it does not declare, ...).
    """

    wire_name = "KernelAPI.PermissionDenied"


class KPError(KosError):
    """A KP cannot be run, found or confined (the station says why)."""

    wire_name = "KernelAPI.KPError"


class MigrationError(KPError):
    """A KP cannot move: its state is not plain data, the destination refused it or
    could not run it. The KP keeps running where it was.
    """

    wire_name = "KernelAPI.MigrationError"


class NamespaceError(KosError):
    """A namespace operation failed."""


class NameNotFound(NamespaceError):
    """Lookup or unbind of a name that is not bound."""

    wire_name = "KernelAPI.NameNotFound"


class NameAlreadyBound(NamespaceError):
    """Bind of a name that is already bound."""

    wire_name = "KernelAPI.NameAlreadyBound"


class NotAContext(NamespaceError):
    """A path walks through a name that is not a context."""

    wire_name = "KernelAPI.NotAContext"


class ServiceUnavailable(CommunicationError):
    """The process that serves an object is gone or does not answer in time (it cannot
    be reached, or one of the two cases below).
    """


class CallTimeout(ServiceUnavailable):
    """A call got no reply within the call timeout (``$KOS_CALL_TIMEOUT``). Its connection
    is dropped so a late reply is never taken for another call's; the next call on the
    same proxy goes out on a new connection.
    """


class ConnectionLost(ServiceUnavailable):
    """The connection broke before the reply came: the serving process died or closed
    it (a call's side effects may or may not have happened).
    """


class WorldUnavailable(KosError):
    """The world's directory (etcd) cannot be reached: ``world/...`` lookups fail at
    once while local names keep working; the kernel rejoins by itself.
    """

    wire_name = "KernelAPI.WorldUnavailable"


class RemoteError(KosError):
    """The remote side failed in a way its interface does not declare.

    ``kind`` is the remote exception's type name, ``message`` its text.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}" if message else kind)


class InterfaceNotFound(KosError):
    """No installed distribution declares an interface of this name."""


class InterfaceError(KosError):
    """Base class of the exceptions that interfaces declare (``BitBucketAPI.BucketFull``...).

    Subclasses set ``wire_name`` (``"<Interface module>.<Name>"``); only declared
    exceptions cross the wire as themselves, everything else becomes :class:`RemoteError`.
    """
