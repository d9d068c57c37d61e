"""``kos http get [-i] URL``: the command the http plugin adds to the ``kos`` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer

from httptest_helpers import HttpPlugin

BODY = b"line one\nline two\n\xff binary too\n"


def kos(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``kos ARGS`` in the test's kos place (its environment is ours)."""
    return subprocess.run(
        [sys.executable, "-m", "kos_core.cli", *args],
        env=dict(os.environ),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_http_get_prints_the_body_and_with_i_the_headers(
    http: HttpPlugin, web: HTTPServer, tmp_path: Path
) -> None:
    web.expect_request("/page").respond_with_data(BODY, headers={"X-Kos-Test": "yes"})

    result = kos("http", "get", web.url_for("/page"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    assert result.stderr == b""

    result = kos("http", "get", "-i", "-n", http.kernel.name, web.url_for("/page"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    head, blank, body = result.stdout.partition(b"\n\n")
    assert blank and body == BODY
    lines = head.decode().splitlines()
    assert "X-Kos-Test: yes" in lines
    assert f"Content-Length: {len(BODY)}" in lines


def test_http_get_prints_a_large_body_whole(
    http: HttpPlugin, web: HTTPServer, tmp_path: Path
) -> None:
    large = os.urandom(3 * 1024 * 1024)  # read as a stream beside the connection
    web.expect_request("/large").respond_with_data(large)
    result = kos("http", "get", web.url_for("/large"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == large


def test_http_get_failures_exit_1_with_one_line(
    http: HttpPlugin, web: HTTPServer, tmp_path: Path
) -> None:
    web.expect_request("/missing").respond_with_data(b"not here", status=404)
    for url, fragment in ((web.url_for("/missing"), "404"), ("file:///etc/passwd", "not allowed")):
        result = kos("http", "get", url, cwd=tmp_path)
        assert result.returncode == 1, result
        assert result.stdout == b""
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1, result.stderr
        assert fragment in lines[0] and "Traceback" not in lines[0]


def test_http_get_without_a_kernel_exits_1_with_one_line(tmp_path: Path, kos_env: object) -> None:
    result = kos("http", "get", "http://127.0.0.1/", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr
