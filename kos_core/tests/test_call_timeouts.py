"""A call that times out drops its connection: the next call on the same proxy goes
out on a new one (the server is still busy with the old call), or fails at once if the
service is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from coretest_util import TOKEN, short_dir
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import CallTimeout, ServiceUnavailable
from kos_core.interface import Interface

TIMEOUT = 0.3


class Slowish(Interface, wire_name="ToySlowishAPI.Slowish"):
    """A service with a call that waits to be released, and one that answers at once."""

    def Block(self) -> None:
        """Wait until released."""
        raise NotImplementedError

    def Quick(self, n: int) -> int:
        """``n`` back."""
        raise NotImplementedError


class SlowishImpl:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.sessions = 0

    def Block(self) -> None:
        self.release.wait(30)

    def Quick(self, n: int) -> int:
        return n


@dataclass
class Served:
    server: _rpc.Server
    impl: SlowishImpl
    proxy: Any
    link: _rpc.ClientConnection


@pytest.fixture
def served() -> Iterator[Served]:
    impl = SlowishImpl()

    def authorize(token: str) -> _rpc.ServerSession | None:
        impl.sessions += 1
        return _rpc.ServerSession(impl, Slowish) if wire.tokens_equal(token, TOKEN) else None

    with short_dir() as base:
        server = _rpc.Server(wire.Address(path=str(base / "s.sock")), authorize, name="s")
        server.start()
        link = _rpc.ClientConnection(
            server.address, TOKEN, "slowish", _rpc.RpcConfig(call_timeout=TIMEOUT)
        )
        try:
            yield Served(server, impl, _rpc.make_proxy(Slowish, link), link)
        finally:
            impl.release.set()
            link.close()
            server.close()


def test_the_call_after_a_timeout_is_answered_on_a_new_connection(served: Served) -> None:
    assert served.proxy.Quick(1) == 1
    with pytest.raises(CallTimeout, match=r"slowish: Block\(\): no answer within"):
        served.proxy.Block()
    assert not served.impl.release.is_set()  # the server is still in Block()
    started = time.monotonic()
    assert served.proxy.Quick(2) == 2  # before: this too waited, and timed out
    assert time.monotonic() - started < TIMEOUT
    assert served.impl.sessions == 2  # it reconnected


def test_the_call_after_a_timeout_fails_at_once_if_the_service_is_gone(served: Served) -> None:
    with pytest.raises(CallTimeout, match=r"slowish: Block\(\): no answer within"):
        served.proxy.Block()
    served.server.close()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="cannot connect"):
        served.proxy.Quick(3)
    assert time.monotonic() - started < TIMEOUT
