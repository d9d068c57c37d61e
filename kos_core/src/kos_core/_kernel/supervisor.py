"""The supervisor: starts plugin processes, watches them, restarts them with backoff.

States (as ``kos status`` shows them)::

    stopped ──start──▶ starting ──registers──▶ running ──exits──▶ backoff ──delay──▶ starting
                                                 │                   │ (too many quick failures)
                                                 │                   ▼
                                     stop ◀──────┘                 fatal
    stopping ──exits──▶ stopped          exited: ended, and the policy says not to restart

Every process is started from the kernel's main thread (a plugin asks Linux to signal
it when the thread that forked it dies, so that thread must live as long as the
kernel); operator commands arriving on connection threads are queued to it.
A health thread pings every running plugin; one that does not answer in time is
killed and handled like a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kos_core import _rpc
from kos_core._kernel import access, lifecycle, namespace
from kos_core._kernel.health import HealthChecks
from kos_core._kernel.logs import PluginLog, run_marker
from kos_core._kernel.policy import Supervision
from kos_core._kernel.store import Store
from kos_core._os import paths, processes
from kos_core.calls import CallQueue
from kos_core.errors import NameNotFound, UsageError

log = logging.getLogger("kos.kernel")
_T = TypeVar("_T")

STOP_GRACE = 3.0
PLUGIN_SETTINGS_ENV = "KOS_PLUGIN_OPTIONS"
PLUGIN_SETUP_FILE_ENV = "KOS_PLUGIN_SETUP_FILE"
COMMAND_TIMEOUT = 15.0
#: seconds a stopping kernel waits for its plugins' last lines to reach the logs (each
#: copier ends as soon as its plugin's output closes; this bounds a busy machine's lag)
LOG_DRAIN = 5.0


@dataclass
class PluginRecord:
    """What the kernel knows of one plugin."""

    name: str
    command: list[str] | None = None  # None: started by hand, not supervised
    run_at_boot: bool = False
    options: dict[str, str] = field(default_factory=dict)
    supervision: Supervision = field(default_factory=Supervision)
    state: str = "stopped"
    process: subprocess.Popen[bytes] | None = None
    pid: int = 0
    started: float = 0.0  # wall clock, for uptime
    started_mono: float = 0.0
    last_exit: str = ""
    restarts: int = 0
    failures: int = 0  # quick failures in a row
    next_start: float = 0.0  # monotonic time of the next start, in backoff
    stop_deadline: float = 0.0  # when a stopping plugin gets SIGKILL
    wanted: bool = False  # the operator (or boot) wants it running
    killed_for: str = ""  # why the kernel killed it (health), if it did
    health: _rpc.ClientConnection | None = None
    next_ping: float = 0.0
    answered: bool = False  # its current process has answered a health ping
    session: Any = None  # the KernelSession it registered on
    #: the top-level names it may bind (and that are reserved for it)
    services: tuple[str, ...] = ()
    #: the credential made for its current process ("" when none runs)
    credential: str = ""
    #: environment variables set for its process besides the usual ones
    env: dict[str, str] = field(default_factory=dict)
    #: the setup file that holds (or would hold) its section
    setup_file: str = ""
    #: what its connection unbound when it closed (reported when the process ends)
    unbound: list[str] = field(default_factory=list)
    #: the copier of its current process's output
    output: PluginLog | None = None

    @property
    def owner(self) -> str:
        """The namespace owner tag of everything this plugin binds."""
        return f"plugin:{self.name}"

    @property
    def alive(self) -> bool:
        """True while its process runs."""
        return self.process is not None and self.process.poll() is None


class Supervisor(HealthChecks):
    """Runs plugin processes for one kernel."""

    def __init__(self, kernel: str, state_dir: Path, namespace: Store) -> None:
        self.kernel = kernel
        self.state_dir = state_dir
        self.namespace = namespace
        self.records: dict[str, PluginRecord] = {}
        self.lock = threading.RLock()
        self._commands = CallQueue()
        self._marker = run_marker(kernel)
        self._stopping = threading.Event()
        self._log_threads: list[threading.Thread] = []
        self._health_thread = threading.Thread(
            target=self._health_loop, name="kos-health", daemon=True
        )

    # -- the main thread --------------------------------------------------------------

    def boot(self) -> None:
        """Start the run-at-boot plugins and the health checks."""
        self._commands.owner = threading.get_ident()
        paths.make_private_dir(self.state_dir)  # plugins' files and logs: 0700
        for record in list(self.records.values()):
            if record.run_at_boot and record.command is not None:
                record.wanted = True
                self.launch(record)
        self._health_thread.start()

    def tick(self) -> None:
        """Run queued commands, notice exits, start plugins whose backoff is over."""
        self._commands.run_pending()
        now = time.monotonic()
        with self.lock:
            for record in list(self.records.values()):
                if record.process is not None and record.process.poll() is not None:
                    self._exited(record, now)
                elif record.state == "stopping" and record.alive and now > record.stop_deadline:
                    log.warning("plugin %s did not stop in time; killing it", record.name)
                    record.process.kill()  # type: ignore[union-attr]
                elif lifecycle.past_register_deadline(record, now):
                    limit = record.supervision.register_timeout
                    log.error("plugin %s did not register in %g s; killing it", record.name, limit)
                    record.killed_for = f"did not register in {limit:g} s"
                    record.process.kill()  # type: ignore[union-attr]
                elif record.state == "backoff" and now >= record.next_start and record.wanted:
                    record.restarts += 1
                    self.launch(record)
                elif (
                    record.failures
                    and record.alive
                    and now - record.started_mono >= record.supervision.startsecs
                ):
                    record.failures = 0  # it stayed up: the next crash starts a new count

    def launch(self, record: PluginRecord) -> None:
        """Start a plugin's process (main thread only; does not wait for it to register)."""
        assert record.command is not None
        cwd = paths.plugin_dir(self.state_dir, record.name)
        credential = secrets.token_urlsafe(32)
        try:
            credential_fd = access.credential_pipe(credential)
        except OSError as exc:  # out of file descriptors, say: a failed start, retried
            self._start_failed(record, exc)
            return
        env = dict(os.environ)
        env.update(
            {
                "KOS_KERNEL": self.kernel,
                "KOS_RUNTIME_DIR": str(paths.runtime_dir()),
                "PYTHONUNBUFFERED": "1",
                processes.PARENT_ENV: str(os.getpid()),
                PLUGIN_SETTINGS_ENV: json.dumps(record.options),
                PLUGIN_SETUP_FILE_ENV: record.setup_file,
                access.CREDENTIAL_FD_ENV: str(credential_fd),
                **record.env,
            }
        )
        try:
            paths.make_private_dir(cwd)
            process = subprocess.Popen(
                record.command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(credential_fd,),
                # Its own process group: Ctrl-C at the terminal reaches only the kernel,
                # which then stops each plugin with SIGTERM.
                process_group=0,
            )
        except OSError as exc:
            self._start_failed(record, exc)
            return
        finally:
            os.close(credential_fd)
        assert process.stdout is not None
        marker = f"{self._marker} plugin {record.name} started (pid {process.pid})"
        plugin_log = PluginLog(self.log_path(record.name), record.name, record.supervision, marker)
        self._log_threads.append(plugin_log.follow(process.stdout))
        with self.lock:
            record.process, record.pid, record.output = process, process.pid, plugin_log
            record.credential = credential
            record.state, record.killed_for = "starting", ""
            record.started, record.started_mono = time.time(), time.monotonic()
        log.info("plugin %s started (pid %d)", record.name, process.pid)

    def _exited(self, record: PluginRecord, now: float) -> None:
        process = record.process
        assert process is not None
        record.process = None
        record.credential = ""
        if record.session is None:
            record.pid = 0
        reason = record.killed_for or processes.describe_exit(process.returncode)
        failed = process.returncode != 0 or bool(record.killed_for)
        error = record.output.last_error_line() if failed and record.output else ""
        record.last_exit = f"{reason}: {error}" if error else reason
        removed = [*record.unbound, *self.namespace.remove_owner(record.owner)]
        record.unbound = []
        self._drop_health(record)
        if not failed and record.state == "running" and not self._stopping.is_set():
            record.last_exit = lifecycle.ended_without_serving(record, removed) or reason
        self._settle(record, reason, failed, now)
        log.info(
            "plugin %s %s; unbound %s",
            record.name,
            record.last_exit,
            ", ".join(removed) or "nothing",
        )

    def _start_failed(self, record: PluginRecord, exc: OSError) -> None:
        record.last_exit = f"cannot start: {exc.strerror or exc}"
        log.error("plugin %s: %s", record.name, record.last_exit)
        self._settle(record, record.last_exit, True, time.monotonic())

    def _settle(self, record: PluginRecord, reason: str, failed: bool, now: float) -> None:
        """After a plugin's process ended (or could not start): stopped, exited, a
        restart after a backoff, or fatal, as its restart policy says.
        """
        policy = record.supervision
        if not record.wanted or self._stopping.is_set():
            record.state = "stopped"
        elif policy.restart == "never" or (policy.restart == "on-failure" and not failed):
            record.state = "exited"
        else:
            record.failures += 1
            if record.failures > policy.startretries:
                record.state = "fatal"
                log.error(
                    "plugin %s failed %d times in a row (%s); giving up (fatal)",
                    record.name,
                    record.failures,
                    reason,
                )
            else:
                delay = policy.delay(record.failures)
                record.state, record.next_start = "backoff", now + delay
                log.warning("plugin %s %s; restarting in %.1f s", record.name, reason, delay)

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        """Stop every plugin: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self._stopping.set()
        with self.lock:
            running = [r for r in self.records.values() if r.alive]
            for record in running:
                record.state = "stopping"
                with contextlib.suppress(ProcessLookupError):
                    record.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for record in running:
            assert record.process is not None
            try:
                record.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("plugin %s did not stop in %.0f s; killing it", record.name, grace)
                record.process.kill()
                record.process.wait()
        self.tick()
        # Let the last lines the plugins (and their children) wrote reach the logs.
        log_deadline = time.monotonic() + LOG_DRAIN
        for thread in self._log_threads:
            thread.join(max(0.0, log_deadline - time.monotonic()))

    # -- operator commands (any thread) -----------------------------------------------

    def call_in_main(self, func: Callable[[], _T]) -> _T:
        """Run ``func`` in the main thread (now, if this is it) and return its result."""
        return self._commands.call(func, COMMAND_TIMEOUT)

    def _supervised(self, name: str) -> PluginRecord:
        record = self.records.get(name)
        if record is None:
            raise NameNotFound(f"no plugin named {name!r} (see: kos status)")
        if record.command is None:
            raise UsageError(
                f"plugin {name!r} was started by hand, not by this kernel; stop it where it runs"
            )
        return record

    def start(self, name: str) -> str:
        """Start a stopped, exited or fatal plugin; returns its state."""

        def do() -> str:
            record = self._supervised(name)
            log.info("plugin %s: start asked by the operator (it is %s)", name, record.state)
            record.wanted = True
            if record.process is not None and not record.alive:
                self._exited(record, time.monotonic())  # ended since the last tick
            if record.state in ("starting", "running", "stopping"):
                return record.state
            record.failures = 0
            self.launch(record)
            return record.state

        return self.call_in_main(do)

    def stop(self, name: str) -> str:
        """Stop a plugin and keep it stopped (no restart); returns its state."""

        def do() -> str:
            record = self._supervised(name)
            log.info("plugin %s: stop asked by the operator (it is %s)", name, record.state)
            record.wanted = False
            if record.alive:
                assert record.process is not None
                record.state = "stopping"
                record.stop_deadline = time.monotonic() + STOP_GRACE
                with contextlib.suppress(ProcessLookupError):
                    record.process.send_signal(signal.SIGTERM)
            elif record.state in ("backoff", "fatal", "exited"):
                record.state = "stopped"
            return record.state

        return self.call_in_main(do)

    def restart(self, name: str) -> str:
        """Stop a plugin (waiting for it to end) and start it again; returns its state."""
        log.info("plugin %s: restart asked by the operator", name)
        self.stop_and_wait([name])
        return self.start(name)

    def stop_and_wait(self, names: list[str]) -> None:
        """Stop plugins ``names`` together and wait for each to end."""
        processes = self.call_in_main(lambda: [self._supervised(n).process for n in names])
        for name in names:
            self.stop(name)
        for process in processes:
            if process is not None:
                # The main thread sends SIGKILL after STOP_GRACE; start() then reaps it.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(STOP_GRACE + 2.0)

    def forget(self, name: str) -> None:
        """Drop a stopped plugin from the table (its section left the setup files)."""

        def do() -> None:
            record = self.records.get(name)
            if record is None:
                return
            if record.process is not None and not record.alive:
                self._exited(record, time.monotonic())
            if not record.alive:
                del self.records[name]

        self.call_in_main(do)

    def note_unbound(self, name: str, path: str) -> None:
        """Plugin ``name`` unbound ``path`` itself (reported with its exit)."""
        with self.lock:
            record = self.records.get(name)
            canonical = namespace.join(namespace.split_path(path))
            if record is not None and canonical not in record.unbound:
                record.unbound.append(canonical)

    def why_not_bound(self, path: str, exc: NameNotFound, reserved: dict[str, str]) -> NameNotFound:
        """``exc``, or better: which plugin should bind ``path`` and why it has not."""
        return lifecycle.why_not_bound(self.records, path, exc, reserved)

    def log_path(self, name: str) -> Path:
        """Where a plugin's output is logged."""
        return self.state_dir / "logs" / f"{name}.log"
