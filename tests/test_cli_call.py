"""``kos call`` from a shell: bytes from standard input or a file, raw bytes out, a File
streamed, a factory's child refused and closed.
"""

from __future__ import annotations

import io
import subprocess
import threading
from pathlib import Path

import pytest

from kos_core.fileapi import FileWrapper
from kos_core.testing import (
    KernelProcess,
    StartKernel,
    children_of,
    idle_spare,
    process_ended,
    wait_for,
)
from kos_helpers import CLI, Result, assert_one_line_error, kos_environ

#: more than a command line may hold (``Argument list too long``), and not UTF-8
VALUE = bytes(range(256)) * 512 + b"\xff\xfe"
BODY = b"a body streamed by kos call " * 40000  # more than one read


@pytest.fixture
def kernel(start_kernel: StartKernel) -> KernelProcess:
    started = start_kernel(
        setup="[bitbucket]\nargs: --capacity 1048576\n",
        # a requester nobody connects to would wait this long: far past the test's deadline
        environ={"KOS_LOAD_PLUGINS": "bitbucket,http", "KOS_CHILD_CLIENT_TIMEOUT": "120"},
    )
    started.wait_plugin("bitbucket", services=["bitbucket"])
    started.wait_plugin("http", services=["http"])
    return started


def kos(kernel: KernelProcess, tmp_path: Path, *args: str, stdin: bytes = b"") -> Result:
    """``kos ARGS`` with ``stdin`` on its standard input; stdout kept as bytes."""
    done = subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        env=kos_environ(kernel.env),
        cwd=tmp_path,
        timeout=60,
    )
    return Result(tuple(args), done.returncode, done.stdout.decode("latin-1"), done.stderr.decode())


def test_bytes_from_stdin_and_from_a_file_and_raw_bytes_out(
    kernel: KernelProcess, tmp_path: Path
) -> None:
    stored = kos(kernel, tmp_path, "call", "bitbucket", "Set", "k", "-", stdin=VALUE)
    assert stored.returncode == 0, stored
    got = kos(kernel, tmp_path, "call", "bitbucket", "Get", "k")
    assert got.returncode == 0, got
    assert got.stdout.encode("latin-1") == VALUE  # as it is: no decoding, no newline
    (tmp_path / "value.bin").write_bytes(VALUE[::-1])
    assert kos(kernel, tmp_path, "call", "bitbucket", "Set", "k2", "@value.bin").returncode == 0
    again = kos(kernel, tmp_path, "call", "bitbucket", "Get", "k2")
    assert again.stdout.encode("latin-1") == VALUE[::-1]
    literal = kos(kernel, tmp_path, "call", "bitbucket", "Set", "k3", "@@home")
    assert literal.returncode == 0, literal
    assert kos(kernel, tmp_path, "call", "bitbucket", "Get", "k3").stdout == "@home"


def test_a_missing_file_or_stdin_twice_is_a_usage_error(
    kernel: KernelProcess, tmp_path: Path
) -> None:
    missing = kos(kernel, tmp_path, "call", "bitbucket", "Set", "k", "@nothing-here")
    assert_one_line_error(missing, 2, "argument 'data'", "nothing-here")
    twice = kos(kernel, tmp_path, "call", "bitbucket", "Set", "-", "-", stdin=b"x")
    assert_one_line_error(twice, 2, "standard input", "once")


class _Body(FileWrapper):
    """The body of a fake fetch; notes when its client closed it."""

    closed = threading.Event()

    def close(self) -> None:
        _Body.closed.set()
        super().close()


class _FakeRequester:
    """An ``HTTPAPI.Requester`` that answers every URL with :data:`BODY`."""

    def Get(self, url: str) -> FileWrapper:
        return _Body(io.BytesIO(BODY))

    def GetWithInfo(self, url: str) -> tuple[list[tuple[str, str]], FileWrapper]:
        return [], self.Get(url)

    def Close(self) -> None:
        pass


def test_a_file_result_is_streamed_to_stdout_and_closed(
    kernel: KernelProcess, tmp_path: Path
) -> None:
    with kernel.connect() as served:
        served.bind_service("fakehttp", _FakeRequester(), "HTTPAPI.Requester")
        got = kos(kernel, tmp_path, "call", "fakehttp", "Get", "http://example.invalid/")
        assert got.returncode == 0, got
        assert got.stdout.encode("latin-1") == BODY  # every byte, and nothing else
        assert _Body.closed.wait(5)  # closed by kos call once read


def test_a_factory_child_result_is_refused_and_the_child_ends_at_once(
    kernel: KernelProcess, tmp_path: Path
) -> None:
    with kernel.connect() as client:  # the fork server starts, with a spare requester
        client.lookup("http").GetHTTPRequester().Close()
    (fork_server,) = children_of(kernel.plugin_pids["http"])
    spare = idle_spare(fork_server)  # what the next GetHTTPRequester hands out
    refused = kos(kernel, tmp_path, "call", "http", "GetHTTPRequester")
    assert_one_line_error(refused, 2, "HTTPAPI.Requester", "a server for one client", "closed")
    # it ended with the command, not after the client timeout (120 s here)
    wait_for(lambda: process_ended(spare), 10, "the requester handed to kos call to end")
