"""kos over rpyc in one process (kos_core._rpc): a real server on a real socket."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rpyc.core import consts

from coretest_util import TOKEN, EchoServer, connection_of, echo_server, short_dir
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import (
    AuthenticationFailed,
    KosError,
    RemoteError,
    ServiceUnavailable,
    UsageError,
)
from kos_core.interface import Interface, MethodSpec
from kos_core.testing import require, wait_for
from toyapi import Counter, Echo, EchoImpl, OddStr, Oops


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with echo_server() as srv:
        yield srv


@pytest.fixture
def echo(server: EchoServer) -> Iterator[Any]:
    proxy = server.proxy()
    yield proxy
    connection_of(proxy).close()


NONE_TYPE = type(None)


def spec(name: str, *, returns: Any = NONE_TYPE) -> MethodSpec:
    return MethodSpec(name=name, params=(), returns=returns, raises=(), doc="")


@contextlib.contextmanager
def open_link(server: EchoServer) -> Iterator[_rpc.ClientConnection]:
    """A connected link to ``server``'s root object; closed afterwards."""
    link = _rpc.ClientConnection(server.address, server.token, "toy")
    try:
        link.connect()
        yield link
    finally:
        link.close()


def remote_error(server: EchoServer, handle: int, method: MethodSpec, args: Any) -> RemoteError:
    """The RemoteError a raw ``invoke`` on ``server`` gets; the server's object must
    not have been called.
    """
    with open_link(server) as link, pytest.raises(RemoteError) as info:
        link.invoke(handle, method, args)
    assert server.impl.calls == []
    return info.value


# -- values -------------------------------------------------------------------------


def test_proxy_is_an_instance_of_the_interface(server: EchoServer, echo: Any) -> None:
    assert isinstance(echo, Echo)
    assert "ToyAPI.Echo" in repr(echo)
    assert _rpc.sbh_of(echo) == server.sbh
    assert _rpc.connection_of(echo) is not None
    assert _rpc.sbh_of(EchoImpl()) is None
    assert _rpc.connection_of(EchoImpl()) is None


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("Str", "h\u00e9llo \u2603"),
        ("Str", ""),
        ("Bytes", b"\x00\xffdata"),
        ("Bytes", b""),
        ("Int", 2**80),
        ("Int", -3),
        ("Float", 2.5),
        ("Bool", True),
        ("Bool", False),
    ],
)
def test_scalars_round_trip_with_their_types(echo: Any, method: str, value: Any) -> None:
    result = getattr(echo, method)(value)
    assert result == value
    assert type(result) is type(value)


def test_float_accepts_int_and_bytes_accepts_bytearray(echo: Any) -> None:
    assert echo.Float(3) == 3.0
    assert type(echo.Float(3)) is float
    assert echo.Bytes(bytearray(b"ab")) == b"ab"
    assert type(echo.Bytes(memoryview(b"cd"))) is bytes


def test_lists_come_back_as_lists(server: EchoServer, echo: Any) -> None:
    result = echo.Words(["a", "b", "c"])
    assert result == ["a", "b", "c"]
    assert type(result) is list
    assert echo.Words(("x",)) == ["x"]
    assert echo.Words([]) == []
    name, args = server.impl.calls[-1]
    assert name == "Words"
    assert type(args[0]) is list  # the implementation gets a list too


def test_tuples_come_back_as_tuples(echo: Any) -> None:
    result = echo.Pair(7, "seven")
    assert result == (7, "seven")
    assert type(result) is tuple


def test_nested_lists(server: EchoServer, echo: Any) -> None:
    result = echo.Rows([["a", "b"], [], ["c"]])
    assert result == [["a", "b"], [], ["c"]]
    assert all(type(row) is list for row in result)
    _, (rows,) = server.impl.calls[-1]
    assert rows == [["a", "b"], [], ["c"]]
    # The declaration says list[list[str]]: the implementation must get lists at
    # every level, as it does at the top level (see test_lists_come_back_as_lists).
    assert [type(row) for row in rows] == [list, list, list]


def test_optional_defaults_and_keywords(server: EchoServer, echo: Any) -> None:
    assert echo.Maybe() is None
    assert echo.Maybe(None) is None
    assert echo.Maybe("x") == "x"
    assert echo.Add(2) == 3
    assert echo.Add(2, 5) == 7
    assert echo.Add(a=2, b=10) == 12
    assert echo.Add(b=10, a=1) == 11
    assert echo.Nothing() is None
    assert ("Add", (2, 1)) in server.impl.calls


# -- errors --------------------------------------------------------------------------


def test_declared_exception_is_raised_by_class(echo: Any) -> None:
    with pytest.raises(Oops) as info:
        echo.Fail("the bucket is full")
    assert str(info.value) == "the bucket is full"
    assert info.value.args == ("the bucket is full",)
    assert type(info.value) is Oops


def test_undeclared_exception_is_a_remote_error(echo: Any) -> None:
    with pytest.raises(RemoteError) as info:
        echo.Crash("bad things")
    assert info.value.kind == "ValueError"
    assert info.value.message == "bad things"
    assert str(info.value) == "ValueError: bad things"


def test_undeclared_kos_error_is_a_remote_error(echo: Any) -> None:
    with pytest.raises(RemoteError) as info:
        echo.Undeclared("not declared here")
    assert info.value.kind == "KernelAPI.UsageError"
    assert info.value.message == "not declared here"


def test_system_exit_in_an_implementation_does_not_exit_the_client(echo: Any) -> None:
    # sys.exit() inside a served method is an undeclared failure of that method;
    # it must reach the client as RemoteError, not as SystemExit (which would end
    # the client program).
    try:
        echo.Exit()
    except RemoteError as exc:
        assert exc.kind == "SystemExit"
    except BaseException as exc:
        pytest.fail(f"the client got {type(exc).__name__}: {exc!r}, not RemoteError")
    else:
        pytest.fail("no error")
    assert echo.Str("alive") == "alive"


def test_bad_result_is_a_remote_type_error_and_serving_goes_on(echo: Any) -> None:
    with pytest.raises(RemoteError) as info:
        echo.BadResult()
    assert info.value.kind == "TypeError"
    assert "result of BadResult()" in info.value.message
    assert echo.Int(1) == 1


def test_a_str_subclass_result_arrives_as_a_plain_str(echo: Any) -> None:
    # Only plain values travel: the server sends a str subclass as its str value
    # (check_value's wire form), never as a reference or as rpyc internals.
    result = echo.Odd()
    assert result == "odd"
    assert type(result) is str


def test_a_str_subclass_argument_arrives_as_a_plain_str(server: EchoServer, echo: Any) -> None:
    result = echo.Str(OddStr("sub"))
    assert result == "sub"
    assert type(result) is str
    ((name, (received,)),) = server.impl.calls
    assert (name, received) == ("Str", "sub")
    assert type(received) is str  # what the server's object got is plain too


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("Int", (True,), {}),
        ("Int", ("3",), {}),
        ("Int", (3.0,), {}),
        ("Str", (b"x",), {}),
        ("Bytes", ("x",), {}),
        ("Bool", (1,), {}),
        ("Words", ("abc",), {}),
        ("Words", (["a", 1],), {}),
        ("Pair", ("x", 1), {}),
        ("Add", (), {}),
        ("Add", (1, 2, 3), {}),
        ("Add", (1,), {"c": 2}),
        ("Str", (None,), {}),
    ],
)
def test_wrong_arguments_are_a_local_type_error(
    server: EchoServer, echo: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        getattr(echo, method)(*args, **kwargs)
    assert server.impl.calls == []
    assert not connection_of(echo).connected  # nothing was sent: the proxy connects on first call


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("Int", ("3",)),
        ("Int", (True,)),
        ("Words", (("a", 1),)),
        ("Add", ()),
        ("Add", (1, 2, 3)),
    ],
)
def test_server_checks_arguments_itself(
    server: EchoServer, method: str, args: tuple[Any, ...]
) -> None:
    assert remote_error(server, 0, Echo.methods()[method], args).kind == "TypeError"


# -- what can be called ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["Secret", "_record", "__init__", "__class__", "calls", ""])
def test_only_interface_methods_can_be_called(server: EchoServer, name: str) -> None:
    error = remote_error(server, 0, spec(name, returns=str), ())
    assert error.kind == "NoSuchMethod"
    assert "ToyAPI.Echo" in error.message


@pytest.mark.parametrize("handle", [1, 99, -1, 2**40])
def test_an_unknown_handle_is_a_remote_error(server: EchoServer, handle: int) -> None:
    assert remote_error(server, handle, Echo.methods()["Str"], ("x",)).kind == "NoSuchObject"


@pytest.mark.parametrize(
    "request_",
    [
        (consts.HANDLE_GETROOT,),
        (consts.HANDLE_GETATTR, 0, "calls"),
        (consts.HANDLE_CALL, 0, (), ()),
        (consts.HANDLE_INSPECT, 0),
        (consts.HANDLE_PICKLE, 0, 2),
    ],
    ids=["getroot", "getattr", "call", "inspect", "pickle"],
)
def test_rpyc_requests_outside_kos_are_refused(
    server: EchoServer, request_: tuple[Any, ...]
) -> None:
    """Such a request ends its connection (no exception message is sent back)."""
    with open_link(server) as link:
        conn = link.connect()
        with pytest.raises(EOFError):
            conn.request(request_[0], request_[1:], 5.0)
        assert conn.closed
    with open_link(server) as link:
        proxy = _rpc.make_proxy(Echo, link)
        assert proxy.Str("still fine") == "still fine"
    assert server.impl.calls == [("Str", ("still fine",))]


# -- by reference ----------------------------------------------------------------------


def test_by_reference_result_keeps_state(server: EchoServer, echo: Any) -> None:
    first = echo.Open()
    second = echo.Open()
    assert isinstance(first, Counter)
    assert "ToyAPI.Counter" in repr(first)
    assert _rpc.sbh_of(first) is None  # a by-reference object has no SBH of its own
    assert first.Incr() == 1
    assert first.Incr() == 2
    assert second.Incr() == 1
    assert first.Value() == 2
    assert second.Value() == 1
    assert echo.Str("root still works") == "root still works"


def test_dropping_a_reference_releases_the_object(server: EchoServer, echo: Any) -> None:
    counter = echo.Open()
    assert counter.Incr() == 1
    (ref,) = server.impl.counters
    assert ref() is not None
    del counter
    gc.collect()
    wait_for(lambda: ref() is None, 5.0, "the server to release the counter")
    assert echo.Int(5) == 5


def test_references_die_with_their_connection(server: EchoServer) -> None:
    proxy = server.proxy()
    counter = proxy.Open()
    assert counter.Incr() == 1
    connection_of(proxy).close()
    with pytest.raises(ServiceUnavailable):
        counter.Incr()
    (ref,) = server.impl.counters
    wait_for(lambda: ref() is None, 5.0, "the server to drop the counter")


# -- robustness ------------------------------------------------------------------------


@dataclass
class Watched:
    """An echo server whose sessions report their opening and closing."""

    server: EchoServer
    impl: EchoImpl
    #: The token of every session closed so far.
    closed: list[str]
    #: Set once a session was opened.
    opened: threading.Event


@pytest.fixture
def watched() -> Iterator[Watched]:
    impl = EchoImpl()
    closed: list[str] = []
    opened = threading.Event()

    def authorize(token: str) -> _rpc.ServerSession | None:
        if token != TOKEN:
            return None
        opened.set()
        return _rpc.ServerSession(impl, Echo, on_close=lambda: closed.append(token))

    with echo_server(authorize=authorize) as srv:
        yield Watched(srv, impl, closed, opened)


def raw_authenticated(address: wire.Address) -> socket.socket:
    sock = address.connect(5.0)
    wire.client_handshake(sock, TOKEN)
    return sock


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(bytes(random.Random(1).randrange(256) for _ in range(4096)), id="random"),
        pytest.param(b"\x00" * 64, id="zeros"),
        pytest.param(struct.pack("!LB", 0xFFFFFFF0, 0) + b"abc", id="huge-length"),
        pytest.param(struct.pack("!LB", 10, 1) + b"not zlib!!" + b"\n", id="bad-compressed"),
        pytest.param(struct.pack("!LB", 5, 0) + b"\xff\xff\xff\xff\xff" + b"\n", id="bad-brine"),
    ],
)
def test_garbage_after_the_handshake_ends_only_that_connection(
    watched: Watched, payload: bytes
) -> None:
    srv = watched.server
    healthy = srv.proxy()
    assert healthy.Str("before") == "before"
    sock = raw_authenticated(srv.address)
    try:
        sock.sendall(payload)
    finally:
        sock.close()
    wait_for(lambda: len(watched.closed) == 1, 5.0, "the server to end the garbage connection")
    assert healthy.Str("after") == "after"
    assert srv.proxy().Str("new client") == "new client"
    assert watched.impl.calls == [
        ("Str", ("before",)),
        ("Str", ("after",)),
        ("Str", ("new client",)),
    ]


def test_garbage_on_a_connection_kept_open_does_not_block_others(watched: Watched) -> None:
    sock = raw_authenticated(watched.server.address)
    try:
        sock.sendall(os.urandom(2048))
        assert watched.server.proxy().Str("not blocked") == "not blocked"
    finally:
        sock.close()


def test_abrupt_disconnect_ends_only_that_connection(watched: Watched) -> None:
    proxy = watched.server.proxy()
    assert proxy.Str("x") == "x"
    link = connection_of(proxy)
    conn = link.connect()
    raw = socket.socket(fileno=os.dup(conn.fileno()))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.shutdown(socket.SHUT_RDWR)
    raw.close()
    wait_for(lambda: watched.closed == [TOKEN], 5.0, "the server to notice the disconnect")
    with pytest.raises(ServiceUnavailable):
        proxy.Str("y")
    assert watched.server.proxy().Str("others fine") == "others fine"
    link.close()


def test_client_close_runs_the_session_close_hook(watched: Watched) -> None:
    proxy = watched.server.proxy()
    proxy.Nothing()
    assert watched.opened.is_set()
    assert watched.closed == []
    connection_of(proxy).close()
    wait_for(lambda: watched.closed == [TOKEN], 5.0, "the close hook")
    with pytest.raises(ServiceUnavailable, match="already closed"):
        proxy.Nothing()


def test_service_unavailable_when_the_server_is_closed() -> None:
    with echo_server() as srv:
        connected = srv.proxy()
        assert connected.Str("x") == "x"
        sbh = srv.sbh
        srv.server.close()
        srv.server.close()  # idempotent
    with pytest.raises(ServiceUnavailable):
        connected.Str("y")
    with pytest.raises(ServiceUnavailable, match="cannot connect"):
        _rpc.object_of_sbh(sbh, Echo).Str("z")


def test_service_unavailable_names_the_object() -> None:
    with short_dir() as base:
        sbh = wire.format_sbh(wire.Address(path=str(base / "nobody.sock")), "tok")
        proxy = _rpc.object_of_sbh(sbh, "ToyAPI.Echo")
        with pytest.raises(ServiceUnavailable, match=r"ToyAPI\.Echo"):
            proxy.Str("x")


class Slow(Interface, wire_name="ToySlowAPI.Slow"):
    """A service that does not answer until told to."""

    def Block(self) -> None:
        """Wait until released."""
        raise NotImplementedError


def test_a_call_without_an_answer_times_out_as_service_unavailable() -> None:
    release = threading.Event()

    class SlowImpl:
        def Block(self) -> None:
            release.wait(10)

    with short_dir() as base:
        server = _rpc.Server(
            wire.Address(path=str(base / "slow.sock")),
            lambda token: _rpc.ServerSession(SlowImpl(), Slow),
            name="slow",
        ).start()
        link = _rpc.ClientConnection(
            server.address, TOKEN, "slow", _rpc.RpcConfig(call_timeout=0.3)
        )
        try:
            proxy = _rpc.make_proxy(Slow, link)
            with pytest.raises(ServiceUnavailable, match=r"slow: Block\(\): no answer within"):
                proxy.Block()
        finally:
            release.set()
            link.close()
            server.close()


def test_object_of_sbh_arguments() -> None:
    sbh = wire.format_sbh(wire.Address(path="/nonexistent/x.sock"), "tok")
    assert isinstance(_rpc.object_of_sbh(sbh, "ToyAPI.Echo"), Echo)
    with pytest.raises(TypeError):
        _rpc.object_of_sbh(sbh)
    with pytest.raises(TypeError):
        _rpc.object_of_sbh(sbh, str)
    with pytest.raises(UsageError):
        _rpc.object_of_sbh("not an sbh", Echo)
    with pytest.raises(KosError):
        _rpc.object_of_sbh(sbh, "NoSuchAPI.Thing")


# -- concurrency and transports ----------------------------------------------------------


def hammer(proxy: Any, worker: int, rounds: int, errors: list[BaseException]) -> None:
    try:
        for i in range(rounds):
            text = f"w{worker}-{i}"
            assert proxy.Str(text) == text
            assert proxy.Add(worker, i) == worker + i
            assert proxy.Words([text, str(i)]) == [text, str(i)]
    except BaseException as exc:
        errors.append(exc)


def hammer_all(proxies: list[Any]) -> None:
    """:func:`hammer` with every proxy at once, worker ``n`` in a thread of its own."""
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=hammer, args=(p, n, 30, errors)) for n, p in enumerate(proxies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_many_concurrent_clients(server: EchoServer) -> None:
    proxies = [server.proxy() for _ in range(16)]
    hammer_all(proxies)
    for proxy in proxies:
        connection_of(proxy).close()


def test_many_threads_share_one_proxy(echo: Any) -> None:
    hammer_all([echo] * 8)


def test_tcp_transport() -> None:
    with echo_server(wire.Address(host="127.0.0.1", port=0)) as srv:
        assert srv.address.port != 0
        assert srv.sbh.startswith("kos+tcp://127.0.0.1:")
        proxy = srv.proxy()
        assert proxy.Bytes(b"over tcp") == b"over tcp"
        assert proxy.Open().Incr() == 1
        connection_of(proxy).close()


def test_tcp_ipv6_transport() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        require(False, "no IPv6 loopback (::1) here")
    with echo_server(wire.Address(host="::1", port=0)) as srv:
        assert srv.sbh.startswith("kos+tcp://[::1]:")
        assert srv.proxy().Str("v6") == "v6"


def test_unix_socket_is_private() -> None:
    with echo_server() as srv:
        assert srv.address.path is not None
        assert os.stat(srv.address.path).st_mode & 0o777 == 0o600
        path = srv.address.path
    assert not os.path.exists(path)


def test_wrong_token_never_reaches_the_object(server: EchoServer) -> None:
    proxy = _rpc.object_of_sbh(wire.format_sbh(server.address, "wrong-token"), Echo)
    with pytest.raises(AuthenticationFailed):
        proxy.Str("x")
    assert server.impl.calls == []


class SmallEcho(EchoImpl):
    """An echo that accepts requests of at most 4 KiB."""

    kos_max_request = 4096


def test_an_oversized_request_is_refused_and_the_connection_goes_on() -> None:
    impl = SmallEcho()

    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(impl, Echo) if token == TOKEN else None

    with echo_server(authorize=authorize) as srv:
        proxy = srv.proxy()
        assert proxy.Bytes(b"x" * 1000) == b"x" * 1000
        with pytest.raises(RemoteError) as info:
            proxy.Bytes(b"y" * 100_000)
        assert info.value.kind == "RequestTooLarge"
        assert "100" in info.value.message
        assert proxy.Str("still connected") == "still connected"
        assert [name for name, _ in impl.calls] == ["Bytes", "Str"]


class OneLargeMethod(SmallEcho):
    """4 KiB requests, except ``Bytes``, which takes up to 256 KiB."""

    kos_larger_requests = {"Bytes": 256 * 1024}


def test_one_method_may_accept_larger_requests_than_the_others() -> None:
    impl = OneLargeMethod()

    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(impl, Echo) if token == TOKEN else None

    with echo_server(authorize=authorize) as srv:
        proxy = srv.proxy()
        assert proxy.Bytes(b"y" * 100_000) == b"y" * 100_000
        with pytest.raises(RemoteError) as info:
            proxy.Str("s" * 100_000)  # the other methods keep the small cap
        assert info.value.kind == "RequestTooLarge" and "4096 bytes" in info.value.message
        with pytest.raises(RemoteError) as info:
            proxy.Bytes(b"z" * 300_000)  # and the large one its own
        assert info.value.kind == "RequestTooLarge" and "262144 bytes" in info.value.message
        assert proxy.Str("still connected") == "still connected"
        assert [name for name, _ in impl.calls] == ["Bytes", "Str"]
