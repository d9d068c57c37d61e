"""Fixtures of the http plugin's tests: loopback HTTP, HTTPS and FTP servers, and
kernels running the installed http plugin: one per test (``start_http``, in the test's
own kos place), or one per module for the tests that only fetch (``http``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer

from httptest_helpers import LOOPBACK, FtpSite, HttpPlugin, http_setup, start_http_plugin
from kos_core.testing import KernelProcess, StartKernel, shared_kernel

StartHttp = Callable[..., HttpPlugin]


def _serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[HTTPServer]:
    """A threaded HTTP server on 127.0.0.1 (HTTPS with ``ssl_context``), running until
    the fixture that yields from this ends.
    """
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=ssl_context, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _cleared(server: HTTPServer) -> Iterator[HTTPServer]:
    """``server`` for one test: no handlers and an empty log, before and after."""
    server.clear()
    try:
        yield server
    finally:
        server.clear()


@pytest.fixture(scope="session")
def web_server() -> Iterator[HTTPServer]:
    """One threaded HTTP server on 127.0.0.1 for the session (see :func:`web`)."""
    yield from _serve()


@pytest.fixture
def web(web_server: HTTPServer) -> Iterator[HTTPServer]:
    """The HTTP server on 127.0.0.1, with no handlers and an empty log."""
    yield from _cleared(web_server)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A private CA and its certificate as a PEM file."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture(scope="session")
def secure_web_server(tls_ca: tuple[trustme.CA, Path]) -> Iterator[HTTPServer]:
    """One HTTPS server on 127.0.0.1 for the session, its certificate from :func:`tls_ca`."""
    ca, _ = tls_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    yield from _serve(context)


@pytest.fixture
def secure_web(secure_web_server: HTTPServer) -> Iterator[HTTPServer]:
    """The HTTPS server on 127.0.0.1, with no handlers and an empty log."""
    yield from _cleared(secure_web_server)


@pytest.fixture
def ftp_site(tmp_path: Path) -> Iterator[FtpSite]:
    """An anonymous read-only FTP server on 127.0.0.1 serving ``tmp_path/ftp``."""
    root = tmp_path / "ftp"
    root.mkdir()
    site = FtpSite(root).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def start_http(start_kernel: StartKernel) -> Iterator[StartHttp]:
    """``start_http(section)`` writes ``[http]`` with ``section`` (default: the loopback
    servers allowed), starts a kernel and waits for the http plugin. Everything is
    stopped after the test.
    """
    plugins: list[HttpPlugin] = []

    def start(section: str = LOOPBACK) -> HttpPlugin:
        kernel = start_kernel(setup=http_setup(section))
        plugins.append(start_http_plugin(kernel, fork="child-start: exec" not in section))
        return plugins[-1]

    try:
        yield start
    finally:
        for plugin in plugins:  # before start_kernel closes the kernels
            plugin.close()


#: ``http_client(kernel)``: a client of the http plugin of ``kernel``.
HttpClient = Callable[[KernelProcess], HttpPlugin]


@pytest.fixture
def http_client() -> Iterator[HttpClient]:
    """``http_client(kernel)`` waits for the http plugin of ``kernel`` (a module's shared
    kernel: :func:`shared_http`) and connects a client of the test's own. Every client
    is closed after the test with every requester it made: a requester is a child of
    its own that ends with its client, so the next test cannot see it.
    """
    plugins: list[HttpPlugin] = []

    def connect(kernel: KernelProcess) -> HttpPlugin:
        plugins.append(start_http_plugin(kernel))
        return plugins[-1]

    try:
        yield connect
    finally:
        for plugin in plugins:
            plugin.close()


def shared_http(section: str) -> Any:
    """A fixture: one kernel for a module's tests (:func:`kos_core.testing.shared_kernel`)
    running the http plugin with ``[http]`` section ``section``; for tests that only fetch.
    """
    return shared_kernel(setup=http_setup(section), plugins={"http": ["http"]})


#: The module's kernel, its http plugin allowing the loopback test servers (see ``http``).
http_kernel = shared_http(LOOPBACK)


@pytest.fixture
def http(http_kernel: KernelProcess, http_client: HttpClient) -> HttpPlugin:
    """The http plugin of the module's kernel (policy :data:`LOOPBACK`), with a client
    of the test's own (see :func:`http_client`).
    """
    return http_client(http_kernel)
