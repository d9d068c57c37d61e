"""Helpers of the integration suite: run the ``kos`` CLI, write and run plugin scripts.

Every process started here is in its own session (process group) so that it can
be killed with everything it started, and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from kos_core.testing import KernelProcess, KosEnv

CLI = [sys.executable, "-m", "kos_core.cli"]
#: The header of the ``kos plugins`` table.
HEADER = ["NAME", "DISTRIBUTION", "VERSION", "BOOT", "STATE", "PID"]
#: The exit status a plugin script uses to prove that register() raised getopt.GetoptError.
GETOPT_EXIT = 3


@dataclass(frozen=True)
class Result:
    """What a finished command did."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        """The non-blank lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.command)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 30.0,
) -> Result:
    """Run ``command`` to its end (killing its whole group after ``timeout``)."""
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        out, err = process.communicate()
        raise AssertionError(
            f"{' '.join(command)} did not finish within {timeout:g} s\n"
            f"--- stdout\n{out}--- stderr\n{err}"
        ) from None
    return Result(tuple(command), process.returncode, out, err)


def kos_environ(kos_env: KosEnv, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a subprocess of a test gets: ours, the test's kos place, ``extra``."""
    return {**os.environ, **kos_env.environ(), **(extra or {})}


class Cli(Protocol):
    """``cli("call", "bitbucket", "List")`` runs ``python -m kos_core.cli call bitbucket List``."""

    def __call__(
        self, *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> Result: ...


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    """Assert the command failed with ``code`` and exactly one stderr line holding
    every fragment, and no traceback; return that line.
    """
    assert result.returncode == code, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert len(result.err_lines) == 1, str(result)
    line = result.err_lines[0]
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (quietly, if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def connection_file(kos_env: KosEnv, kernel: str | None = None) -> Path:
    """Where a kernel of this test writes its connection file."""
    return kos_env.runtime_dir / f"{kernel or kos_env.kernel}.kernel.json"


def connection_info(kos_env: KosEnv, kernel: str | None = None) -> dict[str, Any]:
    """The parsed connection file of a running kernel."""
    data: dict[str, Any] = json.loads(connection_file(kos_env, kernel).read_text())
    return data


_PLUGIN_SCRIPT = '''\
"""A plugin started by hand, written as the tutorial shows."""

import getopt
import sys

from kos_core import pluginlib
from kos_plugins_bitbucket.plugin import BitBucket

PLUGIN = {plugin!r}
SERVICE = {service!r}


def main() -> None:
    try:
        kos, ns = pluginlib.register(PLUGIN)
    except getopt.GetoptError as exc:
        print(f"GETOPT-ERROR: {{exc}}", file=sys.stderr, flush=True)
        sys.exit({getopt_exit})
    print("context", ns.path, " ".join(sorted(ns.list())), flush=True)
    sid = kos.bind_service(SERVICE, BitBucket(1000), "BitBucketAPI.BitBucket")
    try:
        print("registered", sid, flush=True)  # inside: a signal after it runs the finally
        kos.run()
    finally:
        kos.unbind_service(sid)
        print("exiting", flush=True)


if __name__ == "__main__":
    main()
'''


def write_plugin_script(directory: Path, plugin: str, service: str | None = None) -> Path:
    """Write a hand-startable plugin script that serves a BitBucket as ``service``."""
    path = directory / f"hand_{plugin.replace('-', '_').replace('.', '_')}.py"
    path.write_text(
        _PLUGIN_SCRIPT.format(plugin=plugin, service=service or plugin, getopt_exit=GETOPT_EXIT)
    )
    return path


class HandPlugin:
    """A plugin script run by hand: ``python SCRIPT -n KERNEL [ARGS]``, output to files."""

    def __init__(
        self,
        script: Path,
        kernel: str,
        env: Mapping[str, str],
        cwd: Path,
        *,
        args: Sequence[str] = (),
        tag: str = "",
    ) -> None:
        self.script = script
        self.command = [sys.executable, str(script), "-n", kernel, *args]
        stem = f"{script.stem}{tag}"
        self.out_path = cwd / f"{stem}.out"
        self.err_path = cwd / f"{stem}.err"
        self._out: IO[bytes] = open(self.out_path, "wb")  # noqa: SIM115 (closed by stop())
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            self.command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The script's pid."""
        return self.process.pid

    def stdout(self) -> str:
        """What it printed so far."""
        self._out.flush()
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        """What it printed on stderr so far."""
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for it to exit; return its status (AssertionError after ``timeout``)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{' '.join(self.command)} still runs after {timeout:g} s\n"
                f"--- stdout\n{self.stdout()}--- stderr\n{self.stderr()}"
            ) from None

    def result(self, timeout: float = 15.0) -> Result:
        """Wait for it to exit and return what it did."""
        code = self.wait(timeout)
        return Result(tuple(self.command), code, self.stdout(), self.stderr())

    def stop(self) -> None:
        """Kill it and whatever it started; close its output files."""
        if self.process.returncode is None:
            kill_group(self.process.pid)  # the pid is ours until we reap it below
            self.process.wait()
        self._out.close()
        self._err.close()


def dedent(text: str) -> str:
    """``textwrap.dedent`` without the leading newline."""
    return textwrap.dedent(text).lstrip("\n")


def booting_line(kernel: KernelProcess) -> str:
    """The kernel's "running at ...; booting ..." line, once it has printed it."""
    for line in kernel.log().splitlines():
        if line.startswith("kos: kernel ") and "; booting " in line:
            return line
    return ""


def table(stdout: str) -> list[list[str]]:
    """The rows of a table the CLI printed, header first, split on blanks."""
    return [line.split() for line in stdout.splitlines() if line.strip()]
