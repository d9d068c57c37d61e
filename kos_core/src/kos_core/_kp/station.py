"""The station: the part of a kernel that runs KPs, each in a confined process.

A KP is started from the kernel's main thread (its process asks Linux to kill it
when that thread dies), confines itself before any of its code runs (see
:mod:`.confine`) and says on a status pipe that its ``__main__`` is about to run, or
why it cannot. States::

    starting ──runs __main__──▶ running ──ends / is killed / hits a limit──▶ ended

An ended KP is never restarted; its row (exit status and reason) stays for ``kos kp
list`` (the last :data:`KEEP_ENDED` of them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kos_core._kernel import access
from kos_core._kernel.access import Grant
from kos_core._kernel.logs import PluginLog
from kos_core._kernel.policy import Supervision
from kos_core._kernel.store import Store
from kos_core._kp import confine
from kos_core._kp.policy import KPAccess, Limits
from kos_core._kp.watching import cpu_of, pids_of_uid, read_status
from kos_core._net import wire
from kos_core._os import paths, processes
from kos_core.errors import KPError, NameNotFound, UsageError
from kos_core.kernel_api import KPRow

if TYPE_CHECKING:
    from kos_core._kp.migration import World

log = logging.getLogger("kos.kernel")
_T = TypeVar("_T")

STATUS_ENV = "KOS_KP_STATUS_FD"
PACKAGE = ".kp-package.json"
START_TIMEOUT = 15.0
KEEP_ENDED = 100
#: seconds a kill waits for a migration under way to settle (a handover call gives up
#: before: ``KOS_CALL_TIMEOUT``, 30 s)
HANDOVER_WAIT = 35.0


@dataclass
class KPRecord:
    """What the station knows of one KP."""

    id: str
    classname: str
    filename: str
    source: str
    origin: str
    limits: Limits
    workdir: Path
    args: list[str] = field(default_factory=list)
    asked_limits: str = ""
    credential: str = field(repr=False, default="")
    process: subprocess.Popen[bytes] | None = None
    pid: int = 0
    uid: int = 0
    state: str = "starting"
    started: float = 0.0
    started_mono: float = 0.0
    ended_mono: float = 0.0
    cpu: float = 0.0
    last_exit: str = ""
    killed_for: str = ""
    migrating: bool = False
    #: why it was to be killed while it was moving (carried out if it stays)
    kill_asked: str = ""
    #: ``B (KP <id>)`` once it has moved there
    moved_to: str = ""

    @property
    def owner(self) -> str:
        """The namespace owner tag of the KP's context ``kps/<id>``."""
        return f"kp:{self.id}"

    @property
    def alive(self) -> bool:
        """True until the station has seen its process end."""
        return self.process is not None and self.state != "ended"


class Station:
    """Runs one kernel's KPs."""

    def __init__(
        self,
        kernel: str,
        state_dir: Path,
        namespace: Store,
        access: KPAccess,
        *,
        address: Callable[[], str],
        call_in_main: Callable[[Callable[[], Any]], Any],
        world: World | None = None,
    ) -> None:
        self.kernel = kernel
        self.state_dir = state_dir
        self.namespace = namespace
        self.access = access
        self._address = address
        self._call_in_main = call_in_main
        #: the world this kernel is in, through which KPs move to other hosts
        self.world = world
        self.records: dict[str, KPRecord] = {}
        self.lock = threading.RLock()

    # -- credentials ---------------------------------------------------------------

    def grant_for(self, token: str) -> Grant | None:
        """The KP grant ``token`` gives, or ``None`` if it is no KP's credential."""
        with self.lock:
            for record in self.records.values():
                if record.credential and wire.tokens_equal(token, record.credential):
                    return Grant(access.KP, record.id, may_look=self.access.may_look(record.id))
        return None

    # -- starting ------------------------------------------------------------------

    def submit(
        self,
        target: str,
        source: str,
        args: list[str],
        limits: str,
        *,
        unconfined: bool = False,
        origin: str = "submitted",
        state: bytes | None = None,
    ) -> str:
        """Run KP ``target`` (``FILE:CLASS``) of ``source``; return its id once its
        ``__main__`` runs (any thread).

        Raises :class:`KPError` with the reason if it cannot be confined or started.
        """
        filename, _, classname = target.rpartition(":")
        if not classname.isidentifier():
            raise UsageError(f"bad KP {target!r}: give FILE:CLASS (CLASS a Python name)")
        why = None if unconfined else confine.probe(self.access.landlock)
        if why is not None:
            raise KPError(f"this station cannot confine a KP: {why} (or pass --unconfined)")
        record = KPRecord(
            id=secrets.token_hex(4),
            classname=classname,
            filename=filename,
            source=source,
            origin=origin,
            limits=self.access.limits_for(limits),
            workdir=self.state_dir / "kps" / "x",
            args=list(args),
            asked_limits=limits,
        )
        record.workdir = self.state_dir / "kps" / record.id
        package = {
            "id": record.id,
            "kernel": self.kernel,
            "address": self._address(),
            "filename": filename,
            "source": source,
            "class": classname,
            "args": list(args),
            "state": state.decode("ascii") if state is not None else None,
            "plan": None if unconfined else self._plan(record),
        }
        if unconfined:
            log.warning("KP %s (%s) runs UNCONFINED: the operator said so", record.id, classname)
        status_fd = self._call_in_main(lambda: self._launch(record, package))
        try:
            ready, why = read_status(status_fd, START_TIMEOUT)
        finally:
            os.close(status_fd)
        if not ready:
            self.kill(record.id, why)
            raise KPError(f"KP {classname} could not start: {why}")
        with self.lock:
            if record.state == "starting":
                record.state = "running"
        log.info("KP %s (%s) running (pid %d, %s)", record.id, classname, record.pid, origin)
        return record.id

    def _plan(self, record: KPRecord) -> dict[str, Any]:
        uid = 0
        if os.geteuid() == 0:
            uid = confine.KP_UID_BASE + secrets.randbelow(confine.KP_UID_SPAN)
        record.uid = uid
        limits = record.limits
        deny = (str(paths.runtime_dir()), str(self.state_dir))
        return vars(
            confine.Plan(
                str(record.workdir),
                limits.cpu,
                limits.mem,
                limits.processes,
                limits.files,
                limits.file_size,
                uid,
                deny,
            )
        )

    def _launch(self, record: KPRecord, package: dict[str, Any]) -> int:
        """Start the KP's process (main thread); return the read end of its status pipe."""
        paths.make_private_dir(record.workdir)
        (record.workdir / PACKAGE).write_text(json.dumps(package))
        record.credential = secrets.token_urlsafe(32)
        credential_fd = access.credential_pipe(record.credential)
        status_read, status_write = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KOS_KERNEL": self.kernel,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MALLOC_ARENA_MAX": "2",  # each malloc arena reserves 64 MiB of address space
            processes.PARENT_ENV: str(os.getpid()),
            access.CREDENTIAL_FD_ENV: str(credential_fd),
            STATUS_ENV: str(status_write),
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-m", "kos_core._kp.runner"],
                cwd=record.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(credential_fd, status_write),
                process_group=0,
            )
        except OSError as exc:
            os.close(status_read)
            raise KPError(f"cannot start a KP process: {exc}") from None
        finally:
            os.close(credential_fd)
            os.close(status_write)
        assert process.stdout is not None
        PluginLog(self.log_path(record.id), f"kp/{record.id}", Supervision()).follow(process.stdout)
        with self.lock:
            record.process, record.pid = process, process.pid
            record.started, record.started_mono = time.time(), time.monotonic()
            self.records[record.id] = record
            self.namespace.make_context("kps")  # shared: no owner (made at the first KP)
            self.namespace.make_context(f"kps/{record.id}", owner=record.owner)
        return status_read

    # -- watching and ending ---------------------------------------------------------

    def tick(self) -> None:
        """Reap ended KPs; kill those past their wall-clock limit (main thread)."""
        now = time.monotonic()
        with self.lock:
            for record in list(self.records.values()):
                if not record.alive:
                    continue
                assert record.process is not None
                pid, status, usage = os.wait4(record.pid, os.WNOHANG)
                if pid:
                    record.process.returncode = os.waitstatus_to_exitcode(status)
                    record.cpu = usage.ru_utime + usage.ru_stime
                    self._ended(record, now)
                elif now - record.started_mono > record.limits.wall:
                    self._kill(record, f"wall-clock limit ({record.limits.wall} s) reached")

    def _ended(self, record: KPRecord, now: float) -> None:
        assert record.process is not None
        code = record.process.returncode
        reason = record.killed_for or processes.describe_exit(code)
        if code == -signal.SIGXCPU and not record.killed_for:
            reason = f"CPU limit ({record.limits.cpu} s) reached"
        self._sweep(record)  # whatever it started goes with it
        record.state, record.last_exit, record.ended_mono = "ended", reason, now
        record.credential = ""
        self.namespace.remove_owner(record.owner)
        with contextlib.suppress(OSError):
            (record.workdir / PACKAGE).unlink()
        log.info("KP %s (%s) ended: %s", record.id, record.classname, reason)
        ended = [r for r in self.records.values() if r.state == "ended"]
        for old in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self.records[old.id]

    def _kill(self, record: KPRecord, why: str, *, now: bool = False) -> None:
        if record.migrating and not now:  # carried out by settle() if it stays
            if not record.kill_asked:
                record.kill_asked = why
                log.info("KP %s (%s) is moving: %s if it stays", record.id, record.classname, why)
            return
        if not record.killed_for:
            record.killed_for = why
        self._sweep(record)

    def _sweep(self, record: KPRecord) -> None:
        """SIGKILL the KP's process group and, when it has a uid of its own, every
        process of that uid (one that left the group).
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGKILL)
        if record.uid:
            for pid in pids_of_uid(record.uid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def kill(self, kp: str, why: str = "killed by the operator") -> str:
        """End KP ``kp`` and wait (a few seconds at most) until it is reaped; return its
        state. A KP that is moving is killed only if it stays: the kill waits for the
        handover to settle, and if the KP moved first, says where it went
        (``migrated to B (KP <id>)``; it runs on there).
        """
        with self.lock:
            record = self._record(kp)
            if record.alive:
                self._kill(record, why)
            wait = 5.0 + (HANDOVER_WAIT if record.migrating else 0.0)
        self._wait_settled(record, wait)
        return record.killed_for if record.moved_to else record.state

    def settle(self, kp: str, moved_to: str = "") -> None:
        """The migration of KP ``kp`` is over. With ``moved_to`` (``B (KP <id>)``) it
        runs there and is ended here; without, it stays, unless it was to be killed
        while it moved, which is done now. Waits (a few seconds at most) for the reaping.
        """
        with self.lock:
            record = self.records.get(kp)
            if record is None:
                return
            record.migrating = False
            if moved_to:
                record.moved_to, record.killed_for = moved_to, f"migrated to {moved_to}"
                if record.alive:
                    self._sweep(record)
                else:  # its process here ended while it moved (a limit)
                    record.last_exit = record.killed_for
            elif record.kill_asked and record.alive:
                self._kill(record, record.kill_asked)
        self._wait_settled(record, 5.0)

    def _wait_settled(self, record: KPRecord, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (record.migrating or record.alive) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop_all(self) -> None:
        """Kill every KP and reap it (the kernel is stopping; main thread)."""
        with self.lock:
            live = [r for r in self.records.values() if r.alive]
            for record in live:
                self._kill(record, "the kernel stopped", now=True)
        for record in live:
            assert record.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                record.process.wait(5.0)
        self.tick()

    # -- the operator's view ---------------------------------------------------------

    def _record(self, kp: str) -> KPRecord:
        record = self.records.get(kp)
        if record is None:
            raise KPError(f"no KP {kp!r} at kernel {self.kernel!r} (see: kos kp list)")
        return record

    def log_path(self, kp: str) -> Path:
        """Where a KP's output is logged."""
        paths.check_name(kp, "KP")
        return self.state_dir / "logs" / f"kp-{kp}.log"

    def known_log(self, kp: str) -> str:
        """The log path of a KP this station ran (``LogPath("kp/ID")``)."""
        if kp not in self.records:
            raise NameNotFound(f"no KP {kp!r} at kernel {self.kernel!r} (see: kos kp list)")
        return str(self.log_path(kp))

    def rows(self) -> list[KPRow]:
        """The KP table."""
        now = time.monotonic()
        with self.lock:
            return [
                (
                    r.id,
                    r.classname,
                    r.state,
                    r.pid if r.alive else 0,
                    r.cpu if not r.alive else cpu_of(r.pid),
                    r.origin,
                    r.last_exit,
                    (r.ended_mono if not r.alive else now) - r.started_mono,
                )
                for r in self.records.values()
            ]
