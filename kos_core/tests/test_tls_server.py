"""A kos server on TCP speaks TLS only, and its TLS handshake sits inside the one
deadline every handshake has.
"""

from __future__ import annotations

import socket

import pytest

from coretest_util import echo_server, seconds_until_cut, short_dir
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import KosError


def test_a_tcp_server_cannot_be_made_without_tls() -> None:
    with pytest.raises(KosError, match="without TLS"):
        _rpc.Server(wire.Address(host="127.0.0.1", port=0), lambda token: None, name="plain")


def test_a_unix_server_ignores_tls_and_stays_plain() -> None:
    with short_dir() as base, echo_server(wire.Address(path=str(base / "e.sock"))) as srv:
        raw = srv.address.connect(5.0)
        with raw:
            assert not hasattr(raw, "cipher")  # a plain socket, no TLS on Unix sockets
        assert srv.proxy().Str("unix") == "unix"


def test_a_trickled_tls_handshake_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "HANDSHAKE_TIMEOUT", 1.0)
    with echo_server(wire.Address(host="127.0.0.1", port=0)) as srv:
        assert srv.address.host is not None
        sock = socket.create_connection((srv.address.host, srv.address.port), timeout=5)
        # a TLS record header, then a byte at a time
        took = seconds_until_cut(sock, b"\x16\x03\x01\x02\x00" + b"\x01" * 200)
        assert took is not None and 0.9 <= took <= 2.5, took
        assert srv.proxy().Str("still fine") == "still fine"  # over TLS
