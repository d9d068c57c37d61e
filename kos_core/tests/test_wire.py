"""Addresses, SBHs and the opening handshake (kos_core._net.wire), over real sockets."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coretest_util import TOKEN, EchoServer, echo_server, python_env, short_dir, write_script
from kos_core import _rpc
from kos_core._net import wire
from kos_core._net.wire import Address, format_sbh, parse_sbh
from kos_core.errors import AuthenticationFailed, ProtocolMismatch, UsageError
from toyapi import Echo

# -- addresses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("unix:/run/kos/k.sock", Address(path="/run/kos/k.sock"), "unix:/run/kos/k.sock"),
        ("/run/kos/k.sock", Address(path="/run/kos/k.sock"), "unix:/run/kos/k.sock"),
        ("tcp:127.0.0.1:7000", Address(host="127.0.0.1", port=7000), "tcp:127.0.0.1:7000"),
        ("127.0.0.1:7000", Address(host="127.0.0.1", port=7000), "tcp:127.0.0.1:7000"),
        ("tcp:localhost:0", Address(host="localhost", port=0), "tcp:localhost:0"),
        ("[::1]:7000", Address(host="::1", port=7000), "tcp:[::1]:7000"),
        ("tcp:[::1]:65535", Address(host="::1", port=65535), "tcp:[::1]:65535"),
    ],
)
def test_address_parse_and_str(text: str, expected: Address, canonical: str) -> None:
    address = Address.parse(text)
    assert address == expected
    assert str(address) == canonical
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize(
    "text",
    ["", "localhost", "host:", ":7000", "tcp:", "tcp:host", "host:port", "host:-1", "h:7x"],
)
def test_bad_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="bad address"):
        Address.parse(text)


@pytest.mark.parametrize("text", ["tcp:127.0.0.1:65536", "127.0.0.1:99999", "unix:"])
def test_address_out_of_range_or_empty_is_a_usage_error(text: str) -> None:
    # A port above 65535 or an empty socket path can never be listened on or
    # connected to; it should be refused where it is parsed, as one clear error.
    with pytest.raises(UsageError):
        Address.parse(text)


@given(
    st.one_of(
        st.builds(
            lambda parts: Address(path="/" + "/".join(parts)),
            st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), min_size=1),
        ),
        st.builds(
            lambda host, port: Address(host=host, port=port),
            st.sampled_from(["127.0.0.1", "::1", "localhost", "example.org", "fe80::1"]),
            st.integers(0, 65535),
        ),
    )
)
def test_address_str_parse_round_trip(address: Address) -> None:
    assert Address.parse(str(address)) == address


def test_too_long_unix_path_is_a_clear_usage_error() -> None:
    path = "/tmp/" + "x" * 200 + ".sock"
    with pytest.raises(UsageError) as info:
        Address(path=path).listen()
    message = str(info.value)
    assert "too long" in message
    assert "107" in message
    assert "KOS_RUNTIME_DIR" in message
    assert not Path(path).exists()


def test_unix_path_of_exactly_the_limit_is_accepted() -> None:
    with short_dir() as base:
        prefix = f"{base}/"
        path = prefix + "s" * (107 - len(prefix))
        assert len(path.encode()) == 107
        sock, bound = Address(path=path).listen()
        try:
            assert bound.path == path
        finally:
            sock.close()
        with pytest.raises(UsageError, match="too long"):
            Address(path=path + "x").listen()


def test_tcp_listen_resolves_port_zero() -> None:
    sock, bound = Address(host="127.0.0.1", port=0).listen()
    try:
        assert bound.host == "127.0.0.1"
        assert bound.port == sock.getsockname()[1] != 0
    finally:
        sock.close()


# -- string binding handles ---------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "sbh"),
    [
        (Address(path="/run/kos/p1.sock"), "kos+unix:///run/kos/p1.sock#abc-DEF_123"),
        (Address(host="127.0.0.1", port=7000), "kos+tcp://127.0.0.1:7000#abc-DEF_123"),
        (Address(host="::1", port=7000), "kos+tcp://[::1]:7000#abc-DEF_123"),
        (
            Address(host="127.0.0.1", port=7000, kernel="A.1"),
            "kos+tcp://127.0.0.1:7000?kernel=A.1#abc-DEF_123",
        ),
    ],
)
def test_sbh_format_and_parse(address: Address, sbh: str) -> None:
    assert format_sbh(address, "abc-DEF_123") == sbh
    assert parse_sbh(sbh) == (address, "abc-DEF_123")


def test_an_sbh_naming_its_kernel_reads_as_before_where_the_name_is_not_known() -> None:
    # what a reader that predates ?kernel= sees: the same host, port and token
    parts = urlsplit("kos+tcp://127.0.0.1:7000?kernel=A#tok")
    assert (parts.hostname, parts.port, parts.fragment) == ("127.0.0.1", 7000, "tok")
    assert parse_sbh("kos+tcp://127.0.0.1:7000#tok")[0].kernel is None
    assert parse_sbh("kos+tcp://127.0.0.1:7000?other=1#tok")[0].kernel is None


@given(
    st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True), min_size=1, max_size=6),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
)
def test_sbh_round_trip_property(parts: list[str], token: str) -> None:
    address = Address(path="/" + "/".join(parts))
    assert parse_sbh(format_sbh(address, token)) == (address, token)


@given(
    st.text(st.sampled_from("aZ09_.-~/%?# \t\u00e9"), max_size=30),
    st.text(st.sampled_from("aZ09_-/#% "), max_size=8),
)
def test_a_plain_unix_sbh_reads_as_the_url_parser_reads_it(path: str, token: str) -> None:
    """Unix SBHs with nothing to unquote skip urllib; any string reads the same either way."""
    sbh = f"kos+unix:///{path}#{token}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "_PLAIN_UNIX_SBH", re.compile(r"(?!)"))  # never plain
        by_url = _outcome(sbh)
    assert _outcome(sbh) == by_url


def _outcome(sbh: str) -> object:
    try:
        return parse_sbh(sbh)
    except UsageError as exc:
        return str(exc)


@pytest.mark.parametrize(
    "path",
    ["/tmp/kos run/p1.sock", "/tmp/a%20b/p1.sock", "/tmp/a?b/p1.sock", "/tmp/a#b/p1.sock"],
)
def test_sbh_round_trips_unusual_but_legal_socket_paths(path: str) -> None:
    # The runtime directory comes from $KOS_RUNTIME_DIR and may hold any character a
    # file name may; the SBH of a socket in it must name that same socket.
    address = Address(path=path)
    assert parse_sbh(format_sbh(address, "tok")) == (address, "tok")


@pytest.mark.parametrize(
    "sbh",
    [
        "",
        "hello",
        "kos+unix:///run/kos/p1.sock",  # no token
        "kos+unix:///run/kos/p1.sock#",  # empty token
        "kos+unix:///run/kos/p1.sock#bad token",
        "kos+unix:///run/kos/p1.sock#t\u00f6k",
        "kos+unix:///run/kos/p1.sock#a/b",
        "kos+unix://relative/p1.sock#tok",
        "kos+tcp://127.0.0.1#tok",  # no port
        "kos+tcp://127.0.0.1:99999#tok",
        "kos+tcp://127.0.0.1:port#tok",
        "kos+tcp://:7000#tok",
        "http://127.0.0.1:7000#tok",
        "kos+udp://127.0.0.1:7000#tok",
        "kos+tcp://[::1:7000#tok",
    ],
)
def test_malformed_sbh_is_a_usage_error(sbh: str) -> None:
    with pytest.raises(UsageError):
        parse_sbh(sbh)


@given(st.text(max_size=80))
def test_parse_sbh_never_fails_otherwise(text: str) -> None:
    # UsageError or an SBH that formats back to what parses the same
    try:
        address, token = parse_sbh(text)
    except UsageError:
        return
    assert isinstance(address, Address) and isinstance(token, str) and token
    assert parse_sbh(format_sbh(address, token)) == (address, token)


# -- the handshake ---------------------------------------------------------------------


def test_tokens_equal() -> None:
    assert wire.tokens_equal("abc", "abc")
    assert not wire.tokens_equal("abd", "abc")
    assert not wire.tokens_equal("", "abc")
    assert not wire.tokens_equal("t\u00f6k", "tok")


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with echo_server() as srv:
        yield srv


def raw_exchange(address: Address, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and return everything the server sends
    until it hangs up (a reset counts as hanging up).
    """
    sock = address.connect(timeout)
    received = b""
    try:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            if data:
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    finally:
        sock.close()
    return received


def test_correct_token_is_accepted(server: EchoServer) -> None:
    sock = server.address.connect(5.0)
    try:
        wire.client_handshake(sock, TOKEN)
    finally:
        sock.close()
    assert server.proxy().Str("hi") == "hi"
    assert TOKEN in server.authorized


def test_wrong_token_is_refused(server: EchoServer) -> None:
    link = _rpc.ClientConnection(server.address, "not-the-token", "toy")
    with pytest.raises(AuthenticationFailed, match="credentials refused"):
        link.connect()
    proxy = _rpc.object_of_sbh(format_sbh(server.address, "wrong"), Echo)
    with pytest.raises(AuthenticationFailed):
        proxy.Str("x")
    reply = raw_exchange(server.address, b"KOS/1 wrong\n")
    assert reply == b"NO credentials refused\n"
    assert server.impl.calls == []


def test_server_refuses_another_protocol_version_naming_both(server: EchoServer) -> None:
    reply = raw_exchange(server.address, f"KOS/2 {TOKEN}\n".encode())
    assert reply.startswith(b"NO protocol")
    assert b"KOS/2" in reply
    assert b"KOS/1" in reply
    assert server.authorized == []


V2_SERVER = """
    import sys
    from kos_core import _rpc
    from kos_core._net import wire
    from toyapi import Echo, EchoImpl

    wire.PROTOCOL_VERSION = 2
    server = _rpc.Server(
        wire.Address(path=sys.argv[1]),
        lambda token: _rpc.ServerSession(EchoImpl(), Echo),
        name="v2",
    ).start()
    print("ready", flush=True)
    sys.stdin.read()
    server.close()
"""


def test_client_gets_protocol_mismatch_with_both_versions(tmp_path: Path) -> None:
    script = write_script(tmp_path / "v2server.py", V2_SERVER)
    with short_dir() as base:
        path = str(base / "v2.sock")
        process = subprocess.Popen(
            [sys.executable, str(script), path],
            env=python_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
            link = _rpc.ClientConnection(Address(path=path), TOKEN, "v2 server")
            with pytest.raises(ProtocolMismatch) as info:
                link.connect()
            assert "KOS/1" in str(info.value)
            assert "KOS/2" in str(info.value)
        finally:
            process.kill()
            process.communicate()


#: the answer to an opening line that is readable but not a kos handshake
NOT_KOS = b"NO not a kos handshake\n"


@pytest.mark.parametrize(
    ("opening", "answer"),
    [
        pytest.param(b"", b"", id="nothing"),
        pytest.param(b"hello\n", NOT_KOS, id="not-kos"),
        pytest.param(b"KOS/1\n", NOT_KOS, id="no-token"),
        pytest.param(b"KOS/1 \n", NOT_KOS, id="empty-token"),
        # the rest are cut without an answer: unreadable, or more than one line
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", id="http"),
        pytest.param(b"x" * 5000, b"", id="oversized-no-newline"),
        pytest.param(b"KOS/1 " + b"t" * 300 + b"\n", b"", id="oversized-line"),
        pytest.param("KOS/1 t\u00f6k\n".encode(), b"", id="non-ascii"),
        pytest.param(b"\x00\xff\xfe" * 20 + b"\n", b"", id="binary"),
        pytest.param(b"KOS/1 " + TOKEN.encode() + b"\nearly bytes", b"", id="early-bytes"),
    ],
)
def test_bad_opening_is_refused_and_server_goes_on(
    server: EchoServer, opening: bytes, answer: bytes
) -> None:
    assert raw_exchange(server.address, opening) == answer
    assert server.authorized == []
    assert server.impl.calls == []
    assert server.proxy().Str("still serving") == "still serving"


def test_a_silent_client_does_not_hold_up_others(server: EchoServer) -> None:
    silent = server.address.connect(5.0)
    try:
        assert server.proxy().Str("not blocked") == "not blocked"
    finally:
        silent.close()


def peer(script: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """A socket pair whose far end reads one line, answers ``script`` and hangs up."""
    near, far = socket.socketpair()

    def run() -> None:
        with far:
            far.recv(1024)
            if script is not None:
                far.sendall(script)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    near.settimeout(5.0)
    return near, thread


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.0 400 Bad Request\n", "not a kos server"),
        (None, "closed"),
        (b"NO go away\n", "go away"),
        (b"OK KOS/1\n" + b"x" * 10, "before the handshake was answered"),
        (b"y" * 1000, "too long"),
    ],
)
def test_client_handshake_refuses_a_non_kos_peer(answer: bytes | None, message: str) -> None:
    sock, thread = peer(answer)
    try:
        with pytest.raises(AuthenticationFailed, match=message):
            wire.client_handshake(sock, TOKEN)
    finally:
        sock.close()
        thread.join(5)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.0 400 Bad Request\n", "not a kos server"),
        (None, "closed"),
        (b"NO go away\n", "go away"),
        (b"y" * 1000, "too long"),
    ],
)
def test_stream_handshake_refuses_a_non_kos_peer(answer: bytes | None, message: str) -> None:
    sock, thread = peer(answer)
    try:
        with pytest.raises(AuthenticationFailed, match=message):
            wire.client_handshake(sock, TOKEN, stream=True)
    finally:
        sock.close()
        thread.join(5)


def test_stream_handshake_leaves_the_bytes_after_the_answer_unread() -> None:
    sock, thread = peer(b"OK KOS/1\n" + b"stream bytes")
    try:
        wire.client_handshake(sock, TOKEN, stream=True)
        thread.join(5)
        assert sock.recv(100) == b"stream bytes"
    finally:
        sock.close()
