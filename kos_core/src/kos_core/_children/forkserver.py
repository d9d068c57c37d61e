"""The fast path for factory children: a preloaded, single-threaded fork server.

A plugin's :class:`ChildFactory` starts one fork server (``python -m
kos_core._children.forkserver``) that imports the child's code once. It keeps ``spares``
children forked ahead of need (see :mod:`~kos_core._children.spares`) and hands each to
the plugin (see :mod:`~kos_core._children.stock`): a ``spawn`` gives a spare its args,
or only a go if the spare made its object ahead with the same args, without the fork
server; once the plugin has its answer and says which spare it took, the fork server
forks a replacement. With no spare at hand (``spares=0``, or the spare died) the fork
server forks on demand: the new child builds its object and serves it with
:func:`~kos_core._children.factory.serve_child`. Either way a child costs a fork instead
of a new interpreter. Forking happens only in the fork server, which has no threads, so
no lock can be inherited in a held state.

Protocol on the control socket, one JSON object per line. From the plugin:
``{"args": [...]}`` (fork on demand) → ``{"sbh": "...", "pid": N, "exited": [pids...],
"error": "..."}``; ``{"took": PID, "args": ...}`` (no answer). From the fork server,
unasked: ``{"spare": PID, "ahead": ..., "timeout": S}`` with the spare's socket
attached (``SCM_RIGHTS``), and ``{"exited": [pids...]}``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from kos_core._children import factory, forked
from kos_core._children.limits import ChildLimits
from kos_core._children.spares import Spares, warm_up
from kos_core._children.stock import Stock
from kos_core._os import processes
from kos_core.interface import find_interface

_WARM_UP_ROUNDS = 10
_WARM_UP_JOIN = 5.0


def _resolve(target: str) -> Callable[..., object]:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"child target must be 'module:callable', not {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


class ChildFactory:
    """Makes factory children quickly by forking a preloaded fork server.

    ``target`` is ``"module:callable"``: in the child, ``callable(*args)`` returns the
    object to serve as ``typename``. The fork server keeps ``spares`` children forked
    ahead of need, listening and warmed up, so that a ``spawn`` only hands one its args
    (an idle spare is a process that waits; it ends with the plugin or the fork server).
    ``spares=0`` forks each child on demand. ``limits`` caps the children that are
    running at once, per client connection and in all (default: a
    :class:`~kos_core._children.limits.ChildLimits` with its defaults, 8 and 64); spares
    do not count. Safe to call from several threads.

    With ``make_ahead``, a spare also calls ``callable(*args)`` ahead of need, with the
    args of the last spawn, and a spawn with the same args hands out that object at
    once: for a callable that only builds an object (no window, no connection, nothing
    that must not happen before it is asked for).
    """

    def __init__(
        self,
        target: str,
        typename: str,
        *,
        spares: int = 1,
        limits: ChildLimits | None = None,
        make_ahead: bool = False,
    ) -> None:
        if spares < 0:
            raise ValueError(f"spares must be 0 or more, not {spares}")
        self.target = target
        self.typename = typename
        self.spares = spares
        self.make_ahead = make_ahead
        self.limits = limits if limits is not None else ChildLimits()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._stock: Stock | None = None
        #: why the last :meth:`spawn` gave no SBH ("" if it gave one)
        self.last_error = ""
        with self._lock:
            self._start()  # now, so the first client does not pay for the imports

    def _start(self) -> None:
        parent_end, child_end = socket.socketpair()
        lifeline = factory._lifeline.read_fd()
        env = dict(os.environ)
        env[factory.LIFELINE_ENV] = str(lifeline)
        env.pop(processes.PARENT_ENV, None)
        command = [
            sys.executable,
            "-m",
            "kos_core._children.forkserver",
            self.target,
            self.typename,
            str(child_end.fileno()),
            str(self.spares),
            "ahead" if self.make_ahead else "on-demand",
        ]
        self._process = subprocess.Popen(
            command, pass_fds=(child_end.fileno(), lifeline), stdin=subprocess.DEVNULL, env=env
        )
        child_end.close()
        # A fork server that stops answering must not hang its plugin for ever.
        parent_end.settimeout(factory.SPAWN_TIMEOUT + 5.0)
        self._sock = parent_end
        self._stock = Stock(parent_end)

    def spawn(self, *args: str | int | float | bool | None) -> tuple[str, int, list[int]]:
        """Fork a child serving ``callable(*args)``; return ``(sbh, pid, pids)`` as
        :func:`~kos_core._children.factory.spawnserver` does (``sbh == ""`` on failure).

        Raises :class:`~kos_core._children.limits.ChildLimitReached` if the calling client
        (or all clients together) already has as many running children as
        :attr:`limits` allows.
        """
        return self.limits.start(lambda: self._spawn(args))

    def _spawn(
        self, args: tuple[str | int | float | bool | None, ...]
    ) -> tuple[str, int, list[int]]:
        with self._lock:
            for attempt in range(2):
                if self._process is None or self._process.poll() is not None:
                    self.close()
                    self._start()
                try:
                    reply = self._ask(list(args))
                except OSError:
                    reply = None
                if reply is not None and self._stock is not None:
                    self.last_error = str(reply.get("error", ""))
                    exited = self._stock.take_exited([int(p) for p in reply.get("exited", [])])
                    return str(reply.get("sbh", "")), int(reply.get("pid", 0)), exited
                self.close()  # the fork server died: start a new one once
                if attempt:
                    break
            self.last_error = "the fork server is not running"
            return "", 0, []

    def _ask(self, args: list[Any]) -> dict[str, Any]:
        """A child for ``args``: from an idle spare, or forked on demand; the fork
        server's kind of reply. Raises ``OSError`` if the fork server is gone.
        """
        assert self._sock is not None and self._stock is not None
        for _ in range(self.spares + 2):
            self._stock.read(wait=False)
            made = self._stock.take(args)
            if made is not None:
                sbh, pid, why = made
                return {"sbh": sbh, "pid": pid, "error": why}
            self._sock.sendall(json.dumps({"args": args}).encode() + b"\n")
            reply = self._stock.read(wait=True)
            if reply is None:
                raise ConnectionResetError("the fork server sent no reply")
            if not reply.get("retry"):  # else spares were on their way: take one
                return reply
        return {"sbh": "", "pid": 0, "error": "the fork server's spares could not be had"}

    def close(self) -> None:
        """Stop the fork server and its idle spares (children already made keep running
        until their end).
        """
        if self._stock is not None:
            self._stock.close()
            self._stock = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
            self._process.wait()
            self._process = None


def _warm_up() -> None:
    """Load once, here, what every child would otherwise load for itself."""
    "localhost".encode("idna")  # network clients encode host names with this codec
    socket.getaddrinfo("127.0.0.1", 0, proto=socket.IPPROTO_TCP)
    # Serving a few clients specialises the code a child's server runs and fills the
    # caches it uses, so each child writes to (copies) fewer shared pages.
    try:
        for _ in range(_WARM_UP_ROUNDS):
            warm_up()
    except Exception as exc:  # only slower
        print(f"kos fork server: warm-up failed: {exc!r}", file=sys.stderr)
    # Its threads are gone before the first fork: a fork copies only the forking thread,
    # so a lock another thread held would stay held in the child for ever.
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(_WARM_UP_JOIN)
            if thread.is_alive():
                print(f"kos fork server: warm-up thread {thread.name} hangs", file=sys.stderr)


def _reap(exited: list[int]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exited.append(pid)
        factory.remove_socket_files(pid)


def _fork_child(
    make: Callable[..., object],
    typename: str,
    args: list[Any],
    plumbing: list[forked.Closable | int],
) -> tuple[int, str, str]:
    """Fork a child for ``args`` on demand: ``(pid, sbh, why)``."""
    read_fd, write_fd = os.pipe()

    def serve() -> None:
        os.close(read_fd)
        obj = forked.make_object(make, args, write_fd)
        factory.serve_child(obj, typename, sbh_fd=write_fd)

    pid = forked.fork(plumbing, serve)
    os.close(write_fd)
    try:
        sbh, why = factory.read_sbh(read_fd, factory.SPAWN_TIMEOUT)
    finally:
        os.close(read_fd)
    return pid, sbh, why


def _make_child(
    make: Callable[..., object],
    typename: str,
    args: list[Any],
    plumbing: list[forked.Closable | int],
) -> tuple[int, str, str]:
    """A child forked on demand for ``args``: ``(pid, sbh, why)``."""
    pid, sbh, why = _fork_child(make, typename, args, plumbing)
    if not sbh:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid, sbh, why


def _on_demand(
    ctl: socket.socket,
    make: Callable[..., object],
    typename: str,
    args: list[Any],
    plumbing: list[forked.Closable | int],
) -> list[Any] | None:
    """Fork a child for ``args`` and answer the plugin; return ``args`` if it worked."""
    try:
        pid, sbh, why = _make_child(make, typename, args, plumbing)
    except Exception as exc:
        print(f"kos fork server: {type(exc).__name__}: {exc}", file=sys.stderr)
        pid, sbh, why = 0, "", f"fork server: {exc}"
    reply = {"sbh": sbh, "pid": pid, "exited": [], "error": why}
    ctl.sendall(json.dumps(reply).encode() + b"\n")
    return args if sbh else None


def _hand_over(ctl: socket.socket, made: list[tuple[int, socket.socket, list[Any] | None]]) -> None:
    """Pass the plugin the new spares' sockets (and close this process's copies)."""
    for pid, sock, ahead in made:
        try:
            message = {"spare": pid, "ahead": ahead, "timeout": factory.SPAWN_TIMEOUT}
            socket.send_fds(ctl, [json.dumps(message).encode() + b"\n"], [sock.fileno()])
        except OSError:
            pass  # the plugin is gone: the main loop sees it
        finally:
            sock.close()


def main(argv: list[str]) -> int:
    """Run the fork server: ``TARGET TYPENAME CONTROL_FD SPARES (ahead|on-demand)``."""
    target, typename, ctl_fd, count, making = argv
    make = _resolve(target)
    find_interface(typename).methods()  # preload and check the interface
    _warm_up()
    ctl = socket.socket(fileno=int(ctl_fd))
    lifeline = int(os.environ.get(factory.LIFELINE_ENV, "-1"))
    pending = b""  # what the plugin sent that is not a whole line yet
    exited: list[int] = []
    # SIGCHLD wakes the loop (through the wakeup pipe) so exited children are reaped at once.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # What no child may keep: the control socket must see end-of-file when we die.
    # Idle spares watch this pipe, which only this process writes to: they end with it.
    watch_read, watch_write = os.pipe()
    plumbing: list[forked.Closable | int] = [ctl, wake_read, wake_write, watch_write]
    spares = Spares(make, typename, int(count), watch_read)
    _hand_over(ctl, spares.fill(plumbing))
    watched = [ctl.fileno(), wake_read] + ([lifeline] if lifeline >= 0 else [])
    while True:
        ready, _, _ = select.select(watched, [], [], 5.0)
        if wake_read in ready:
            os.read(wake_read, 512)
        _reap(exited)
        if exited:
            spares.forget(exited)
            try:
                ctl.sendall(json.dumps({"exited": exited}).encode() + b"\n")
            except OSError:
                return 0  # the plugin is gone
            exited = []
        if lifeline in ready and not os.read(lifeline, 1):
            return 0  # the plugin died
        if ctl.fileno() not in ready:
            _hand_over(ctl, spares.fill(plumbing))  # for spares that died
            continue
        chunk = ctl.recv(65536)
        if not chunk:
            return 0  # the plugin closed the factory
        pending += chunk
        while b"\n" in pending:  # a took and a request may come together
            line, _, pending = pending.partition(b"\n")
            message = json.loads(line)
            if "took" in message:
                spares.forget([int(message["took"])])
                made_with = message.get("args")
            elif spares.handed_over():  # the plugin has yet to read them: it is to use them
                ctl.sendall(json.dumps({"sbh": "", "pid": 0, "retry": True}).encode() + b"\n")
                continue
            else:
                made_with = _on_demand(
                    ctl, make, typename, list(message["args"]), [*plumbing, watch_read]
                )
            if making == "ahead" and made_with is not None:
                spares.ahead = list(made_with)  # new spares make their object with these
        # The plugin has its answer: forking is off the critical path; yielding first
        # lets the plugin, woken by the message on this processor, run before the fork.
        os.sched_yield()
        _hand_over(ctl, spares.fill(plumbing))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
