"""urllib3 connections that go only where the policy allows, checked as they connect.

Checking a URL's host and then letting urllib3 resolve the name again leaves a window:
a name can resolve to an allowed address for the check and to a forbidden one for the
connection (DNS rebinding). Here each new connection resolves the host once, checks
those addresses against the policy, and connects to one of exactly those.
"""

from __future__ import annotations

import socket
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

from .policy import Policy


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
        failure: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection(
                    (str(address), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                message = f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                raise ConnectTimeoutError(self, message) from exc
            except OSError as exc:
                failure = exc
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {failure or 'no address'}",
        )


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
