"""``requester.Body``, the size-limited response body served by reference, without a kernel.

The bodies here read from ``io.BytesIO`` (a subclass that counts its reads, to show
what reaches the network) and from a real HTTP response.
"""

from __future__ import annotations

import gzip
import io

import pytest
import urllib3
from pytest_httpserver import HTTPServer
from werkzeug import Response

from kos_plugins_http import FileIOError
from kos_plugins_http.requester import Body

URL = "http://example.test/body"


class CountingBytes(io.BytesIO):
    """A BytesIO that remembers the size of every read and how much it delivered."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []
        self.returned: list[int] = []
        self.delivered = 0

    def _count(self, size: int | None, data: bytes) -> bytes:
        self.reads.append(-1 if size is None else size)
        self.delivered += len(data)
        self.returned.append(len(data))
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._count(size, super().read(size))

    def read1(self, size: int | None = -1) -> bytes:
        return self._count(size, super().read1(size))


class FailingReader(io.RawIOBase):
    """A stream whose reads fail, like a connection reset mid-body."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise ConnectionResetError("connection reset by peer")


def body(data: bytes, limit: int = 1 << 20) -> tuple[Body, CountingBytes]:
    fp = CountingBytes(data)
    return Body(fp, limit, URL), fp


def test_read_all() -> None:
    b, _ = body(b"hello world")
    assert b.read() == b"hello world"
    assert b.read() == b""
    assert b.read(5) == b""


def test_read_n() -> None:
    b, _ = body(b"hello world")
    assert b.read(5) == b"hello"
    assert b.read(0) == b""
    assert b.read(1) == b" "
    assert b.read(100) == b"world"
    assert b.read(1) == b""


def test_a_body_of_exactly_the_limit_is_fine() -> None:
    b, _ = body(b"x" * 100, limit=100)
    assert b.read() == b"x" * 100


def test_one_byte_over_the_limit_is_refused() -> None:
    b, _ = body(b"x" * 101, limit=100)
    with pytest.raises(FileIOError, match=r"larger than max-size \(100 bytes\)") as caught:
        b.read()
    assert URL in str(caught.value)


def test_the_limit_holds_for_small_reads_and_lines() -> None:
    b, _ = body(b"ab\n" * 50, limit=100)  # 150 bytes
    with pytest.raises(FileIOError, match="max-size"):
        while b.read(7):
            pass
    lines, _ = body(b"ab\n" * 50, limit=100)
    with pytest.raises(FileIOError, match="max-size"):
        while lines.readline():
            pass


def test_no_more_than_limit_plus_one_byte_is_read() -> None:
    b, fp = body(b"x" * 10_000_000, limit=1000)
    with pytest.raises(FileIOError):
        b.read()
    assert fp.delivered <= 1001


def test_a_refused_body_is_closed() -> None:
    b, fp = body(b"x" * 101, limit=100)
    with pytest.raises(FileIOError):
        b.read()
    assert fp.closed
    assert b.read() == b""


def test_readline_is_served_from_a_buffer() -> None:
    lines = [f"line {i}\n".encode() for i in range(1000)]
    b, fp = body(b"".join(lines))
    assert b.readline() == lines[0]
    assert b.readline() == lines[1]
    assert len([n for n in fp.returned if n]) == 1  # one read of 64 KiB brought every line
    assert fp.reads[0] >= 64 * 1024
    assert b.readlines() == lines[2:]
    assert b.readline() == b""


def test_readline_with_size_and_without_final_newline() -> None:
    b, _ = body(b"abcdef\nxyz")
    assert b.readline(3) == b"abc"
    assert b.readline(10) == b"def\n"
    assert b.readline() == b"xyz"
    assert b.readline() == b""


def test_readline_across_chunk_boundaries() -> None:
    long_line = b"y" * (200 * 1024) + b"\n"
    b, _ = body(long_line + b"short\n")
    assert b.readline() == long_line
    assert b.readline() == b"short\n"


def test_readlines_with_hint() -> None:
    b, _ = body(b"aa\nbb\ncc\ndd\n")
    assert b.readlines(4) == [b"aa\n", b"bb\n"]
    assert b.readlines() == [b"cc\n", b"dd\n"]


def test_reads_mix_with_lines() -> None:
    b, _ = body(b"12345\nabc\n")
    assert b.read(2) == b"12"
    assert b.readline() == b"345\n"
    assert b.tell() == 6
    assert b.read() == b"abc\n"
    assert b.tell() == 10


def test_read_only_and_no_seek() -> None:
    b, _ = body(b"data")
    for call in (lambda: b.write(b"x"), lambda: b.writelines([b"x"])):
        with pytest.raises(FileIOError, match="read-only"):
            call()
    with pytest.raises(FileIOError, match="cannot seek"):
        b.seek(0)
    with pytest.raises(FileIOError, match="writing"):
        b.open("wb")
    with pytest.raises(FileIOError, match="writing"):
        b.open("r+")
    b.open("rb")
    b.flush()
    assert b.read() == b"data"


def test_close_runs_the_close_hook_once() -> None:
    closed: list[bool] = []
    fp = io.BytesIO(b"data")
    b = Body(fp, 100, URL, on_close=lambda: closed.append(True))
    b.close()
    b.close()
    assert closed == [True]
    assert fp.closed


def test_a_failing_read_is_a_file_io_error() -> None:
    b = Body(FailingReader(), 100, URL)
    with pytest.raises(FileIOError, match="connection reset") as caught:
        b.read()
    assert URL in str(caught.value)


def fetched(pool: urllib3.PoolManager, url: str, limit: int) -> Body:
    """A Body over a real streaming response from ``url``."""
    response = pool.request("GET", url, preload_content=False)
    return Body(response, limit, url, response.release_conn)


def test_a_real_streaming_response(web: HTTPServer) -> None:
    data = bytes(range(256)) * 1000
    url = web.url_for("/data")
    web.expect_request("/data").respond_with_data(data)
    with urllib3.PoolManager(retries=False) as pool:
        b = fetched(pool, url, len(data))
        assert b.read(1000) == data[:1000]
        assert b.read() == data[1000:]
        b.close()
        small = fetched(pool, url, len(data) - 1)
        with pytest.raises(FileIOError, match="max-size"):
            small.read()


def test_bytes_left_follows_the_content_length(web: HTTPServer) -> None:
    data = bytes(range(256)) * 4000
    url = web.url_for("/sized")
    web.expect_request("/sized").respond_with_data(data)
    with urllib3.PoolManager(retries=False) as pool:
        b = fetched(pool, url, len(data))
        assert b.bytes_left() == len(data)
        assert b.readline() == data[: data.index(b"\n") + 1]  # reads ahead into the buffer
        assert b.bytes_left() == len(data) - b.tell()
        start = b.tell()
        assert b.read(1000) == data[start : start + 1000]
        assert b.bytes_left() == len(data) - b.tell()
        rest = b.read()
        assert b.bytes_left() == 0
        assert rest and b.tell() == len(data)


def test_bytes_left_is_unknown_without_a_length_or_when_decoded(web: HTTPServer) -> None:
    data = b"compressible " * 10000
    web.expect_request("/chunked").respond_with_handler(
        lambda request: Response(data[i : i + 4096] for i in range(0, len(data), 4096))
    )
    web.expect_request("/gzip").respond_with_data(
        gzip.compress(data), headers={"Content-Encoding": "gzip"}
    )
    with urllib3.PoolManager(retries=False) as pool:
        for path in ("/chunked", "/gzip"):
            url = web.url_for(path)
            b = fetched(pool, url, len(data))
            assert b.bytes_left() is None, path
            assert b.read() == data, path
            assert b.bytes_left() == 0, path  # at its end, nothing is left
