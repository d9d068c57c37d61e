"""Helpers of the http plugin's tests: processes, an FTP site, and a running kernel with
the http plugin.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from kos_core import _rpc
from kos_core._net import wire
from kos_core.testing import KernelProcess, children_of, wait_for
from kos_plugins_http import Factory, Requester

#: Setup lines that keep other installed plugins from booting in these tests.
ONLY_HTTP = "[DEFAULTS]\nrun-at-boot: no\n\n"
#: The ``[http]`` section most tests use: the loopback test servers are allowed.
LOOPBACK = "allow-hosts: 127.0.0.1 localhost\n"


def http_setup(section: str = LOOPBACK) -> str:
    """A setup file booting only the http plugin, its ``[http]`` section ``section``."""
    return f"{ONLY_HTTP}[http]\nrun-at-boot: yes\n{section}"


# ---------------------------------------------------------------------------- processes


def listening_process(path: str, candidates: set[int]) -> int:
    """The one of ``candidates`` that holds the Unix socket bound at ``path`` (found from
    ``/proc``, not from the name of the socket).
    """
    sockets = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path:
            sockets.add(f"socket:[{fields[6]}]")
    holders = set()
    for pid in candidates:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in Path(f"/proc/{pid}/fd").iterdir()):
                holders.add(pid)
    assert len(holders) == 1, f"expected one of {candidates} to hold {path}: {holders}"
    return holders.pop()


# ---------------------------------------------------------------------------- FTP


class FtpSite:
    """An anonymous, read-only FTP server on 127.0.0.1 serving ``root``, in a thread."""

    def __init__(self, root: Path) -> None:
        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(root), perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "kos-test"})
        self.root = root
        self.server = FTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.server.address[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ftp-site", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.server.ioloop.loop(timeout=0.05, blocking=False)
        finally:
            self.server.close_all()

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.port}/{name}"

    def start(self) -> FtpSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# ---------------------------------------------------------------------------- the plugin


@dataclass
class HttpPlugin:
    """A running kernel with the http plugin, and a client connection to it."""

    kernel: KernelProcess
    pid: int
    kos: Any
    fork: bool = True
    requesters: list[Any] = field(default_factory=list)

    @property
    def factory(self) -> Factory:
        return self.kos.lookup("http", Factory)  # type: ignore[no-any-return]

    def requester(self) -> Requester:
        """A new requester (its connection is closed after the test)."""
        requester = self.factory.GetHTTPRequester()
        self.requesters.append(requester)
        return requester

    def fork_server(self) -> int:
        """The plugin's fork server (its only child in ``child-start: fork``)."""
        children = children_of(self.pid)
        assert len(children) == 1, f"expected one fork server under {self.pid}: {children}"
        return children.pop()

    def requesters_parent(self) -> int:
        """The process whose children the requesters are: the fork server, or (with
        ``child-start: exec``) the plugin itself.
        """
        return self.fork_server() if self.fork else self.pid

    def requester_with_pid(self, keep: bool = True) -> tuple[Requester, int]:
        """A new requester and the pid of its child: the child of the fork server (or
        plugin) that holds the socket its SBH names, found from ``/proc``. With
        ``keep=False`` the caller holds the only reference to the requester.
        """
        parent = self.requesters_parent()
        requester = self.requester() if keep else self.factory.GetHTTPRequester()
        address, _token = wire.parse_sbh(_rpc.sbh_of(requester) or "")
        assert address.path is not None, address
        return requester, listening_process(address.path, children_of(parent))

    def close(self) -> None:
        for requester in self.requesters:
            link = _rpc.connection_of(requester)
            if link is not None:
                link.close()
        self.requesters.clear()
        with contextlib.suppress(Exception):
            self.kos.close()


def start_http_plugin(kernel: KernelProcess, fork: bool = True) -> HttpPlugin:
    """Wait for ``kernel``'s http plugin (and, with ``fork``, its fork server); connect
    a client.
    """
    pid = kernel.wait_plugin("http", services=["http"])
    if fork:
        wait_for(lambda: len(children_of(pid)) == 1, 10, "the http plugin's fork server")
    return HttpPlugin(kernel, pid, kernel.connect(), fork)
