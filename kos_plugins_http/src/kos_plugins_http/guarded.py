"""Connections that go only where the policy allows, checked as they connect.

Checking a URL's host and then letting urllib3 (or urllib) resolve the name again
leaves a window: a name can resolve to an allowed address for the check and to a
forbidden one for the connection (DNS rebinding). Here each new connection resolves
the host once, checks those addresses against the policy, and connects to one of
exactly those: urllib3's connections for http and https (:func:`pool_manager`), and
ftp through the standard library's FTP client (:func:`open_ftp`), which never consults
a proxy (``ftp_proxy``, ``all_proxy``).
"""

from __future__ import annotations

import email.message
import ftplib
import mimetypes
import socket
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

from .policy import Address, Policy

_T = TypeVar("_T")


def _first_reachable(addresses: list[Address], connect: Callable[[Address], _T]) -> _T:
    """``connect(address)`` for each of ``addresses`` in turn until one does not raise
    ``OSError`` (refused, unreachable); raise the last such error if none connects.
    ``TimeoutError`` is raised at once.
    """
    failure: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return connect(address)
        except TimeoutError:
            raise
        except OSError as exc:
            failure = exc
    raise failure


class _Guarded:
    """Mixin for urllib3 connection classes: ``_new_conn`` connects to checked addresses."""

    kos_policy: Policy
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        addresses = self.kos_policy.check_host(self.host)  # raises FileIOError if refused

        def connect(address: Address) -> socket.socket:
            return connection.create_connection(
                (str(address), self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )

        try:
            return _first_reachable(addresses, connect)
        except TimeoutError as exc:
            message = f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            raise ConnectTimeoutError(self, message) from exc
        except OSError as exc:
            raise NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {exc}",
            ) from exc


def pool_manager(policy: Policy, **kwargs: Any) -> urllib3.PoolManager:
    """A ``PoolManager`` whose connections go only to addresses ``policy`` allows."""

    class GuardedHTTP(_Guarded, HTTPConnection):
        kos_policy = policy

    class GuardedHTTPS(_Guarded, HTTPSConnection):
        kos_policy = policy

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPS

    manager = urllib3.PoolManager(**kwargs)
    manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
    return manager


def open_ftp(policy: Policy, url: str) -> tuple[email.message.Message, Any]:
    """Open an ``ftp://`` URL: ``(headers, file)``, read as urllib would read it (a file,
    or a directory listing), but connected to an address ``policy.check_host`` returned
    for the URL's host, and never through a proxy.

    Raises :class:`~kos_core.fileapi.FileIOError` if the host is refused, and
    ``OSError`` or :data:`ftplib.all_errors` if the transfer cannot start.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = policy.check_host(host)  # raises FileIOError if refused
    path, _, attrs = parts.path.partition(";")
    *dirs, name = [unquote(part) for part in path.split("/")]
    kind = "I" if name else "D"
    for attr in attrs.split(";"):
        key, _, value = attr.partition("=")
        if key.lower() == "type" and value in ("a", "A", "i", "I", "d", "D"):
            kind = value.upper()

    def connect(address: Address) -> urllib.request.ftpwrapper:
        # An address literal: ftplib connects to it without resolving anything.
        return urllib.request.ftpwrapper(
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            str(address),
            parts.port or ftplib.FTP_PORT,
            [d for d in dirs if d],  # type: ignore[arg-type]  # a list: it is joined with "/"
            policy.timeout,
            persistent=False,
        )

    ftp = _first_reachable(addresses, connect)
    try:
        fp, length = ftp.retrfile(name, kind)
    except BaseException:
        ftp.close()
        raise
    ftp.close()  # the connection ends once the file is closed
    headers = email.message.Message()
    mime_type = mimetypes.guess_type(url)[0]
    if mime_type:
        headers["Content-type"] = mime_type
    if length is not None and length >= 0:
        headers["Content-length"] = str(length)
    return headers, fp
