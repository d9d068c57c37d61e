"""A TCP server that asks for client certificates (a world kernel's listener): a client
presenting one its authority signed is authorized by that certificate, a plain client
still connects, and a certificate from another authority never gets past TLS.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coretest_util import TOKEN, short_dir
from kos_core import _rpc
from kos_core._kernel import access
from kos_core._kp.migration import station_link
from kos_core._net import tls, wire
from kos_core.errors import AuthenticationFailed, ServiceUnavailable
from toyapi import Echo, EchoImpl

VALIDITY = datetime.timedelta(days=1)


@dataclass
class Asking:
    """A server of the world authority ``authority``, serving as kernel ``ks``."""

    server: _rpc.Server
    authority: tls.Authority
    base: Path
    #: ``(token, certificate name)`` of each connection authorized by its certificate
    certified: list[tuple[str, str]] = field(default_factory=list)
    #: the token of each connection authorized without one
    plain: list[str] = field(default_factory=list)

    def presenting(self, name: str, authority: tls.Authority | None = None) -> ssl.SSLContext:
        """A client context presenting a certificate for ``name`` (of ``authority``,
        by default the server's), trusting the server's authority.
        """
        issued = (authority or self.authority).issue(name, [], VALIDITY)
        path = self.base / f"{name}-client.pem"
        path.write_bytes(tls.write_pem_pair(issued))
        return tls.presenting_context(self.authority.cert_pem, str(path))


@contextlib.contextmanager
def asking_server() -> Iterator[Asking]:
    authority = tls.new_authority("kos world")
    with short_dir() as base:
        pair = base / "ks.pem"
        pair.write_bytes(tls.write_pem_pair(authority.issue("ks", ["127.0.0.1"], VALIDITY)))
        context = tls.server_context(str(pair))
        tls.ask_client_certificates(context, authority.cert_pem)
        impl = EchoImpl()

        def authorize(token: str) -> _rpc.ServerSession | None:
            asking.plain.append(token)
            return _rpc.ServerSession(impl, Echo) if wire.tokens_equal(token, TOKEN) else None

        def certified(token: str, name: str) -> _rpc.ServerSession | None:
            asking.certified.append((token, name))
            return _rpc.ServerSession(impl, Echo)

        address = wire.Address(host="127.0.0.1", port=0)
        server = _rpc.Server(address, authorize, name="asking", tls=context, certified=certified)
        asking = Asking(server.start(), authority, base)
        try:
            yield asking
        finally:
            server.close()


def _echo(link: _rpc.ClientConnection) -> Echo:
    return _rpc.make_proxy(Echo, link)  # type: ignore[no-any-return]


def test_a_certificate_of_the_authority_is_what_authorizes_the_client() -> None:
    with asking_server() as srv:
        address = str(srv.server.address).removeprefix("tcp:")
        link = station_link("ks", address, srv.presenting("ka"))
        try:
            assert _echo(link).Str("from ka") == "from ka"
        finally:
            link.close()
        assert srv.certified == [(access.STATION_TOKEN, "ka")] and srv.plain == []


def test_a_client_without_a_certificate_still_connects() -> None:
    with asking_server() as srv:
        tls.trust(srv.authority.cert_pem)
        link = _rpc.ClientConnection(srv.server.address, TOKEN, "the asking server")
        try:
            assert _echo(link).Str("plain") == "plain"
        finally:
            link.close()
        assert srv.plain == [TOKEN] and srv.certified == []


def test_a_certificate_of_another_authority_is_refused_by_tls() -> None:
    with asking_server() as srv:
        address = str(srv.server.address).removeprefix("tcp:")
        stranger = tls.new_authority("kos world")  # same subject, another key
        link = station_link("ks", address, srv.presenting("ka", stranger))
        try:
            with pytest.raises(ServiceUnavailable, match="handshake failed"):
                _echo(link).Str("never")
        finally:
            link.close()
        assert srv.certified == [] and srv.plain == []


def test_a_station_checks_that_the_server_is_the_kernel_it_dials() -> None:
    with asking_server() as srv:
        address = str(srv.server.address).removeprefix("tcp:")
        link = station_link("kb", address, srv.presenting("ka"))  # the server is ks
        try:
            with pytest.raises(AuthenticationFailed, match="kb"):
                _echo(link).Str("never")
        finally:
            link.close()
        assert srv.certified == [] and srv.plain == []
