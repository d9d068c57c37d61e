"""Connections go only where the policy allows, checked when they connect: a name that
resolves to an allowed address for the URL check and to another one for the connection
(DNS rebinding) does not reach the other one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kos_plugins_http import FileIOError
from kos_plugins_http.policy import Policy
from kos_plugins_http.requester import Requester

NAME = "rebind.kos.test"


class TinyServer:
    """A loopback HTTP server on ``address`` that answers every request with its name."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.listener = socket.create_server((address, port))
        self.port = self.listener.getsockname()[1]
        self.name = address.encode()
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                if conn.recv(65536):
                    self.requests += 1
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(self.name), self.name)
                    )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def servers() -> Iterator[tuple[TinyServer, TinyServer]]:
    allowed = TinyServer("127.0.0.1")
    forbidden = TinyServer("127.0.0.3", allowed.port)  # same port, another address
    try:
        yield allowed, forbidden
    finally:
        allowed.close()
        forbidden.close()


def resolve_in_turn(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Make ``NAME`` resolve to each of ``answers`` in turn (the last one then on)."""
    real = socket.getaddrinfo
    given: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(given), len(answers) - 1)]
        given.append(address)
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return given


def test_a_name_that_rebinds_after_the_check_is_refused_when_connecting(
    servers: tuple[TinyServer, TinyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, forbidden = servers
    given = resolve_in_turn(monkeypatch, ["127.0.0.1", "127.0.0.3"])
    requester = Requester(Policy(allow_hosts=("127.0.0.1",)))
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(f"http://{NAME}:{allowed.port}/")
    assert given[:2] == ["127.0.0.1", "127.0.0.3"]  # checked, then rebound
    assert forbidden.requests == 0


def test_a_name_that_keeps_its_address_is_fetched(
    servers: tuple[TinyServer, TinyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, forbidden = servers
    resolve_in_turn(monkeypatch, ["127.0.0.1"])
    requester = Requester(Policy(allow_hosts=("127.0.0.1",)))
    assert requester.Get(f"http://{NAME}:{allowed.port}/").read() == b"127.0.0.1"
    assert (allowed.requests, forbidden.requests) == (1, 0)


def test_only_the_allowed_addresses_of_a_name_are_connected_to(
    servers: tuple[TinyServer, TinyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, forbidden = servers
    real = socket.getaddrinfo

    def both(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        return real("127.0.0.3", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    policy = Policy(allow_hosts=("127.0.0.1",))
    assert [str(a) for a in policy.check_host(NAME)] == ["127.0.0.1"]
    requester = Requester(policy)
    assert requester.Get(f"http://{NAME}:{allowed.port}/").read() == b"127.0.0.1"
    assert forbidden.requests == 0
