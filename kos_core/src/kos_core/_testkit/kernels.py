"""Real kernels for tests: a private place (:class:`KosEnv`) and a ``kos run`` process
(:class:`KernelProcess`) that is always stopped with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kos_core._testkit.processes import descendants_of, process_ended, wait_for
from kos_core.errors import KosError


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
