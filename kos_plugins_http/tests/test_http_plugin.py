"""The http plugin through a real kernel: a client gets its own requester child from
``http`` and fetches from real loopback HTTP, HTTPS and FTP servers.
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import HttpClient, StartHttp, shared_http
from httptest_helpers import LOOPBACK, FtpSite, HttpPlugin
from kos_core import _rpc
from kos_core.errors import AuthenticationFailed
from kos_core.fileapi import File
from kos_core.testing import KernelProcess, KosEnv, sbh_pid
from kos_plugins_http import FileIOError, Requester

TEXT = b"first line\nsecond line\nthird line\n"


def serve_text(web: HTTPServer, path: str = "/text", body: bytes = TEXT) -> str:
    web.expect_request(path).respond_with_data(
        body, content_type="text/plain", headers={"X-Kos-Test": "yes"}
    )
    return web.url_for(path)


def serve_stream(web: HTTPServer, path: str, body: bytes, piece: int = 100) -> str:
    """Serve ``body`` in pieces of ``piece`` bytes without a Content-Length."""

    def handler(request: Request) -> Response:
        return Response(
            (body[i : i + piece] for i in range(0, len(body), piece)), mimetype="text/plain"
        )

    web.expect_request(path).respond_with_handler(handler)
    return web.url_for(path)


def redirect(web: HTTPServer, path: str, location: str, status: int = 302) -> str:
    web.expect_request(path).respond_with_data(b"", status=status, headers={"Location": location})
    return web.url_for(path)


#: Kernels shared by the tests of one policy each (``http`` is the loopback one's).
max_size_1000 = shared_http(LOOPBACK + "max-size: 1000\n")
two_redirects = shared_http(LOOPBACK + "max-redirects: 2\n")
only_localhost = shared_http("allow-hosts: localhost\n")


def header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


# ---------------------------------------------------------------------------- fetching


def test_get_with_info_returns_header_pairs_and_body(http: HttpPlugin, web: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        response = Response(TEXT, mimetype="text/plain")
        response.headers.add("X-Kos-Test", "yes")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    web.expect_request("/info").respond_with_handler(handler)
    headers, body = http.requester().GetWithInfo(web.url_for("/info"))
    assert isinstance(headers, list)
    assert all(
        isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        for pair in headers
    )
    assert header(headers, "X-Kos-Test") == ["yes"]
    assert header(headers, "Content-Type")[0].startswith("text/plain")
    assert header(headers, "Content-Length") == [str(len(TEXT))]
    assert sorted(header(headers, "Set-Cookie")) == ["a=1", "b=2"]  # repeated keys kept
    assert body.read() == TEXT


def test_get_returns_a_file_to_read_by_size_line_and_lines(
    http: HttpPlugin, web: HTTPServer
) -> None:
    url = serve_text(web)
    requester = http.requester()
    assert isinstance(requester, Requester)

    whole = requester.Get(url)
    assert isinstance(whole, File)
    assert whole.read() == TEXT
    assert whole.read() == b""

    body = requester.Get(url)  # a requester serves many requests
    assert body.read(5) == b"first"
    assert body.tell() == 5
    assert body.readline() == b" line\n"
    assert body.readline() == b"second line\n"
    assert body.readlines() == [b"third line\n"]
    assert body.readline() == b""
    assert body.read(10) == b""

    again = requester.Get(url)
    assert again.readlines() == TEXT.splitlines(keepends=True)
    again.close()


def test_a_response_body_is_read_only(http: HttpPlugin, web: HTTPServer) -> None:
    body = http.requester().Get(serve_text(web))
    body.open("r")  # already open: nothing to do
    body.flush()
    with pytest.raises(FileIOError, match="read-only"):
        body.write(b"x")
    with pytest.raises(FileIOError, match="read-only"):
        body.writelines([b"x"])
    with pytest.raises(FileIOError, match="seek"):
        body.seek(0)
    with pytest.raises(FileIOError, match="writing"):
        body.open("w")
    assert body.read() == TEXT


def test_readline_returns_a_line_before_the_rest_of_the_body_arrives(
    start_http: StartHttp, web: HTTPServer
) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        def pieces() -> Iterator[bytes]:
            yield b"first line\n"
            release.wait(20)  # the rest comes only once the client has its first line
            yield b"the rest\n"

        return Response(pieces(), mimetype="text/plain")

    web.expect_request("/slow").respond_with_handler(slow)
    body = start_http(LOOPBACK + "timeout: 2\n").requester().Get(web.url_for("/slow"))
    try:
        started = time.monotonic()
        assert body.readline() == b"first line\n"
        assert time.monotonic() - started < 1.5
    finally:
        release.set()
    assert body.read() == b"the rest\n"


def test_a_large_body_arrives_whole(http: HttpPlugin, web: HTTPServer) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    web.expect_request("/large").respond_with_data(data)
    body = http.requester().Get(web.url_for("/large"))
    assert body.read() == data


def test_large_bodies_of_unknown_length_arrive_whole(http: HttpPlugin, web: HTTPServer) -> None:
    data = os.urandom(3 * 1024 * 1024)
    web.expect_request("/chunked").respond_with_handler(
        lambda request: Response(data[i : i + 65536] for i in range(0, len(data), 65536))
    )
    web.expect_request("/gzip").respond_with_data(
        gzip.compress(data, 1), headers={"Content-Encoding": "gzip"}
    )
    requester = http.requester()
    for path in ("/chunked", "/gzip"):
        headers, body = requester.GetWithInfo(web.url_for(path))
        assert header(headers, "Content-Length") == [] or path == "/gzip"
        assert body.read() == data, path


def test_max_size_holds_for_a_large_body_read_at_once(
    start_http: StartHttp, web: HTTPServer
) -> None:
    big = serve_stream(web, "/big", b"x" * 3_000_001, piece=65536)
    fits = serve_stream(web, "/fits", b"y" * 3_000_000, piece=65536)
    requester = start_http(LOOPBACK + "max-size: 3000000\n").requester()
    with pytest.raises(FileIOError, match="larger than max-size"):
        requester.Get(big).read()
    assert requester.Get(fits).read() == b"y" * 3_000_000


def test_a_body_cut_short_by_the_server_is_a_file_io_error(http: HttpPlugin) -> None:
    announced, sent = 3 * 1024 * 1024, 1024 * 1024
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve_once() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\r\n".encode() + b"z" * sent
                )

        server = threading.Thread(target=serve_once, daemon=True)
        server.start()
        requester = http.requester()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/cut"
        body = requester.Get(url)
        with pytest.raises(FileIOError) as caught:
            body.read()
        assert url in str(caught.value)
        server.join(10)
    with pytest.raises(FileIOError):  # the requester goes on
        requester.Get(url)


def test_http_404_raises_file_io_error_with_status(http: HttpPlugin, web: HTTPServer) -> None:
    web.expect_request("/missing").respond_with_data(b"nope", status=404)
    requester = http.requester()
    with pytest.raises(FileIOError) as caught:
        requester.Get(web.url_for("/missing"))
    assert caught.value.status == 404
    assert caught.value.reason.upper() == "NOT FOUND"
    assert "404" in str(caught.value)
    assert web.url_for("/missing") in str(caught.value)
    web.expect_request("/broken").respond_with_data(b"oops", status=500)
    with pytest.raises(FileIOError) as caught:
        requester.GetWithInfo(web.url_for("/broken"))
    assert caught.value.status == 500
    # The requester is still usable after a failure.
    assert requester.Get(serve_text(web)).read() == TEXT


def test_unreachable_port_raises_file_io_error(http: HttpPlugin) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/gone"
    with pytest.raises(FileIOError) as caught:
        http.requester().Get(url)
    assert url in str(caught.value)


def test_refused_schemes(http: HttpPlugin) -> None:
    requester = http.requester()
    for url in (
        "file:///etc/passwd",
        "data:text/plain,hello",
        "gopher://127.0.0.1/1",
        "javascript:alert(1)",
    ):
        with pytest.raises(FileIOError) as caught:
            requester.Get(url)
        message = str(caught.value)
        scheme = url.partition(":")[0]
        assert f"scheme {scheme!r} is not allowed" in message
        assert "http, https, ftp" in message


# ---------------------------------------------------------------------------- policy


def test_max_size_refuses_a_bigger_body_with_content_length(
    max_size_1000: KernelProcess, http_client: HttpClient, web: HTTPServer
) -> None:
    web.expect_request("/big").respond_with_data(b"x" * 1001)
    web.expect_request("/fits").respond_with_data(b"y" * 1000)
    requester = http_client(max_size_1000).requester()
    with pytest.raises(FileIOError, match="max-size") as caught:
        requester.Get(web.url_for("/big"))
    assert "1001" in str(caught.value)
    assert requester.Get(web.url_for("/fits")).read() == b"y" * 1000


def test_max_size_refuses_a_bigger_body_without_content_length(
    max_size_1000: KernelProcess, http_client: HttpClient, web: HTTPServer
) -> None:
    big = serve_stream(web, "/big", b"x" * 1001)
    fits = serve_stream(web, "/fits", b"y" * 1000)
    requester = http_client(max_size_1000).requester()
    headers, body = requester.GetWithInfo(big)
    assert header(headers, "Content-Length") == []  # the size is only known by reading
    with pytest.raises(FileIOError, match="max-size"):
        body.read()
    _, small = requester.GetWithInfo(fits)
    assert small.read() == b"y" * 1000
    lines = requester.Get(serve_stream(web, "/lines", b"line\n" * 400))  # 2000 bytes
    with pytest.raises(FileIOError, match="max-size"):
        while lines.readline():
            pass


def test_redirects_are_followed(
    two_redirects: KernelProcess, http_client: HttpClient, web: HTTPServer
) -> None:
    final = serve_text(web, "/final")
    redirect(web, "/hop2", "/final", 301)  # a relative Location
    first = redirect(web, "/hop1", web.url_for("/hop2"), 307)
    requester = http_client(two_redirects).requester()
    assert requester.Get(first).read() == TEXT
    assert requester.Get(final).read() == TEXT


def test_too_many_redirects_are_refused(
    two_redirects: KernelProcess, http_client: HttpClient, web: HTTPServer
) -> None:
    serve_text(web, "/final")
    redirect(web, "/hop3", "/final")
    redirect(web, "/hop2", "/hop3")
    first = redirect(web, "/hop1", "/hop2")
    loop = redirect(web, "/loop", "/loop")
    requester = http_client(two_redirects).requester()
    with pytest.raises(FileIOError, match="too many redirects"):
        requester.Get(first)
    with pytest.raises(FileIOError, match="too many redirects"):
        requester.Get(loop)


def test_a_redirect_to_a_refused_scheme_is_refused(http: HttpPlugin, web: HTTPServer) -> None:
    to_file = redirect(web, "/to-file", "file:///etc/passwd")
    to_gopher = redirect(web, "/to-gopher", "gopher://127.0.0.1/1")
    requester = http.requester()
    with pytest.raises(FileIOError, match="scheme 'file' is not allowed"):
        requester.Get(to_file)
    with pytest.raises(FileIOError, match="scheme 'gopher' is not allowed"):
        requester.Get(to_gopher)


def test_a_redirect_to_a_denied_host_is_refused(start_http: StartHttp, web: HTTPServer) -> None:
    serve_text(web, "/secret")
    to_denied = redirect(
        web, "/to-denied", web.url_for("/secret").replace("127.0.0.1", "localhost")
    )
    to_unlisted = redirect(web, "/to-unlisted", "http://10.9.8.7/secret")
    requester = start_http(
        "allow-hosts: 127.0.0.1 localhost 10.0.0.0/8\ndeny-hosts: localhost 10.9.8.7\n"
    ).requester()
    with pytest.raises(FileIOError, match="denied by deny-hosts"):
        requester.Get(to_denied)
    with pytest.raises(FileIOError, match="denied by deny-hosts"):
        requester.Get(to_unlisted)
    assert len(web.log) == 2  # the denied targets were never contacted


def test_a_host_not_in_allow_hosts_is_refused(
    only_localhost: KernelProcess, http_client: HttpClient, web: HTTPServer
) -> None:
    url = serve_text(web)
    by_name = url.replace("127.0.0.1", "localhost")
    away = redirect(web, "/away", url).replace("127.0.0.1", "localhost")
    requester = http_client(only_localhost).requester()
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(url)  # 127.0.0.1 is not "localhost"
    assert web.log == []
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(away)  # nor is it after a redirect
    assert len(web.log) == 1
    assert requester.Get(by_name).read() == TEXT


def test_the_default_policy_refuses_loopback(
    start_http: StartHttp, web: HTTPServer, kos_env: KosEnv
) -> None:
    url = serve_text(web)
    requester = start_http("").requester()
    with pytest.raises(FileIOError, match="local or private address") as refused:
        requester.Get(url)
    # ... and says which file and section to edit.
    setup = kos_env.config_dir / "plugins"
    assert f"list it in allow-hosts in the [http] section of {setup}" in str(refused.value)
    with pytest.raises(FileIOError, match="allow-hosts"):
        requester.Get(url.replace("127.0.0.1", "localhost"))
    assert web.log == []


def test_timeout_ends_a_stalled_request(start_http: StartHttp, web: HTTPServer) -> None:
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(20)
        return Response(b"late")

    web.expect_request("/stall").respond_with_handler(stall)
    requester = start_http(LOOPBACK + "timeout: 1\n").requester()
    started = time.monotonic()
    try:
        with pytest.raises(FileIOError, match="timed out"):
            requester.Get(web.url_for("/stall"))
    finally:
        release.set()
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------- https, ftp


def test_https_with_the_ca_file(
    start_http: StartHttp, secure_web: HTTPServer, tls_ca: tuple[object, Path]
) -> None:
    url = serve_text(secure_web)
    assert url.startswith("https://127.0.0.1:")
    requester = start_http(LOOPBACK + f"ca-file: {tls_ca[1]}\n").requester()
    headers, body = requester.GetWithInfo(url)
    assert header(headers, "X-Kos-Test") == ["yes"]
    assert body.read() == TEXT


def test_https_without_the_ca_is_refused(http: HttpPlugin, secure_web: HTTPServer) -> None:
    url = serve_text(secure_web)
    with pytest.raises(FileIOError, match=r"(?i)certificate"):
        http.requester().Get(url)


def test_ftp(start_http: StartHttp, ftp_site: FtpSite) -> None:
    (ftp_site.root / "hello.txt").write_bytes(TEXT)
    (ftp_site.root / "big.bin").write_bytes(b"z" * 5000)
    requester = start_http(LOOPBACK + "max-size: 4000\n").requester()
    headers, body = requester.GetWithInfo(ftp_site.url("hello.txt"))
    assert body.readline() == b"first line\n"
    assert body.read() == TEXT[len(b"first line\n") :]
    assert header(headers, "Content-type") == ["text/plain"]
    assert requester.Get(ftp_site.url("hello.txt")).readlines() == TEXT.splitlines(keepends=True)
    with pytest.raises(FileIOError, match="max-size"):
        requester.Get(ftp_site.url("big.bin")).read()
    with pytest.raises(FileIOError, match="ftp"):
        requester.Get(ftp_site.url("missing.txt"))


def test_ftp_host_is_checked_too(
    only_localhost: KernelProcess, http_client: HttpClient, ftp_site: FtpSite
) -> None:
    (ftp_site.root / "hello.txt").write_bytes(TEXT)
    requester = http_client(only_localhost).requester()
    with pytest.raises(FileIOError, match="not in allow-hosts"):
        requester.Get(ftp_site.url("hello.txt"))


# ---------------------------------------------------------------------------- clients


@pytest.fixture
def other_client_links() -> Iterator[list[_rpc.ClientConnection]]:
    links: list[_rpc.ClientConnection] = []
    try:
        yield links
    finally:
        for link in links:
            link.close()


def test_a_second_client_cannot_use_another_clients_requester(
    http: HttpPlugin, web: HTTPServer, other_client_links: list[_rpc.ClientConnection]
) -> None:
    url = serve_text(web)
    requester = http.requester()
    assert requester.Get(url).read() == TEXT
    sbh = _rpc.sbh_of(requester)
    assert sbh
    intruder = _rpc.object_of_sbh(sbh, Requester)
    link = _rpc.connection_of(intruder)
    assert link is not None
    other_client_links.append(link)
    with pytest.raises(AuthenticationFailed):
        intruder.Get(url)
    assert requester.Get(url).read() == TEXT  # the owner is not disturbed


def test_each_client_gets_its_own_process(http: HttpPlugin, web: HTTPServer) -> None:
    first, first_pid = http.requester_with_pid()
    second, second_pid = http.requester_with_pid()
    assert first_pid != second_pid
    assert sbh_pid(first) == first_pid
    assert sbh_pid(second) == second_pid
    # Both fetch at the same time: the server answers only once both requests are in.
    both_in = threading.Barrier(2, timeout=15)

    def together(request: Request) -> Response:
        both_in.wait()
        return Response(b"together")

    web.expect_request("/together").respond_with_handler(together)
    results: dict[str, bytes] = {}

    def fetch(name: str, requester: Requester) -> None:
        data = requester.Get(web.url_for("/together")).read()
        results[name] = data if isinstance(data, bytes) else data.encode()

    threads = [
        threading.Thread(target=fetch, args=("first", first)),
        threading.Thread(target=fetch, args=("second", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"first": b"together", "second": b"together"}


def test_a_refused_connection_says_where_and_why(http: HttpPlugin) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    requester = http.requester()
    with pytest.raises(FileIOError) as refused:
        requester.Get(f"http://127.0.0.1:{port}/")
    message = str(refused.value)
    expected = (
        f"GET http://127.0.0.1:{port}/: cannot connect to 127.0.0.1:{port}: Connection refused"
    )
    assert message == expected, message
    assert "Guarded" not in message and "object at" not in message
