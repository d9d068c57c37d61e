"""Test helpers for kos and for plugin authors (a pytest plugin, loaded automatically).

Fixtures:

* ``kos_env`` — a private runtime, state and config directory and kernel name,
  set in the environment for the test (and for every process it starts).
* ``start_kernel`` — starts real kernels (``kos run``):
  ``start_kernel("--listen", "127.0.0.1:0", setup="[bitbucket]\\n...", env=other_env)``
  writes the setup file (if given), starts the kernel, waits until it answers (unless
  ``ready=False``) and returns its :class:`KernelProcess` (``name``, ``env``,
  ``process``, ``log()``, ``connect()``, ``wait_plugin()``, ``stop()``). Every kernel
  it started is stopped after the test, pass or fail, and every process the kernel
  started is ended with it.
* ``kos_kernel`` — one such kernel, booted with the installed plugins.
* ``etcd`` — a real ``etcd`` (from ``PATH``) on loopback ports with a temporary data
  directory, stopped after the test. :class:`EtcdProcess` itself takes TLS with client
  certificates (:class:`EtcdTLS`) and more etcd flags; :func:`etcd_cluster` starts
  several members.

Outside a test function (a module-scoped fixture, a script), :func:`running_kernel`
is the same as a context manager: ``with running_kernel(make_env()) as kernel: ...``.

Helpers: :func:`wait_for` waits on a condition with a deadline (never a bare sleep);
:func:`process_ended`, :func:`process_reaped` and :func:`wait_ended` tell when a
process has gone; :func:`children_of`, :func:`descendants_of`, :func:`sbh_pid` and
:func:`idle_spare` find processes; :func:`require` skips a test that cannot run
here, or fails it when ``$CI`` is set (CI installs what the tests need: a skipped
test there would be a missing test). With ``$CI`` set, hypothesis runs with the
``ci`` settings profile (no per-example deadline: a shared CI machine is slow).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kos_core._world.etcd_process import EtcdProcess, EtcdTLS, etcd_binary, etcd_cluster
from kos_core.errors import KosError

_T = TypeVar("_T")

__all__ = [
    "EtcdProcess",
    "EtcdTLS",
    "KernelProcess",
    "KosEnv",
    "StartKernel",
    "children_of",
    "descendants_of",
    "etcd",
    "etcd_cluster",
    "idle_spare",
    "kos_env",
    "kos_kernel",
    "make_env",
    "process_ended",
    "process_reaped",
    "require",
    "require_etcd",
    "running_kernel",
    "sbh_pid",
    "start_kernel",
    "wait_ended",
    "wait_for",
]


def pytest_configure(config: pytest.Config) -> None:
    """With ``$CI`` set, load hypothesis's ``ci`` profile (no per-example deadline)."""
    try:
        from hypothesis import settings
    except ImportError:  # hypothesis is a test tool, not a dependency of kos-core
        return
    settings.register_profile("ci", deadline=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")


def require(condition: object, why: str) -> None:
    """Skip the calling test unless ``condition`` holds; fail it instead when ``$CI`` is
    set. ``why`` says what is missing and how to get it.
    """
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must provide it: a skipped test there is a missing test)")
    pytest.skip(why)


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


# ---------------------------------------------------------------------------- processes


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


def process_reaped(pid: int) -> bool:
    """True once ``pid`` has ended *and* been reaped (``os.kill`` finds no process): the
    check for a child of a live parent, which must reap it. An orphan may never be
    reaped (its new parent may not reap): check it with :func:`process_ended`.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_ended(
    pid: int, what: str = "the process", timeout: float = 10.0, reaped: bool = False
) -> None:
    """Wait until ``pid`` has ended (:func:`process_ended`), or with ``reaped`` until it
    has also been reaped (:func:`process_reaped`); ``TimeoutError`` after ``timeout``.
    """
    check = process_reaped if reaped else process_ended
    wait_for(lambda: check(pid), timeout, f"{what} ({pid}) to end")


def sbh_pid(handle: object) -> int:
    """The pid of the process serving an SBH or a proxy (a plugin or a factory child):
    it serves on ``<runtime dir>/p<PID>.sock``.
    """
    from kos_core import _rpc
    from kos_core._net import wire

    sbh = handle if isinstance(handle, str) else _rpc.sbh_of(handle)
    assert sbh is not None, f"{handle!r} has no SBH"
    name = Path(wire.parse_sbh(sbh)[0].path or "").name
    assert name.startswith("p") and name.endswith(".sock") and name[1:-5].isdigit(), sbh
    return int(name[1:-5])


def idle_spare(fork_server: int, but: set[int] | None = None, timeout: float = 10.0) -> int:
    """The one child of ``fork_server`` not in ``but``: its idle spare (waited for)."""

    def one() -> int:
        found = children_of(fork_server) - (but or set())
        return found.pop() if len(found) == 1 else 0

    return wait_for(one, timeout, f"one spare under the fork server {fork_server}")


# ---------------------------------------------------------------------------- kernels


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
    """A ``kos run`` process in its own process group. Stopping it also sweeps up its
    process group; :meth:`close` also ends every plugin it was seen to run.
    """

    def __init__(
        self,
        env: KosEnv,
        args: Sequence[str] = (),
        log_path: Path | None = None,
        prefix: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``kos run -n <env.kernel> ARGS`` with ``environ`` added to the
        environment; ``prefix`` is a command that execs it (``ip netns exec NS``: the
        kernel keeps the pid it starts with).
        """
        self.env = env
        self.log_path = log_path or env.state_dir / f"kernel-{env.kernel}.log"
        #: the pids of the plugins :meth:`wait_plugin` found, by plugin name
        self.plugin_pids: dict[str, int] = {}
        self._seen: set[int] = set()  # processes it started: ended by close()
        command = [*prefix, sys.executable, "-m", "kos_core.cli", "run", "-n", env.kernel, *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env.environ(), **(environ or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def name(self) -> str:
        """The kernel's name."""
        return self.env.kernel

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
            pid = wait_for(ready, timeout, f"plugin {name} to be running")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log()}") from None
        self.plugin_pids[name] = pid
        self._seen.add(pid)
        return pid

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the kernel and wait; return its exit status. Anything left in its
        process group is killed (its plugins, in their own groups, are left to it:
        :meth:`close` ends those it failed to end).
        """
        if self.process.poll() is None:
            self._seen |= descendants_of(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.kill_group()
        self._log.close()
        return self.process.returncode

    def close(self, grace: float = 5.0) -> None:
        """:meth:`stop`, then give every process it was seen to run ``grace`` seconds to
        end, and SIGKILL those left. For after the test: what a test checks about
        stopping, it checks after :meth:`stop`.
        """
        self.stop()
        left = {pid for pid in self._seen if not process_ended(pid)}
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: all(map(process_ended, left)), grace, "the kernel's processes")
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if not process_ended(pid):
                    os.kill(pid, signal.SIGKILL)

    def kill_group(self) -> None:
        """SIGKILL every process left in the kernel's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_kernel(
    env: KosEnv,
    *args: str,
    setup: str | None = None,
    ready: bool = True,
    environ: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    prefix: Sequence[str] = (),
) -> Iterator[KernelProcess]:
    """A kernel in ``env`` started with ``args`` (after writing the setup file ``setup``,
    if given), once it answers (unless ``ready`` is false); closed afterwards
    (:meth:`KernelProcess.close`), however the block ends.
    """
    if setup is not None:
        env.write_setup(setup)
    kernel = KernelProcess(env, args, log_path=log_path, prefix=prefix, environ=environ)
    try:
        if ready:
            kernel.wait_ready()
        yield kernel
    finally:
        kernel.close()


#: The ``start_kernel`` fixture: :func:`running_kernel`'s arguments but ``env`` (the
#: test's ``kos_env`` unless given) and ``log_path`` (a file per kernel).
StartKernel = Callable[..., KernelProcess]


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
def start_kernel(kos_env: KosEnv) -> Iterator[StartKernel]:
    """Start kernels (``start(*args, env=None, **running_kernel_options)``); all are
    closed after the test, pass or fail.
    """
    with contextlib.ExitStack() as stack:
        count = 0

        def start(*args: str, env: KosEnv | None = None, **options: Any) -> KernelProcess:
            nonlocal count
            place = env or kos_env
            log_path = place.state_dir / f"kernel-{place.kernel}-{count}.log"
            count += 1
            kernel = running_kernel(place, *args, log_path=log_path, **options)
            return stack.enter_context(kernel)

        yield start


@pytest.fixture
def kos_kernel(start_kernel: StartKernel) -> KernelProcess:
    """A running kernel with the installed plugins booted (per the test's setup files)."""
    return start_kernel()


# ---------------------------------------------------------------------------- etcd


def require_etcd() -> None:
    """Skip the calling test when ``etcd`` is not on ``PATH`` (fail it when ``$CI`` is set)."""
    require(
        etcd_binary() is not None,
        "etcd is not on PATH: install the Debian package etcd-server to run the world tests",
    )


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
