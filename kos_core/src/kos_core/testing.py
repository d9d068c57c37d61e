"""Test helpers for kos and for plugin authors (a pytest plugin, loaded automatically).

Fixtures:

* ``kos_env`` — a private runtime, state and config directory and kernel name,
  set in the environment for the test (and for every process it starts).
* ``kos_kernel`` — a real kernel (``kos run``) in that environment, booted with
  the installed plugins; stopped, with every process it started, after the test.
* ``etcd`` — a real ``etcd`` (from ``PATH``) on loopback ports with a temporary data
  directory, stopped after the test. Without ``etcd`` the test is skipped, or fails
  when ``$CI`` is set (CI installs it).

Helpers: :class:`KernelProcess` to start kernels with other options, and
:func:`wait_for` to wait on a condition with a deadline (never a bare sleep).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kos_core._world.etcd_process import EtcdProcess, etcd_binary
from kos_core.errors import KosError

_T = TypeVar("_T")

__all__ = [
    "EtcdProcess",
    "KernelProcess",
    "KosEnv",
    "children_of",
    "descendants_of",
    "etcd",
    "kos_env",
    "kos_kernel",
    "process_ended",
    "require_etcd",
    "wait_for",
]


def wait_for(
    condition: Callable[[], _T | None],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> _T:
    """Poll ``condition`` until it returns something truthy; return that.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds. Exceptions
    from ``condition`` count as "not yet" (the last one is chained).
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}") from last_exc
        time.sleep(interval)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def children_of(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux ``/proc``; unreaped zombies included)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def process_ended(pid: int) -> bool:
    """True once ``pid`` has exited: gone, or a zombie nobody has reaped yet (an orphan
    handed to an init that does not reap counts as ended).
    """
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


@dataclass
class KosEnv:
    """A private place for kernels: directories and a kernel name."""

    kernel: str
    runtime_dir: Path
    state_dir: Path
    config_dir: Path

    def environ(self) -> dict[str, str]:
        """The environment variables that point kos at this place."""
        return {
            "KOS_KERNEL": self.kernel,
            "KOS_RUNTIME_DIR": str(self.runtime_dir),
            "KOS_STATE_DIR": str(self.state_dir),
            "KOS_CONFIG": str(self.config_dir),
        }

    def write_setup(self, text: str, layer: str = "plugins") -> Path:
        """Write a plugin setup file (``plugins``, ``plugins.local`` or ``plugins.KERNEL``)."""
        path = self.config_dir / layer
        path.write_text(text)
        return path


def make_env(kernel: str = "testk") -> KosEnv:
    """Create a fresh :class:`KosEnv` under a short temporary directory
    (Unix socket paths are limited to 107 bytes).
    """
    base = Path(tempfile.mkdtemp(prefix="kos-"))
    env = KosEnv(kernel, base / "run", base / "state", base / "config")
    env.runtime_dir.mkdir(mode=0o700)
    env.state_dir.mkdir()
    env.config_dir.mkdir()
    return env


class KernelProcess:
    """A ``kos run`` process in its own process group, so that stopping it can
    also sweep up every plugin and child it started.
    """

    def __init__(
        self,
        env: KosEnv,
        args: Sequence[str] = (),
        log_path: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """Start ``kos run -n <env.kernel> ARGS``; ``prefix`` is a command that execs
        it (``ip netns exec NS``: the kernel keeps the pid it starts with).
        """
        self.env = env
        self.log_path = log_path or env.state_dir / f"kernel-{env.kernel}.log"
        command = [*prefix, sys.executable, "-m", "kos_core.cli", "run", "-n", env.kernel, *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env.environ()},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The kernel's pid."""
        return self.process.pid

    def log(self) -> str:
        """Everything the kernel and its plugins printed so far (also after :meth:`stop`)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def connect(self) -> Any:
        """A :class:`~kos_core.Kos` connection to this kernel."""
        from kos_core._client import connect

        return connect(self.env.kernel)

    def wait_ready(self, timeout: float = 15.0) -> KernelProcess:
        """Wait until the kernel answers; raise with its log if it exits first."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"kernel exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.connect().close()
            except KosError:
                return False
            return True

        try:
            wait_for(ready, timeout, "the kernel to answer")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log()}") from None
        return self

    def plugin_row(self, name: str) -> tuple[Any, ...] | None:
        """The kernel's plugin-table row for ``name``, or ``None``."""
        with self.connect() as kos:
            for row in kos.plugins():
                if row[0] == name:
                    return tuple(row)
        return None

    def wait_plugin(self, name: str, timeout: float = 15.0, services: Sequence[str] = ()) -> int:
        """Wait until plugin ``name`` is registered (and ``services`` are bound); return its pid."""

        def ready() -> int:
            row = self.plugin_row(name)
            if row is None or row[1] != "running":
                return 0
            if not set(services) <= set(row[3]):
                return 0
            return int(row[2])

        try:
            return wait_for(ready, timeout, f"plugin {name} to be running")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log()}") from None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the kernel and wait; return its exit status. Anything left in its
        process group is killed.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.kill_group()
        self._log.close()
        return self.process.returncode

    def kill_group(self) -> None:
        """SIGKILL every process left in the kernel's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def kos_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[KosEnv]:
    """A private kos environment (runtime, state, config dirs, kernel name) for one test."""
    env = make_env()
    for key, value in env.environ().items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)


@pytest.fixture
def kos_kernel(kos_env: KosEnv) -> Iterator[KernelProcess]:
    """A running kernel with the installed plugins booted (per the test's setup files)."""
    kernel = KernelProcess(kos_env)
    try:
        kernel.wait_ready()
        yield kernel
    finally:
        kernel.stop()


def require_etcd() -> None:
    """Skip the calling test when ``etcd`` is not on ``PATH``, or fail it when ``$CI``
    is set (CI installs etcd: a skipped world test there would be a missing test).
    """
    if etcd_binary() is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("etcd is not on PATH in CI (.ci/run installs the Debian package etcd-server)")
    pytest.skip("etcd is not on PATH: install etcd-server to run the world tests")


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    """A running etcd on loopback with its own data directory; stopped (and its data
    removed) after the test, also when the test fails.
    """
    require_etcd()
    base = Path(tempfile.mkdtemp(prefix="kos-etcd-"))
    server = EtcdProcess(base / "data")
    try:
        yield server.start()
    finally:
        server.kill()
        shutil.rmtree(base, ignore_errors=True)
