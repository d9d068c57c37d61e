"""The bastion: the ``kos`` object a KP's ``__main__(kos)`` receives at a station.

It holds the KP credential only, so the kernel allows it what the station's
``[kp-access]`` policy allows and nothing more: look up and list the names the
policy opens, bind and unbind under ``kps/<id>/``, move the KP with :meth:`migrate`
(see :mod:`.migration`). The checks are the kernel's, not this object's: a KP that
goes around it reaches the same kernel with the same credential. Calls to the
services it looks up go directly to the processes that serve them, as any client's do.
"""

from __future__ import annotations

import builtins
import os
from typing import Any, NoReturn, TypeVar, overload

from kos_core._client import Context, Kos
from kos_core._kp import codec
from kos_core.errors import MigrationError

_T = TypeVar("_T")


class KPKos:
    """What a KP may do at the station it runs at."""

    def __init__(self, kos: Kos, kp_id: str, args: builtins.list[str], kp: object) -> None:
        self._kos = kos
        self._kp = kp
        #: the KP's id at this station; it binds under ``kps/<id>/``
        self.id = kp_id
        #: the words after ``--`` on ``kos kp submit``'s command line
        self.args = args

    @property
    def name(self) -> str:
        """The name of the kernel (station) the KP runs at."""
        return self._kos.name

    @property
    def context(self) -> str:
        """The KP's own context, ``kps/<id>``."""
        return f"kps/{self.id}"

    @overload
    def lookup(self, path: str) -> Any: ...

    @overload
    def lookup(self, path: str, interface: type[_T]) -> _T: ...

    def lookup(self, path: str, interface: type[Any] | None = None) -> Any:
        """The service (a proxy) or context bound at ``path``, if the policy allows it;
        else :class:`~kos_core.errors.PermissionDenied`.
        """
        if interface is None:
            return self._kos.lookup(path)
        return self._kos.lookup(path, interface)

    def list(self, path: str = "") -> builtins.list[str]:
        """Names in the context at ``path``, if the policy allows it."""
        return self._kos.list(path)

    def get_namespace(self) -> Context:
        """The station's top context (what the KP may see of it is the policy's)."""
        return Context(self._kos, "")

    def _path(self, name: str) -> str:
        return name if name.startswith(("kps/", "/kps/")) else f"{self.context}/{name}"

    def bind_service(self, name: str, obj: object, typename: str) -> str:
        """Serve ``obj`` as a ``typename`` service at ``kps/<id>/<name>``; return its sid."""
        return self._kos.bind_service(self._path(name), obj, typename)

    def unbind_service(self, sid: str) -> None:
        """Unbind a service bound with :meth:`bind_service`."""
        self._kos.unbind_service(sid)

    def migrate(self, kernel: str) -> NoReturn:
        """Move this KP to ``kernel`` (a kernel of this runtime directory).

        Its class's source and its instance attributes (plain data only: str, bytes,
        numbers, bool, None, lists, dicts) travel, through the stations; a new confined
        process there rebuilds the object (without calling ``__init__``) and calls its
        ``__main__(kos)`` again, and then this process is ended: the call does not
        return. Raises :class:`~kos_core.errors.MigrationError` if the KP cannot move
        (an attribute that is not plain data, before anything is sent; an unknown
        kernel; a refusal): the KP then goes on running here.
        """
        try:
            attributes = dict(vars(self._kp))
        except TypeError:
            raise MigrationError("the KP has no instance attributes to carry") from None
        state = codec.encode_state(attributes)
        self._kos.kernel.MigrateKP(kernel, state)
        os._exit(0)  # the station ends this process before it answers: not reached

    def run(self) -> None:
        """Serve the bound services until :meth:`stop` (or a limit ends the KP)."""
        self._kos.run()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._kos.stop()

    def close(self) -> None:
        """Close the connection to the station and every service connection."""
        self._kos.close()

    def __repr__(self) -> str:
        return f"<KP {self.id} at station {self.name!r}>"
