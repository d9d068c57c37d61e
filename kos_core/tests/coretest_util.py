"""Helpers shared by kos-core's tests: echo servers, links, processes, plugin scripts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kos_core import _rpc
from kos_core._net import tls, wire
from toyapi import TESTS_DIR, Echo, EchoImpl

TOKEN = "toy-token_0123456789"


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="kt-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class EchoServer:
    """A running in-process :class:`_rpc.Server` serving one :class:`EchoImpl`."""

    server: _rpc.Server
    impl: EchoImpl
    token: str
    authorized: list[str]

    @property
    def address(self) -> wire.Address:
        return self.server.address

    @property
    def sbh(self) -> str:
        return wire.format_sbh(self.server.address, self.token)

    def proxy(self) -> Echo:
        return _rpc.object_of_sbh(self.sbh, Echo)  # type: ignore[no-any-return]


@contextlib.contextmanager
def echo_server(
    address: wire.Address | None = None,
    authorize: Callable[[str], _rpc.ServerSession | None] | None = None,
) -> Iterator[EchoServer]:
    """Serve an :class:`EchoImpl` on ``address`` (default: a Unix socket in a short dir)."""
    impl = EchoImpl()
    seen: list[str] = []

    def default_authorize(token: str) -> _rpc.ServerSession | None:
        seen.append(token)
        if wire.tokens_equal(token, TOKEN):
            return _rpc.ServerSession(impl, Echo)
        return None

    with short_dir() as base:
        where = address or wire.Address(path=str(base / "echo.sock"))
        tls = trusted_tls(base) if where.path is None else None
        server = _rpc.Server(where, authorize or default_authorize, name="toy", tls=tls).start()
        try:
            yield EchoServer(server, impl, TOKEN, seen)
        finally:
            server.close()


def seconds_until_cut(sock: socket.socket, data: bytes, timeout: float = 4.0) -> float | None:
    """Send ``data`` on ``sock`` a byte every 0.1 s until the peer hangs up; the seconds
    that took, or ``None`` if it did not hang up within ``timeout``.
    """
    stop = threading.Event()

    def trickle() -> None:
        for byte in data:
            if stop.wait(0.1):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return

    start = time.monotonic()
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        sock.settimeout(timeout)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return None
        return time.monotonic() - start
    finally:
        stop.set()
        sender.join(5)
        sock.close()


def trusted_tls(directory: Path) -> ssl.SSLContext:
    """A TLS server context from a new authority that this process then trusts (its
    certificate and key are written in ``directory``).
    """
    authority = tls.new_authority("tests")
    pair = directory / "server.pem"
    pair.write_bytes(tls.write_pem_pair(authority.issue("tests", [], tls.RUN_VALIDITY)))
    tls.trust(authority.cert_pem)
    return tls.server_context(str(pair))


def connection_of(proxy: object) -> _rpc.ClientConnection:
    """The link of a client proxy (which must have one)."""
    link = _rpc.connection_of(proxy)
    assert link is not None, f"{proxy!r} has no link"
    return link


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` plus this tests folder on ``PYTHONPATH`` (for ``import toyapi``)."""
    env = dict(os.environ)
    parts = [str(TESTS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra or {})
    return env


def kernel_environ() -> dict[str, str]:
    """What the tests' kernels run with: only the plugins named in setup files exist,
    and plugin scripts can import :mod:`toyapi`.
    """
    return {"KOS_LOAD_PLUGINS": "", "PYTHONPATH": python_env()["PYTHONPATH"]}


def write_script(path: Path, body: str) -> Path:
    """Write a Python script (dedented) and return its path."""
    path.write_text(textwrap.dedent(body).lstrip())
    return path


class Processes:
    """Processes a test started; :meth:`stop_all` kills whichever are still running."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
        self.started.append(process)
        return process  # type: ignore[no-any-return]

    def python(
        self, script: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            return self.start(
                [sys.executable, str(script), *args],
                env=env or python_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
            process.wait()


#: The setup-file line that lets the toy plugin (run by the kernel) bind its names.
TOY_SERVICES = "services: toy-echo toy-echo-half toy-echo-temp\n"

#: A plugin script using the toy interface. Settings come from its setup-file section
#: (``pluginlib.options()``) or, when started by hand, from ``TOY_*`` variables.
TOY_PLUGIN = """
import json
import os
import sys

from kos_core import pluginlib
from kos_core.errors import NameAlreadyBound

from toyapi import EchoImpl, HalfEcho

opts = pluginlib.options()


def setting(key, default=""):
    return opts.get(key) or os.environ.get("TOY_" + key.upper().replace("-", "_"), default)


def attempt(func):
    try:
        func()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["no error", ""]


name = setting("plugin-name", "toy")
service = setting("service", "toy-echo")
kos, ns = pluginlib.register(name, longopts=["color="])
report = {
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "options": opts,
    "pid": os.getpid(),
    "ns_path": ns.path,
    "ns_list": ns.list(),
    "kos_list": ns.lookup("kos").list(),
    "world_list": ns.lookup("world").list(),
    "top_list": kos.list(""),
}
sid = kos.bind_service(service, EchoImpl(), "ToyAPI.Echo")
report["sid"] = sid
report["rebind"] = attempt(lambda: kos.bind_service(service, EchoImpl(), "ToyAPI.Echo"))
report["half"] = attempt(lambda: kos.bind_service(service + "-half", HalfEcho(), "ToyAPI.Echo"))
temp = kos.bind_service(service + "-temp", EchoImpl(), "ToyAPI.Echo")
report["temp_sbh"] = kos.kernel.Lookup(temp)[2]
report["before_unbind"] = kos.list("")
kos.unbind_service(temp)
report["after_unbind"] = kos.list("")
report_path = setting("report")
try:  # from the moment the report exists, a SIGTERM runs the finally block
    if report_path:
        with open(report_path + ".tmp", "w") as fh:
            json.dump(report, fh)
        os.replace(report_path + ".tmp", report_path)
    print("toy plugin", name, "ready", flush=True)
    kos.run()
finally:
    kos.unbind_service(sid)
    print("toy plugin", name, "exiting", flush=True)
"""
