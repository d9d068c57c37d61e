"""What the benchmark's parts share: statistics, timing and the processes they start.

Every context manager here stops what it started when its block ends, also on
Ctrl-C, SIGTERM (``run.py`` turns it into ``SystemExit``) or an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kos_core.testing import KernelProcess, make_env

HERE = Path(__file__).resolve().parent
FILE_SERVER_SCRIPT = HERE / "http_file_server.py"

Call = Callable[..., Any]
Log = Callable[[str], None]


@dataclass
class Stats:
    """Per-call latencies of one series, summarised (microseconds)."""

    calls: int
    median_us: float
    p99_us: float
    mean_us: float
    max_us: float
    p90_us: float = 0.0

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        ordered = sorted(samples_ns)
        if len(ordered) > 1:
            cuts = statistics.quantiles(ordered, n=100, method="inclusive")
            p90, p99 = cuts[89], cuts[98]
        else:
            p90 = p99 = float(ordered[0])
        return cls(
            calls=len(ordered),
            median_us=statistics.median(ordered) / 1000,
            p99_us=p99 / 1000,
            mean_us=statistics.fmean(ordered) / 1000,
            max_us=ordered[-1] / 1000,
            p90_us=p90 / 1000,
        )

    @property
    def median_ms(self) -> float:
        return self.median_us / 1000

    @property
    def p90_ms(self) -> float:
        return self.p90_us / 1000

    @property
    def p99_ms(self) -> float:
        return self.p99_us / 1000


def time_calls(fn: Call, args: tuple[Any, ...], count: int, out: list[int]) -> None:
    """Call ``fn(*args)`` ``count`` times; append each call's duration (ns) to ``out``."""
    clock = time.perf_counter_ns
    append = out.append
    for _ in range(count):
        start = clock()
        fn(*args)
        append(clock() - start)


def stop_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Close our ends of its pipes, SIGTERM it if it is still running, wait; SIGKILL if
    it does not end within ``grace`` seconds.
    """
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(grace)  # helpers exit by themselves at end of file on stdin
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables of this process for the block; restore them after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def private_kernel(
    tag: str,
    setup: str,
    plugin: str,
    services: Sequence[str],
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[KernelProcess]:
    """A real kernel (``kos run``) in a private temporary environment, booted with the
    installed plugins under the setup file ``setup``; returns once ``plugin`` serves
    ``services``.

    While the block runs, this process's environment points ``kos_core.connect()`` at
    it (and holds ``extra_env``, which the kernel and its plugins inherit). Only one
    such kernel may be open at a time.
    """
    env = make_env(f"bench{os.getpid()}{tag}")
    env.write_setup(setup)
    kernel: KernelProcess | None = None
    try:
        with environ({**env.environ(), **(extra_env or {})}):
            try:
                kernel = KernelProcess(env)
                kernel.wait_ready()
                kernel.wait_plugin(plugin, services=list(services))
                yield kernel
            finally:
                if kernel is not None:
                    kernel.stop()
    finally:
        shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)


@contextlib.contextmanager
def helper_process(command: Sequence[str], what: str) -> Iterator[dict[str, Any]]:
    """Start a helper script that prints one JSON line when it is ready and exits when
    its stdin closes; yield that JSON object.
    """
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches only us; we stop it below
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} exited with {process.wait()}")
        info: dict[str, Any] = json.loads(line)
        yield info
    finally:
        stop_process(process)


@contextlib.contextmanager
def file_server(files: Mapping[str, bytes]) -> Iterator[str]:
    """A loopback HTTP server process serving ``files`` (name -> content) from a
    temporary directory; yields its base URL (``http://127.0.0.1:PORT/``).
    """
    directory = Path(tempfile.mkdtemp(prefix="kosb-www-"))
    try:
        for name, content in files.items():
            (directory / name).write_bytes(content)
        command = [sys.executable, str(FILE_SERVER_SCRIPT), str(directory)]
        with helper_process(command, "the HTTP file server") as info:
            yield f"http://127.0.0.1:{int(info['port'])}/"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A private Xvfb on a free display number; yields the ``DISPLAY`` value."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [
                *("Xvfb", "-displayfd", str(write_fd)),
                *("-screen", "0", "1280x1024x24", "-nolisten", "tcp"),
            ],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    try:
        number = b""
        with os.fdopen(read_fd, "rb") as pipe:  # Xvfb writes "N\n" once it listens
            number = pipe.readline().strip()
        if not number.isdigit():
            raise RuntimeError(f"Xvfb did not start (exit status {process.poll()})")
        yield f":{number.decode()}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kernel_log_reason(kernel: KernelProcess, plugin: str) -> str:
    """The last error line a plugin (or one of its children) wrote to the kernel's log."""
    prefix = f"{plugin}| "
    lines = [line[len(prefix) :] for line in kernel.log().splitlines() if line.startswith(prefix)]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line.strip()
    return lines[-1].strip() if lines else "(nothing in the kernel's log)"
