"""Testing a service class against its interface without a kernel: the object is served
on a private Unix socket through kos's real wire (handshake, argument and result
checks, declared exceptions), and the test calls it through a real proxy.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

from kos_core.interface import Interface, find_interface

_T = TypeVar("_T", bound=Interface)


@overload
def served(obj: object, interface: type[_T]) -> contextlib.AbstractContextManager[_T]: ...


@overload
def served(obj: object, interface: str) -> contextlib.AbstractContextManager[Any]: ...


def served(obj: object, interface: type[Interface] | str) -> contextlib.AbstractContextManager[Any]:
    """A proxy of ``obj`` served as ``interface`` (the class or its wire name) through the
    real wire, with no kernel; the server and the connection end with the block.

    The proxy behaves as one a kernel lookup gives: arguments and results are checked
    against the interface on both sides, declared exceptions arrive as themselves, an
    undeclared failure as :class:`~kos_core.errors.RemoteError`. ``TypeError`` if
    ``obj`` lacks a method of the interface.
    """
    iface = find_interface(interface) if isinstance(interface, str) else interface
    return _serving(obj, iface)


@contextlib.contextmanager
def _serving(obj: object, iface: type[Interface]) -> Iterator[Any]:
    from kos_core import _rpc
    from kos_core._net import wire
    from kos_core._rpc.session import check_implements

    token = secrets.token_urlsafe(32)

    def authorize(given: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(obj, iface) if wire.tokens_equal(given, token) else None

    check_implements(obj, iface)
    base = Path(tempfile.mkdtemp(prefix="kos-h-"))  # short: socket paths are limited
    server = _rpc.Server(wire.Address(path=str(base / "served.sock")), authorize, name="harness")
    try:
        server.start()
        proxy = _rpc.object_of_sbh(wire.format_sbh(server.address, token), iface)
        try:
            yield proxy
        finally:
            connection = _rpc.connection_of(proxy)
            if connection is not None:
                connection.close()
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)
