"""Factory children: one-shot servers a plugin starts, one per client.

Parent side: :func:`spawnserver` (the 1998 contract: run a program with the write end
of a pipe on its command line and read the child's SBH from it) and
:class:`ChildFactory` (the fast path: fork from a preloaded, single-threaded fork
server). Child side: :func:`serve_child` — start a one-shot server for one object,
write its SBH, serve exactly one client, return when that client has gone.

No child outlives its use. A child ends when its client calls a method that ends the
connection (``Close()``), when its client disconnects, when no client comes within
``$KOS_CHILD_CLIENT_TIMEOUT`` seconds, or when the plugin that made it dies: every
child holds the read end of a *lifeline* pipe whose only write end stays in the
plugin, so the plugin's death, however it happens, is an end-of-file the child sees.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from kos_core import _rpc
from kos_core._net import tls, wire
from kos_core._os import environment, paths, processes
from kos_core.interface import Interface, find_interface

LIFELINE_ENV = "KOS_LIFELINE_FD"
#: "KERNEL HOST": children listen on TCP+TLS on HOST with KERNEL's certificate (the
#: children of a plugin a world exports); unset, they listen on a Unix socket
CHILD_TCP_ENV = "KOS_CHILD_TCP"
SPAWN_TIMEOUT = environment.spawn_timeout()
CLIENT_TIMEOUT = environment.child_client_timeout()
#: the longest line a child writes on its SBH pipe
MAX_SBH = 4096


class _Lifeline:
    """One pipe per plugin process: children inherit the read end; the write end never
    leaves this process, so its death closes the pipe for every child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_fd: int | None = None

    def read_fd(self) -> int:
        with self._lock:
            if self._read_fd is None:
                read_fd, _write_fd = os.pipe()  # the write end is deliberately kept open
                self._read_fd = read_fd
            return self._read_fd


class _Reaper:
    """Reaps exited children so none stays a zombie; remembers their pids for ``pids``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._exited: list[int] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children[process.pid] = process
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kos-reaper", daemon=True)
                self._thread.start()

    def note_exit(self, pid: int) -> None:
        with self._lock:
            self._exited.append(pid)

    def take_exited(self) -> list[int]:
        """Pids of children that have exited since the last call."""
        self.poll()
        with self._lock:
            exited, self._exited = self._exited, []
        return exited

    def poll(self) -> None:
        with self._lock:
            for pid, process in list(self._children.items()):
                if process.poll() is not None:
                    del self._children[pid]
                    self._exited.append(pid)
                    remove_socket_files(pid)

    def _run(self) -> None:
        while not self._wake.wait(0.2):
            self.poll()


def _child_address() -> tuple[wire.Address, ssl.SSLContext | None]:
    """Where a child listens: TCP+TLS if its plugin is exported, else its own socket."""
    tcp = os.environ.get(CHILD_TCP_ENV, "")
    if tcp:
        kernel, _, host = tcp.partition(" ")
        return wire.Address(host=host, port=0), tls.kernel_server_context(kernel)
    return wire.Address(path=str(socket_path(os.getpid()))), None


def socket_path(pid: int, kind: str = "p") -> Path:
    """Where the factory child ``pid`` listens: its one-shot server (``kind`` ``p``),
    or a spare's warm-up server (``w``).
    """
    return paths.runtime_dir() / f"{kind}{pid}.sock"


def remove_socket_files(pid: int) -> None:
    """Remove what the child ``pid``, now reaped, may have left listening (a child
    killed with SIGKILL cannot remove its own socket files).
    """
    for kind in ("p", "w"):
        with contextlib.suppress(OSError):
            socket_path(pid, kind).unlink()


_lifeline = _Lifeline()
_reaper = _Reaper()


def read_sbh(fd: int, timeout: float) -> tuple[str, str]:
    """Read the child's line from ``fd`` within ``timeout``: ``(sbh, "")``, or
    ``("", why)`` on a reported failure, EOF, timeout or garbage.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data and len(data) < MAX_SBH:
        left = deadline - time.monotonic()
        if left <= 0:
            return "", f"the child wrote no SBH within {timeout:g} s"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return "", f"the child wrote no SBH within {timeout:g} s"
        chunk = os.read(fd, MAX_SBH)
        if not chunk:
            break
        data += chunk
    return sbh_of_line(data.partition(b"\n")[0])


def sbh_of_line(data: bytes) -> tuple[str, str]:
    """What a child's line says: ``(sbh, "")``, or ``("", why)`` on a reported failure,
    nothing (the child exited) or garbage.
    """
    line = data.decode("utf-8", "replace").strip()
    if line.startswith("!"):
        return "", line[1:]
    if not line:
        return "", "the child exited before writing its SBH"
    try:
        wire.parse_sbh(line)
    except Exception:
        return "", "the child wrote something that is not an SBH"
    return line, ""


def spawnserver(filename: str, *args: object, flagoption: str = "-f") -> tuple[str, int, list[int]]:
    """Start ``filename`` as a child server; return ``(sbh, pid, pids)``.

    The child's command line is ``[filename, flagoption, str(fd)] + list(args)``
    (run with this Python), where ``fd`` is the write end of a pipe on which the
    child writes its SBH (see :func:`serve_child`). ``sbh`` is ``""`` if the child
    could not start or wrote no valid SBH in time (it is then stopped and reaped);
    ``pids`` lists the children that have exited since the last call.
    """
    read_fd, write_fd = os.pipe()
    lifeline = _lifeline.read_fd()
    env = dict(os.environ)
    env[LIFELINE_ENV] = str(lifeline)
    env.pop(processes.PARENT_ENV, None)
    command = [sys.executable, filename, flagoption, str(write_fd), *map(str, args)]
    try:
        process = subprocess.Popen(
            command, pass_fds=(write_fd, lifeline), stdin=subprocess.DEVNULL, env=env
        )
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return "", 0, _reaper.take_exited()
    os.close(write_fd)
    try:
        sbh, _why = read_sbh(read_fd, SPAWN_TIMEOUT)
    finally:
        os.close(read_fd)
    if not sbh:
        if process.poll() is None:
            process.kill()
        process.wait()
        remove_socket_files(process.pid)
        _reaper.note_exit(process.pid)
        return "", process.pid, _reaper.take_exited()
    _reaper.add(process)
    return sbh, process.pid, _reaper.take_exited()


def _sbh_fd(argv: Sequence[str], flagoption: str) -> int:
    for i, arg in enumerate(argv):
        if arg == flagoption and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if len(flagoption) == 2 and arg.startswith(flagoption) and arg[2:].isdigit():
            return int(arg[2:])
    raise SystemExit(f"kos child: no {flagoption} FD on the command line: {list(argv)}")


def _lifeline_fd() -> int | None:
    value = os.environ.get(LIFELINE_ENV, "")
    return int(value) if value.isdigit() else None


def _parent_gone(fd: int | None, timeout: float) -> bool:
    """True if the lifeline pipe has closed (its writer, the parent, is dead)."""
    if fd is None:
        time.sleep(timeout)
        return False
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable) and not os.read(fd, 1)
    except OSError:
        return True


class ChildServer:
    """The child side of a factory child: a one-shot server for one object.

    ``ChildServer(obj, typename, sbh_fd)`` listens, serves ``obj`` and writes the SBH to
    ``sbh_fd``. A spare child does this in two steps: :meth:`prepare` (listen, make the
    token; no client can know the SBH yet), then :meth:`assign` once the object is made.
    :attr:`done` turns true once the client has gone, no client came in time (counted
    from :meth:`assign`), the parent died, or SIGTERM arrived. Use :func:`serve_child`
    (or :meth:`run`) unless the child's main thread has other work (a Tk main loop
    polls :attr:`done` instead of calling :meth:`wait`).
    """

    def __init__(self, obj: object, typename: str | type[Interface], sbh_fd: int) -> None:
        self._listen()
        self.start_accepting()
        self.assign(obj, typename, sbh_fd)

    @classmethod
    def prepare(cls) -> ChildServer:
        """A child server that listens and has its token, but serves nothing yet and
        accepts nobody until :meth:`start_accepting` (a client that connects before
        waits).
        """
        child = cls.__new__(cls)
        child._listen()
        return child

    def start_accepting(self) -> None:
        """Start the threads that take connections."""
        self._server.start()

    def _listen(self) -> None:
        #: set to make this child exit (SIGTERM does)
        self.stop = threading.Event()
        self._lifeline = _lifeline_fd()
        self._token = secrets.token_urlsafe(24)
        self._served: tuple[object, type[Interface]] | None = None
        self._deadline = float("inf")
        address, context = _child_address()
        self._server = _rpc.Server(
            address, self._authorize, name=f"child-{os.getpid()}", one_shot=True, tls=context
        )

    def _authorize(self, given: str) -> _rpc.ServerSession | None:
        served = self._served
        if served is None or not wire.tokens_equal(given, self._token):
            return None
        return _rpc.ServerSession(*served)

    def assign(self, obj: object, typename: str | type[Interface], sbh_fd: int) -> None:
        """Serve ``obj`` as ``typename``: write the SBH to ``sbh_fd`` (then closed).

        The client timeout counts from here.
        """
        sbh = self.offer(obj, typename)
        self.start_clock()
        os.write(sbh_fd, (sbh + "\n").encode("ascii"))
        os.close(sbh_fd)

    def offer(self, obj: object, typename: str | type[Interface]) -> str:
        """Serve ``obj`` as ``typename`` from now on; return the SBH, which only the
        caller knows (a spare tells it to the fork server ahead of need). The client
        timeout does not count until :meth:`start_clock`.
        """
        iface = find_interface(typename) if isinstance(typename, str) else typename
        self._served = (obj, iface)
        return wire.format_sbh(self._server.address, self._token)

    def start_clock(self) -> None:
        """Start the client timeout: the SBH is out."""
        self._deadline = time.monotonic() + CLIENT_TIMEOUT

    def poll(self, timeout: float = 0.0) -> bool:
        """Wait up to ``timeout`` seconds for a reason to exit; True once there is one
        (the client has gone, no client came in time, the parent died, SIGTERM).
        """
        if self.stop.is_set() or self._server.finished.is_set():
            return True
        if _parent_gone(self._lifeline, timeout):
            self.stop.set()
            return True
        return not self._server.connected.is_set() and time.monotonic() > self._deadline

    @property
    def done(self) -> bool:
        """True once this child should exit (checks without waiting)."""
        return self.poll(0.0)

    def wait(self) -> None:
        """Block until :attr:`done`."""
        while not self.poll(0.05):
            pass

    def run(self) -> None:
        """Serve the assigned object until :attr:`done`, then :meth:`close`.

        SIGTERM ends it. If the object has a ``kos_serve(child)`` method, the main
        thread runs that instead of waiting (a GUI main loop, say); it must return soon
        after ``child.done`` turns true.
        """
        signal.signal(signal.SIGTERM, lambda signum, frame: self.stop.set())
        own_loop = getattr(self._served[0], "kos_serve", None) if self._served else None
        try:
            if callable(own_loop):
                own_loop(self)
            else:
                self.wait()
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving (ends the client's connection if it is still open)."""
        self._server.close()


def report_failure(reason: str, sbh_fd: int) -> None:
    """Tell the parent, on the SBH pipe, why this child cannot serve."""
    line = "!" + " ".join(reason.split())[:1000] + "\n"
    with contextlib.suppress(OSError):
        os.write(sbh_fd, line.encode("utf-8", "replace"))
        os.close(sbh_fd)


def serve_child(
    obj: object,
    typename: str | type[Interface],
    *,
    argv: Sequence[str] | None = None,
    flagoption: str = "-f",
    sbh_fd: int | None = None,
) -> None:
    """Serve ``obj`` to exactly one client; the child side of :func:`spawnserver`.

    Takes the SBH pipe from ``flagoption FD`` in ``argv`` (default ``sys.argv[1:]``)
    unless ``sbh_fd`` is given, writes the SBH there, and returns once the client has
    gone, no client came in time, the parent died, or SIGTERM arrived.

    If ``obj`` has a ``kos_serve(child)`` method, the main thread runs that instead of
    waiting (a GUI main loop, say); it must return soon after ``child.done`` turns true.
    """
    if sbh_fd is None:
        sbh_fd = _sbh_fd(sys.argv[1:] if argv is None else argv, flagoption)
    ChildServer(obj, typename, sbh_fd).run()


def end_connection() -> None:
    """End the connection whose call is being served, once that call is answered.

    A factory child's ``Close()`` calls this; the child then exits.
    """
    session = _rpc.current_session()
    if session is None:
        raise RuntimeError("end_connection() called outside a kos call")
    session.end_after_reply()
