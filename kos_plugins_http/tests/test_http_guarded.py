"""Connections go only where the policy allows, checked when they connect: a name that
resolves to an allowed address for the URL check and to another one for the connection
(DNS rebinding) does not reach the other one, over http and over ftp; ftp ignores proxies.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import StartHttp
from httptest_helpers import LOOPBACK, FtpSite
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

    def fake_by_name(host: str) -> str:  # what urllib's ftp handler resolves with
        if host != NAME:
            return real_by_name(host)
        address = answers[min(len(given), len(answers) - 1)]
        given.append(address)
        return address

    real_by_name = socket.gethostbyname
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.setattr(socket, "gethostbyname", fake_by_name)
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


# ---------------------------------------------------------------------------- ftp


class Listener:
    """A loopback TCP listener that counts the connections it accepts and hangs up."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.sock = socket.create_server((address, port))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def proxy() -> Iterator[Listener]:
    """A would-be proxy on the loopback; no ftp fetch may ever connect to it."""
    listener = Listener("127.0.0.1")
    try:
        yield listener
    finally:
        listener.close()


def set_proxies(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    for key in ("ftp_proxy", "FTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(key, f"http://127.0.0.1:{port}/")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)


@pytest.fixture
def decoy(ftp_site: FtpSite) -> Iterator[Listener]:
    """A listener on 127.0.0.3 at the FTP site's port: where a rebound name points."""
    listener = Listener("127.0.0.3", ftp_site.port)
    try:
        yield listener
    finally:
        listener.close()


def test_ftp_to_a_name_that_rebinds_after_the_check_is_refused(
    ftp_site: FtpSite, decoy: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ftp_site.root / "hello.txt").write_bytes(b"from the checked address\n")
    given = resolve_in_turn(monkeypatch, ["127.0.0.1", "127.0.0.3"])
    requester = Requester(Policy(allow_hosts=("127.0.0.1",)))
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(f"ftp://{NAME}:{ftp_site.port}/hello.txt")
    assert given[:2] == ["127.0.0.1", "127.0.0.3"]  # checked, then rebound
    assert decoy.accepted == 0


def test_ftp_connects_only_to_the_allowed_addresses_of_a_name(
    ftp_site: FtpSite, decoy: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ftp_site.root / "hello.txt").write_bytes(b"from the checked address\n")
    real = socket.getaddrinfo

    def both(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        return real("127.0.0.3", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    monkeypatch.setattr(socket, "gethostbyname", lambda host: "127.0.0.3")
    requester = Requester(Policy(allow_hosts=("127.0.0.1",)))
    body = requester.Get(f"ftp://{NAME}:{ftp_site.port}/hello.txt")
    assert body.read() == b"from the checked address\n"
    body.close()
    assert decoy.accepted == 0


def test_ftp_ignores_proxy_settings(
    ftp_site: FtpSite, proxy: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ftp_site.root / "hello.txt").write_bytes(b"direct\n")
    set_proxies(monkeypatch, proxy.port)
    requester = Requester(Policy(allow_hosts=("127.0.0.1",)))
    headers, body = requester.GetWithInfo(ftp_site.url("hello.txt"))
    assert body.read() == b"direct\n"
    assert ("Content-type", "text/plain") in headers
    with pytest.raises(FileIOError, match="ftp"):
        requester.Get(ftp_site.url("missing.txt"))
    assert proxy.accepted == 0


def test_ftp_to_a_refused_address_makes_no_connection(proxy: Listener) -> None:
    requester = Requester(Policy(allow_hosts=("127.0.0.2",)))
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(f"ftp://127.0.0.1:{proxy.port}/x")
    with pytest.raises(FileIOError, match="local or private"):
        Requester(Policy()).Get(f"ftp://[::ffff:127.0.0.1]:{proxy.port}/x")
    assert proxy.accepted == 0


def test_the_plugin_fetches_ftp_directly_despite_ftp_proxy(
    start_http: StartHttp, ftp_site: FtpSite, proxy: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ftp_site.root / "hello.txt").write_bytes(b"through the plugin\n")
    set_proxies(monkeypatch, proxy.port)  # inherited by the kernel, plugin and requesters
    plugin = start_http(LOOPBACK)
    requester = plugin.requester()
    assert requester.Get(ftp_site.url("hello.txt")).read() == b"through the plugin\n"
    listing = requester.Get(ftp_site.url("")).read()  # a directory: its listing
    assert b"hello.txt" in listing
    assert proxy.accepted == 0
