"""Factory children: how long from asking for a child to its first answered call.

Measured through a real kernel with the http plugin (one ``Requester`` child per
``GetHTTPRequester()``), with the fork server (``child-start: fork``, the default) and
with a fresh interpreter per child (``child-start: exec``), next to the floor of each
approach: for the fork server, this process forking a child that answers one request
over a socket pair (taken between the fork server's samples); for exec, a fresh
interpreter that imports rpyc and answers one call.
See ``README.md`` beside this file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpyc.utils.factory import unix_connect

import kos_core
from common import HERE, Log, Stats, kernel_log_reason, private_kernel, stop_process
from kos_plugins_http import FactoryFailed

TINY = b"0123456789"  # the 10-byte file every first Get fetches
PACED_GAP_S = 0.03  # the pause before each request of the paced series
FIRST_CALL_TARGET_MS = 2.0  # (a): the first call a new forked child answers
FLOOR_RATIO_TARGET = 1.5  # (a) against the fork floor measured beside it
MAX_SIZE = 200_000_000  # max-size for the http part's 50 MB body
FRESH_SCRIPT = HERE / "fresh_rpyc_child.py"

MakeRequester = Callable[[], Any]


@dataclass(frozen=True)
class ChildSettings:
    """How many children to make per case."""

    warmup: int
    iterations: int


CHILDREN_FULL = ChildSettings(warmup=10, iterations=200)
CHILDREN_QUICK = ChildSettings(warmup=5, iterations=50)


@dataclass
class LatencyCase:
    """One series of child start-ups (times in the stats are per child)."""

    key: str
    label: str
    stats: Stats
    target_ms: float | None = None
    passed: bool | None = None


@dataclass
class ChildrenResult:
    """Every factory-children case of one run, and what the reader should know."""

    cases: list[LatencyCase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: median of (a) ÷ median of the fork floor, and whether it met its target
    floor_ratio: float | None = None
    floor_ratio_passed: bool | None = None

    def missed(self) -> list[str]:
        """The targets of this part that the run missed."""
        missed = [c.label for c in self.cases if c.passed is False]
        if self.floor_ratio_passed is False:
            missed.append(f"fork ÷ fork floor <= {FLOOR_RATIO_TARGET:g}")
        return missed


def http_setup(child_start: str) -> str:
    """The setup file of a kernel that runs only the http plugin, loopback allowed."""
    return (
        "[http]\n"
        "allow-hosts: 127.0.0.1\n"
        f"max-size: {MAX_SIZE}\n"
        f"child-start: {child_start}\n"
        "[bitbucket]\nrun-at-boot: no\n"
        "[simpleio]\nrun-at-boot: no\n"
    )


# --------------------------------------------------------------------------- timing


def _one_child(make: MakeRequester, tiny_url: str, first_get: bool) -> int:
    """Make one requester and time it until its first call is answered (ns).

    Without ``first_get`` that call is ``Close()``: connecting to the new child and one
    round trip, no network work. With ``first_get`` it is a Get of the tiny file (a new
    HTTP connection from the child too); the body is checked and the requester closed
    untimed.
    """
    clock = time.perf_counter_ns
    start = clock()
    requester = make()
    if not first_get:
        requester.Close()
        return clock() - start
    body = requester.Get(tiny_url)
    elapsed = clock() - start
    try:
        if body.read() != TINY:
            raise RuntimeError("the requester returned the wrong body for the tiny file")
    finally:
        requester.Close()
    return elapsed


def one_fork_floor() -> int:
    """The floor of a forked child (ns): this process forks a child that answers one
    request over a socket pair; timed from the socket pair until the answer is read
    (the child is reaped untimed).
    """
    clock = time.perf_counter_ns
    start = clock()
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: answer, then exit at once
        status = 1
        try:
            ours.close()
            theirs.sendall(theirs.recv(64))
            status = 0
        finally:
            os._exit(status)
    theirs.close()
    try:
        ours.sendall(b"ping")
        reply = ours.recv(64)
        elapsed = clock() - start
    finally:
        ours.close()
        os.waitpid(pid, 0)
    if reply != b"ping":
        raise RuntimeError(f"the forked child answered {reply!r}")
    return elapsed


def time_children(
    make: MakeRequester,
    tiny_url: str,
    settings: ChildSettings,
    floor: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Samples (ns) of ``make()`` alone and of ``make()`` + first Get, taken in
    alternation (which goes first alternates too) after a warm-up of both. With
    ``floor``, a sample of :func:`one_fork_floor` is taken between each pair and
    appended to it, so that the floor shares the machine's state with the samples.
    """
    for _ in range(settings.warmup):
        _one_child(make, tiny_url, False)
        _one_child(make, tiny_url, True)
        if floor is not None:
            one_fork_floor()
    alone: list[int] = []
    with_get: list[int] = []
    for i in range(settings.iterations):
        if i % 2 == 0:
            alone.append(_one_child(make, tiny_url, False))
            with_get.append(_one_child(make, tiny_url, True))
        else:
            with_get.append(_one_child(make, tiny_url, True))
            alone.append(_one_child(make, tiny_url, False))
        if floor is not None:
            floor.append(one_fork_floor())
    return alone, with_get


def time_paced(make: MakeRequester, tiny_url: str, count: int) -> list[int]:
    """Samples (ns) of ``make()`` + ``Close()`` when requests come one at a time: each
    after a pause of ``PACED_GAP_S``, so the factory is idle and its spare warmed up.
    """
    samples: list[int] = []
    for _ in range(count):
        time.sleep(PACED_GAP_S)  # pacing, not synchronisation: nothing is waited for
        samples.append(_one_child(make, tiny_url, False))
    return samples


def time_fresh_rpyc(directory: Path, count: int, warmup: int) -> list[int]:
    """Samples (ns) from ``Popen`` of a fresh interpreter that imports rpyc until its
    first call is answered.
    """
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(warmup + count):
        path = directory / f"fresh{i}.sock"
        start = clock()
        process = subprocess.Popen(
            [sys.executable, str(FRESH_SCRIPT), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the fresh rpyc child exited with {process.wait()}")
            conn = unix_connect(str(path))
            try:
                conn.root.Ping()
                elapsed = clock() - start
            finally:
                conn.close()
        finally:
            stop_process(process)
        if i >= warmup:
            samples.append(elapsed)
    return samples


def time_bare_interpreter(count: int, warmup: int) -> list[int]:
    """Samples (ns) of ``python -c pass`` from start to exit."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(warmup + count):
        start = clock()
        subprocess.run([sys.executable, "-c", "pass"], check=True, stdin=subprocess.DEVNULL)
        elapsed = clock() - start
        if i >= warmup:
            samples.append(elapsed)
    return samples


# --------------------------------------------------------------------------- the part


def _add_pair(
    result: ChildrenResult,
    mode: str,
    samples: tuple[list[int], list[int]],
    target_ms: float | None,
) -> None:
    first_call, with_get = samples
    stats = Stats.of(first_call)
    passed = None if target_ms is None else stats.median_ms <= target_ms
    result.cases.append(
        LatencyCase(
            f"{mode}_request",
            f"{mode}: GetHTTPRequester() + Close() answered",
            stats,
            target_ms,
            passed,
        )
    )
    result.cases.append(
        LatencyCase(
            f"{mode}_first_get", f"{mode}: GetHTTPRequester() + first Get", Stats.of(with_get)
        )
    )


def measure_fork(
    tiny_url: str, settings: ChildSettings, log: Log
) -> tuple[tuple[list[int], list[int]], list[int], list[int]]:
    """(a) and (b): the http plugin with its fork server (``child-start: fork``), back
    to back, with the fork floor between them; then (a) again, paced.
    """
    log("starting a kernel with the http plugin (child-start: fork) ...")
    with private_kernel("f", http_setup("fork"), "http", ["http"]), kos_core.connect() as kos:
        factory = kos.lookup("http")
        log(
            f"timing {settings.iterations} forked requesters (and as many first Gets"
            " and fork floors) ..."
        )
        floor: list[int] = []
        back_to_back = time_children(factory.GetHTTPRequester, tiny_url, settings, floor)
        paced_count = settings.iterations // 2
        log(f"timing {paced_count} forked requesters, one every {PACED_GAP_S * 1000:g} ms ...")
        paced = time_paced(factory.GetHTTPRequester, tiny_url, paced_count)
        return back_to_back, floor, paced


def measure_exec(
    tiny_url: str, settings: ChildSettings, log: Log
) -> tuple[tuple[list[int], list[int]] | None, str]:
    """(c): the http plugin with ``child-start: exec``: the samples, or ``None`` and why
    the plugin could not make an exec'd requester.
    """
    log("starting a kernel with the http plugin (child-start: exec) ...")
    with (
        private_kernel("e", http_setup("exec"), "http", ["http"]) as kernel,
        kos_core.connect() as kos,
    ):
        factory = kos.lookup("http")
        try:
            _one_child(factory.GetHTTPRequester, tiny_url, True)
        except FactoryFailed:
            reason = kernel_log_reason(kernel, "http")
            log(f"child-start: exec cannot make a requester: {reason}")
            return None, reason
        log(f"timing {settings.iterations} exec'd requesters (and as many first Gets) ...")
        return time_children(factory.GetHTTPRequester, tiny_url, settings), ""


def run_children(tiny_url: str, settings: ChildSettings, log: Log) -> ChildrenResult:
    """Every factory-children case, in this order: fork, exec, the two baselines."""
    result = ChildrenResult()
    fork, floor, paced = measure_fork(tiny_url, settings, log)
    _add_pair(result, "fork", fork, FIRST_CALL_TARGET_MS)
    result.cases.append(
        LatencyCase(
            "fork_paced",
            f"fork: ... + Close(), paced (one per {PACED_GAP_S * 1000:g} ms)",
            Stats.of(paced),
        )
    )
    floor_stats = Stats.of(floor)
    result.cases.append(
        LatencyCase("fork_floor", "fork floor: os.fork() + one answer, socketpair", floor_stats)
    )
    result.floor_ratio = Stats.of(fork[0]).median_us / floor_stats.median_us
    result.floor_ratio_passed = result.floor_ratio <= FLOOR_RATIO_TARGET
    exec_samples, reason = measure_exec(tiny_url, settings, log)
    if exec_samples is not None:
        _add_pair(result, "exec", exec_samples, None)
    else:
        result.notes.append(f"exec: not measured, child-start: exec made no requester ({reason})")
    log(f"timing {settings.iterations} fresh interpreters that import rpyc and answer a call ...")
    with tempfile.TemporaryDirectory(prefix="kosb-") as directory:
        fresh = time_fresh_rpyc(Path(directory), settings.iterations, settings.warmup)
    result.cases.append(
        LatencyCase("fresh_rpyc", "fresh python + import rpyc, one call", Stats.of(fresh))
    )
    log(f"timing {settings.iterations} bare interpreters (python -c pass) ...")
    bare = time_bare_interpreter(settings.iterations, settings.warmup)
    result.cases.append(
        LatencyCase("bare_python", "python -c pass (start to exit)", Stats.of(bare))
    )
    return result


def format_children(result: ChildrenResult) -> list[str]:
    """The table of the factory-children part."""
    reference = next(c for c in result.cases if c.key == "fork_first_get").stats.median_us
    lines = [
        "factory children: from asking for a child to its first answered call;"
        " times in ms per child",
        "",
        f"{'case':<46}{'median':>9}{'p90':>9}{'p99':>9}{'n':>5}{'x (b)':>8}{'target':>9}  result",
    ]
    for c in result.cases:
        target = f"<= {c.target_ms:g}" if c.target_ms is not None else ""
        verdict = "" if c.passed is None else ("PASS" if c.passed else "MISS")
        lines.append(
            f"{c.label:<46}{c.stats.median_ms:>9.2f}{c.stats.p90_ms:>9.2f}{c.stats.p99_ms:>9.2f}"
            f"{c.stats.calls:>5}{c.stats.median_us / reference:>8.1f}{target:>9}"
            f"  {verdict}".rstrip()
        )
    if result.floor_ratio is not None:
        verdict = "PASS" if result.floor_ratio_passed else "MISS"
        lines += [
            "",
            f"fork (a) / fork floor: {result.floor_ratio:.2f}"
            f"  (target <= {FLOOR_RATIO_TARGET:g})  {verdict}",
        ]
    for note in result.notes:
        lines += textwrap.wrap(note, 92, initial_indent="  ", subsequent_indent="    ")
    return lines
