"""How a client learns that talking to a service failed: every such error is a
:class:`CommunicationError` that names its target and method; a call that timed out and a
serving process that died are told apart; what the client finds wrong itself is not a
:class:`RemoteError`. Real servers, sockets and processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from coretest_util import TOKEN, EchoServer, echo_server, short_dir
from kos_core import (
    AuthenticationFailed,
    CallTimeout,
    CommunicationError,
    ConnectionLost,
    KernelUnreachable,
    ProtocolMismatch,
    RemoteError,
    ServiceUnavailable,
    _rpc,
)
from kos_core._net import wire
from toyapi import TESTS_DIR, Echo, EchoImpl

#: a process serving an Echo whose Str() never returns (it says when it is in there)
STUCK_SERVER = textwrap.dedent(
    """
    import sys, threading
    sys.path.insert(0, sys.argv[2])
    from kos_core import _rpc
    from kos_core._net import wire
    from toyapi import Echo, EchoImpl

    class Stuck(EchoImpl):
        def Str(self, s):
            print("in call", flush=True)
            threading.Event().wait()

    server = _rpc.Server(
        wire.Address(path=sys.argv[1]), lambda token: _rpc.ServerSession(Stuck(), Echo), name="s"
    ).start()
    print("serving", flush=True)
    sys.stdin.read()
    """
)


class Blocking(EchoImpl):
    """An Echo whose Str() waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def Str(self, s: str) -> str:
        self.release.wait(30)
        return s


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with echo_server() as srv:
        yield srv


def link_to(address: wire.Address, call_timeout: float = 30.0) -> _rpc.ClientConnection:
    return _rpc.ClientConnection(
        address, TOKEN, f"Echo at {address}", _rpc.RpcConfig(call_timeout=call_timeout)
    )


def test_the_six_are_communication_errors() -> None:
    for cls in (
        CallTimeout,
        ConnectionLost,
        KernelUnreachable,
        ServiceUnavailable,
        AuthenticationFailed,
        ProtocolMismatch,
    ):
        error = cls("what happened", target="Echo at kos+unix:///x", method="Str")
        assert isinstance(error, CommunicationError)
        assert (error.target, error.method) == ("Echo at kos+unix:///x", "Str")
        assert str(error) == "Echo at kos+unix:///x: Str(): what happened"
    assert issubclass(CallTimeout, ServiceUnavailable)
    assert issubclass(ConnectionLost, ServiceUnavailable)
    assert not issubclass(CallTimeout, ConnectionLost)
    bare = ServiceUnavailable("gone")
    assert (bare.target, bare.method, str(bare)) == (None, None, "gone")


def test_a_call_past_its_timeout_is_a_call_timeout_naming_target_and_method() -> None:
    impl = Blocking()
    with short_dir() as base:
        address = wire.Address(path=str(base / "slow.sock"))
        server = _rpc.Server(address, lambda t: _rpc.ServerSession(impl, Echo), name="s").start()
        link = link_to(server.address, call_timeout=0.3)
        try:
            with pytest.raises(CallTimeout) as caught:
                _rpc.make_proxy(Echo, link).Str("x")
        finally:
            impl.release.set()
            link.close()
            server.close()
    assert caught.value.target == f"Echo at {server.address}"
    assert caught.value.method == "Str"
    assert str(caught.value) == f"Echo at {server.address}: Str(): no answer within 0.3 s"
    assert "token" not in str(caught.value).lower() and TOKEN not in str(caught.value)


def test_a_server_killed_mid_call_is_a_lost_connection() -> None:
    with short_dir() as base:
        path = str(base / "stuck.sock")
        process = subprocess.Popen(
            [sys.executable, "-c", STUCK_SERVER, path, str(TESTS_DIR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "serving\n"
            address = wire.Address(path=path)
            link = link_to(address)
            outcome: dict[str, Any] = {}

            def call() -> None:
                try:
                    outcome["value"] = _rpc.make_proxy(Echo, link).Str("x")
                except BaseException as exc:
                    outcome["error"] = exc

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            assert process.stdout.readline() == "in call\n"
            process.kill()
            caller.join(10)
            link.close()
        finally:
            process.kill()
            process.wait(10)
    error = outcome.get("error")
    assert isinstance(error, ConnectionLost) and not isinstance(error, CallTimeout), outcome
    assert (error.target, error.method) == (f"Echo at {address}", "Str")
    assert "the serving process is gone" in str(error)


def test_a_call_to_nobody_is_service_unavailable_naming_target_and_method() -> None:
    with short_dir() as base:
        link = link_to(wire.Address(path=str(base / "nobody.sock")))
        with pytest.raises(ServiceUnavailable) as caught:
            _rpc.make_proxy(Echo, link).Int(1)
    assert caught.value.method == "Int" and caught.value.target == link.what
    assert "cannot connect" in str(caught.value)


def test_wrong_credentials_name_the_target(server: EchoServer) -> None:
    link = _rpc.ClientConnection(server.address, "wrong-token_0123456789", "Echo here")
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            _rpc.make_proxy(Echo, link).Int(1)
    finally:
        link.close()
    assert (caught.value.target, caught.value.method) == ("Echo here", "Int")


@pytest.mark.parametrize(
    ("method", "args"),
    [("Int", ("not an int",)), ("Add", ()), ("Str", ("a", "b")), ("Words", ([1],))],
    ids=["wrong-type", "missing", "too-many", "wrong-item"],
)
def test_an_argument_the_client_checks_is_a_type_error_not_a_remote_error(
    server: EchoServer, method: str, args: tuple[Any, ...]
) -> None:
    proxy = server.proxy()
    with pytest.raises(TypeError) as caught:
        getattr(proxy, method)(*args)
    assert not isinstance(caught.value, RemoteError)
    assert server.impl.calls == []  # nothing was sent


@pytest.mark.parametrize(
    "reply",
    [(1, "not a pair"), (1, ("ToyAPI.Oops", 5)), (0, ("x", "y"))],
    ids=["declared-not-a-pair", "declared-bad-args", "bad-reference"],
)
def test_a_reply_the_client_cannot_decode_is_a_protocol_mismatch(
    server: EchoServer, monkeypatch: pytest.MonkeyPatch, reply: tuple[int, Any]
) -> None:
    monkeypatch.setattr(_rpc.ServerSession, "dispatch", lambda *args: reply)
    method = "Open" if reply[0] == 0 else "Fail"
    with pytest.raises(ProtocolMismatch) as caught:
        getattr(server.proxy(), method)(*(() if method == "Open" else ("m",)))
    assert not isinstance(caught.value, RemoteError)
    assert caught.value.method == method
    assert "cannot decode" in str(caught.value)


def test_an_undeclared_remote_failure_is_still_a_remote_error(server: EchoServer) -> None:
    with pytest.raises(RemoteError) as caught:
        server.proxy().Crash("boom")
    assert not isinstance(caught.value, CommunicationError)
