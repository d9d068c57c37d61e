"""Who may do what at a kernel: the credential kinds and the rights each one gives.

Every connection to a kernel presents one credential in its handshake::

    operator   the run's secret (the connection file)   everything
    plugin     made for one plugin by the kernel         register as itself; bind its
                                                         declared names and plugins/<name>/...;
                                                         look up and list
    kp         made for one KP by the kernel             look up and list what the station's
                                                         policy allows; bind under kps/<id>/...
    station    another kernel of the world: the token    hand this kernel a KP (ReceiveKP),
               "station" over TLS with its world         nothing else
               certificate (it names the kernel)

A top-level name an installed plugin declares is reserved for it: no other plugin
(nor KP) may bind it, even while its owner is stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kos_core._kernel import namespace
from kos_core._net import wire
from kos_core.errors import PermissionDenied

OPERATOR, PLUGIN, KP, STATION = "operator", "plugin", "kp", "station"
#: the handshake token of a station: its credential is its world certificate
STATION_TOKEN = "station"
#: names the inherited file descriptor a credential is read from (never the credential)
CREDENTIAL_FD_ENV = "KOS_CREDENTIAL_FD"


@dataclass(frozen=True)
class Grant:
    """The rights of one connection: its credential's kind and whom it stands for.

    ``name`` is the plugin's name (kind ``plugin``), the KP's id (kind ``kp``) or the
    sending kernel's name (kind ``station``, from its certificate);
    ``services`` the top-level names a plugin declared; ``may_look`` decides which
    paths a KP may look up and list (everything, for the other kinds).
    """

    kind: str
    name: str = ""
    services: frozenset[str] = frozenset()
    may_look: Callable[[list[str]], bool] | None = field(default=None, compare=False)

    @property
    def operator(self) -> bool:
        """True for the operator's credential."""
        return self.kind == OPERATOR

    def check_operator(self, what: str) -> None:
        """Raise :class:`PermissionDenied` unless this is the operator."""
        if not self.operator:
            raise PermissionDenied(f"{what} needs the operator's credential (this is {self})")

    def check_register(self, plugin: str) -> None:
        """Raise :class:`PermissionDenied` unless this may register as plugin ``plugin``."""
        if self.kind != OPERATOR and (self.kind != PLUGIN or plugin != self.name):
            raise PermissionDenied(f"{self} may not register as plugin {plugin!r}")

    def check_bind(self, path: str, reserved: dict[str, str]) -> None:
        """Raise :class:`PermissionDenied` unless this may bind (or unbind) ``path``.

        ``reserved`` maps each name an installed plugin declares to that plugin.
        """
        if self.operator:
            return
        parts = namespace.split_path(path)
        if self.kind == PLUGIN:
            if len(parts) >= 3 and parts[:2] == ["plugins", self.name]:
                return
            if len(parts) == 1 and parts[0] in self.services:
                return
            owner = reserved.get(parts[0]) if len(parts) == 1 else None
            if owner is not None and owner != self.name:
                raise PermissionDenied(f"{path!r} is reserved for plugin {owner!r}")
            raise PermissionDenied(
                f"plugin {self.name!r} may bind only the names it declares"
                f" ({', '.join(sorted(self.services)) or 'none'}) and plugins/{self.name}/..."
            )
        if self.kind != KP:
            raise PermissionDenied(f"{self} may not bind or unbind names")
        if len(parts) >= 3 and parts[:2] == ["kps", self.name]:
            return
        raise PermissionDenied(f"KP {self.name} may bind only under kps/{self.name}/")

    def check_look(self, path: str) -> None:
        """Raise :class:`PermissionDenied` unless this may look up or list ``path``."""
        parts = namespace.split_path(path)
        looks = self.kind != STATION and (self.may_look is None or self.may_look(parts))
        if not looks:
            raise PermissionDenied(f"{path!r} is not open to {self}")

    def __str__(self) -> str:
        if self.kind == OPERATOR:
            return "the operator"
        kinds = {PLUGIN: "plugin", KP: "KP", STATION: "the station of kernel"}
        return f"{kinds.get(self.kind, self.kind)} {self.name!r}"


def reserved_names(declared: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """Each declared top-level name → the plugin that declared it (the first one)."""
    out: dict[str, str] = {}
    for plugin, names in declared:
        for name in names:
            out.setdefault(name, plugin)
    return out


def parse_services(value: str) -> tuple[str, ...]:
    """The names of a ``services:`` setting (separated by spaces or commas), checked."""
    names = tuple(part for part in value.replace(",", " ").split() if part)
    for name in names:
        if len(namespace.split_path(name)) != 1:
            raise ValueError(f"bad service name {name!r}: a service name is one path component")
    return names


def dialable(sbh: str, runtime_dir: str, listen_host: str | None) -> bool:
    """Whether the kernel may connect to what ``sbh`` names.

    Only a socket in its own runtime directory or on its own listen host: a peer must
    not make the kernel dial elsewhere.
    """
    address, _ = wire.parse_sbh(sbh)
    if address.path is not None:
        path = os.path.normpath(address.path)
        return os.path.dirname(path) == os.path.normpath(runtime_dir)
    return listen_host is not None and address.host == listen_host


def credential_pipe(credential: str) -> int:
    """A pipe's read end holding ``credential``, for a child process to inherit (the
    caller passes it in ``pass_fds``, names it in :data:`CREDENTIAL_FD_ENV`, and closes
    it once the child runs). A credential never appears on a command line.
    """
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, credential.encode("ascii"))
    finally:
        os.close(write_end)
    return read_end


def take_credential() -> str | None:
    """The credential this process was handed by its kernel, read once, or ``None`` if
    it was started by hand. The descriptor is closed and its name removed from the
    environment, so nothing this process starts inherits either.
    """
    value = os.environ.pop(CREDENTIAL_FD_ENV, None)
    if value is None:
        return None
    try:
        fd = int(value)
    except ValueError:
        raise PermissionDenied(f"${CREDENTIAL_FD_ENV} is not a file descriptor") from None
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 256):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1024:
                raise PermissionDenied("the credential handed to this process is too long")
        os.close(fd)
    except OSError as exc:
        message = f"cannot read the credential handed to this process: {exc}"
        raise PermissionDenied(message) from None
    return b"".join(chunks).decode("ascii", "replace").strip() or None
