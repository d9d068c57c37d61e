"""Version skew of declared exceptions: the server's interface declares an exception the
client's older copy of the same interface does not know. What the client gets is pinned:
a :class:`RemoteError` whose ``kind`` is the exception's wire name and whose message is
its arguments; the exceptions both copies declare still arrive as themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coretest_util import TOKEN, echo_server
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import InterfaceError, RemoteError
from kos_core.interface import Interface, raises


class Full(InterfaceError):
    """Declared by both versions."""

    wire_name = "SkewAPI.Full"


class Gone(InterfaceError):
    """Declared by the newer version only."""

    wire_name = "SkewAPI.Gone"


class OldStore(Interface, wire_name="SkewAPI.Store"):
    """``SkewAPI.Store`` as an older client has it."""

    @raises(Full)
    def Put(self, key: str) -> int:
        """Store ``key``; return its length."""
        raise NotImplementedError


class NewStore(Interface, wire_name="SkewAPI.Store"):
    """``SkewAPI.Store`` as a newer server has it."""

    @raises(Full, Gone)
    def Put(self, key: str) -> int:
        """Store ``key``; return its length."""
        raise NotImplementedError


class Store:
    """Implements ``SkewAPI.Store`` and raises what each key asks for."""

    def Put(self, key: str) -> int:
        if key == "full":
            raise Full("no room for full")
        if key == "gone":
            raise Gone("gone was removed", 410)
        return len(key)


def serving(interface: type[Interface]) -> Any:
    """A server of a :class:`Store` declared as ``interface`` (a context manager)."""

    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(Store(), interface) if token == TOKEN else None

    return echo_server(authorize=authorize)


@pytest.fixture
def client_of() -> Iterator[Any]:
    """``client_of(server, interface)``: a proxy, closed after the test."""
    links: list[_rpc.ClientConnection] = []

    def make(server: Any, interface: type[Interface]) -> Any:
        proxy = _rpc.object_of_sbh(wire.format_sbh(server.address, TOKEN), interface)
        links.append(_rpc.connection_of(proxy))  # type: ignore[arg-type]
        return proxy

    yield make
    for link in links:
        link.close()


def test_an_exception_the_clients_interface_lacks_is_a_remote_error(client_of: Any) -> None:
    with serving(NewStore) as server:
        old = client_of(server, OldStore)
        with pytest.raises(RemoteError) as caught:
            old.Put("gone")
        error = caught.value
        assert not isinstance(error, InterfaceError)
        assert (error.kind, error.message) == ("SkewAPI.Gone", "gone was removed 410")
        assert str(error) == "SkewAPI.Gone: gone was removed 410"
        # what both versions declare still arrives as itself, and the connection goes on
        with pytest.raises(Full, match="no room for full"):
            old.Put("full")
        assert old.Put("abcd") == 4
        # a client with the newer interface gets the exception itself, with its arguments
        new = client_of(server, NewStore)
        with pytest.raises(Gone) as gone:
            new.Put("gone")
        assert gone.value.args == ("gone was removed", 410)


def test_an_exception_the_servers_interface_lacks_is_a_remote_error_for_every_client(
    client_of: Any,
) -> None:
    with serving(OldStore) as server:
        new = client_of(server, NewStore)
        with pytest.raises(RemoteError) as caught:
            new.Put("gone")  # undeclared where it was raised: not sent as Gone
        assert not isinstance(caught.value, Gone)
        assert caught.value.kind == "SkewAPI.Gone"
        assert "gone was removed" in caught.value.message
