"""The requester: the child process that fetches URLs for one client.

Made by the http plugin's factory through the fork server (``make_requester``), or
run as a :func:`~kos_core.pluginlib.spawnserver` child script::

    python requester.py -f FD POLICY_JSON

http and https go through urllib3 (streaming bodies, explicit redirect control so
each target is re-checked, separate connect/read timeouts); ftp through the
standard library's FTP client. Both connect only to addresses the policy checked
(see :mod:`~kos_plugins_http.guarded`).
"""

from __future__ import annotations

import ftplib
import getopt
import sys
import urllib.error
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

from kos_core import pluginlib
from kos_core.fileapi import FileIOError, FileWrapper
from kos_plugins_http import guarded
from kos_plugins_http.policy import Policy  # absolute: this file also runs as a script

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1024 * 1024
_MIN_READ = 64 * 1024


class Body(FileWrapper):
    """A response body served by reference, never yielding more than ``limit`` bytes.

    Reads go to the response in chunks of at least 64 KiB; lines are cut from a
    buffer, so ``readline`` costs no extra network reads.
    """

    def __init__(self, fp: Any, limit: int, url: str, on_close: Any = None) -> None:
        super().__init__(fp)
        self._limit = limit
        self._seen = 0
        self._url = url
        self._on_close = on_close
        self._buffer = bytearray()
        self._eof = False

    def _receive(self, size: int, *, arrived_only: bool) -> bytes:
        """Read up to ``size`` bytes from the response, counting them against the limit.

        With ``arrived_only``, return what has arrived (at least one byte) instead of
        waiting for ``size``: a line the server has sent is not held back by the rest.
        """
        room = self._limit - self._seen + 1
        read = (getattr(self._fp, "read1", None) if arrived_only else None) or self._fp.read
        try:
            chunk: bytes = read(min(max(size, 1), room))
        except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
            raise FileIOError(f"read {self._url}: {exc}") from exc
        if not chunk:
            self._eof = True
        self._seen += len(chunk)
        if self._seen > self._limit:
            self.close()
            raise FileIOError(f"{self._url}: response larger than max-size ({self._limit} bytes)")
        return chunk

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read(self, size: int = -1) -> bytes:
        whole = size is None or size < 0
        buffered = self._take(len(self._buffer) if whole else size)
        chunks = [buffered] if buffered else []  # one chunk is joined without a copy
        missing = 0 if whole else size - len(buffered)
        while not self._eof and (whole or missing > 0):
            chunk = self._receive(_CHUNK if whole else missing, arrived_only=False)
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def bytes_left(self) -> int | None:
        """What the Content-Length says is left, unless the body is decoded on its way
        (a compressed body's length is not known before it is read).
        """
        if self._eof:
            return len(self._buffer)
        remaining = getattr(self._fp, "length_remaining", None)
        headers = getattr(self._fp, "headers", None)
        encoding = headers.get("Content-Encoding", "") if headers is not None else ""
        if type(remaining) is not int or encoding.strip().lower() not in ("", "identity"):
            return None
        return len(self._buffer) + remaining

    def readline(self, size: int = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit is None or end < limit):
                return self._take(end + 1)
            if limit is not None and len(self._buffer) >= limit:
                return self._take(limit)
            if self._eof:
                return self._take(len(self._buffer))
            self._buffer += self._receive(_MIN_READ, arrived_only=True)

    def readlines(self, hint: int = -1) -> list[bytes | str]:
        lines: list[bytes | str] = []
        total = 0
        while hint is None or hint <= 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def tell(self) -> int:
        return self._seen - len(self._buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        raise FileIOError(f"{self._url}: a response body cannot seek")

    def write(self, s: bytes | str) -> int:
        raise FileIOError(f"{self._url}: a response body is read-only")

    def writelines(self, lines: list[bytes | str]) -> None:
        raise FileIOError(f"{self._url}: a response body is read-only")

    def flush(self) -> None:
        """Nothing to flush on a read-only body."""

    def close(self) -> None:
        self._buffer, self._eof = bytearray(), True
        super().close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def open(self, mode: str) -> None:
        """The body is already open (as the 1998 MyFileWrapper.open)."""
        if "w" in mode or "a" in mode or "+" in mode:
            raise FileIOError(f"{self._url}: a response body cannot be opened for writing")


class Requester:
    """Implements ``HTTPAPI.Requester`` for one client."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._pool = guarded.pool_manager(
            policy,
            retries=False,
            timeout=urllib3.Timeout(connect=policy.timeout, read=policy.timeout),
            ca_certs=policy.ca_file or None,
        )

    def Get(self, url: str) -> Body:
        return self._open(url)[1]

    def GetWithInfo(self, url: str) -> tuple[list[tuple[str, str]], Body]:
        return self._open(url)

    def Close(self) -> None:
        self._pool.clear()
        pluginlib.end_connection()

    def _open(self, url: str) -> tuple[list[tuple[str, str]], Body]:
        for _ in range(self.policy.max_redirects + 1):
            self.policy.check_url(url)
            if urlsplit(url).scheme.lower() == "ftp":
                return self._ftp(url)
            response = self._request(url)
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                response.drain_conn()
                response.release_conn()
                if not location:
                    raise FileIOError(
                        f"{url}: redirect {response.status} without a Location",
                        response.status,
                        response.reason or "",
                    )
                url = urljoin(url, location)
                continue
            headers = [(str(k), str(v)) for k, v in response.headers.items()]
            if response.status >= 400:
                response.drain_conn()
                response.release_conn()
                raise FileIOError(
                    f"HTTP {response.status} {response.reason or ''} for {url}".replace("  ", " "),
                    response.status,
                    response.reason or "",
                )
            self._check_length(url, response.headers.get("Content-Length"))
            return headers, Body(response, self.policy.max_size, url, response.release_conn)
        raise FileIOError(f"too many redirects (more than {self.policy.max_redirects})")

    def _request(self, url: str) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request("GET", url, redirect=False, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise FileIOError(f"GET {url}: {_reason(exc)}") from exc

    def _check_length(self, url: str, length: str | None) -> None:
        if length and length.isdigit() and int(length) > self.policy.max_size:
            raise FileIOError(
                f"{url}: response of {length} bytes is larger than max-size"
                f" ({self.policy.max_size} bytes)"
            )

    def _ftp(self, url: str) -> tuple[list[tuple[str, str]], Body]:
        try:
            info, fp = guarded.open_ftp(self.policy, url)
        except urllib.error.URLError as exc:
            raise FileIOError(f"ftp {url}: {exc.reason}") from exc
        except (ftplib.Error, OSError, EOFError, ValueError) as exc:
            raise FileIOError(f"ftp {url}: {exc}") from exc
        headers = [(str(k), str(v)) for k, v in info.items()]
        try:
            self._check_length(url, info.get("Content-length"))
        except FileIOError:
            fp.close()
            raise
        return headers, Body(fp, self.policy.max_size, url)


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: for a connection that failed, where and why (not
    urllib3's description of its connection object).
    """
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        conn = getattr(reason, "conn", None) or (reason.args[0] if reason.args else None)
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        where = f"{host}:{port}" if host else "the server"
        cause = reason.__cause__
        if isinstance(cause, TimeoutError) or not isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            return f"cannot connect to {where}: timed out"
        why = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
        return f"cannot connect to {where}: {why or 'failed'}"
    return str(reason)


def make_requester(policy_json: str) -> Requester:
    """Build a requester in a child (the fork server's target)."""
    return Requester(Policy.from_json(policy_json))


def main(argv: list[str]) -> None:
    """Run as a spawnserver child: ``requester.py -f FD POLICY_JSON``."""
    _, rest = getopt.getopt(argv, "f:")
    policy = Policy.from_json(rest[0]) if rest else Policy()
    pluginlib.serve_child(Requester(policy), "HTTPAPI.Requester", argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
