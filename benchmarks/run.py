"""Benchmarks of kos on this machine, each part against a baseline in the same run.

Usage::

    python benchmarks/run.py [--only PART ...] [--quick] [--json PATH] [--check]

Parts (all by default; ``--only`` picks some, repeated or comma-separated):

``bitbucket``
    A real kernel with the bitbucket plugin against a plain-rpyc server process
    (``plain_rpyc_server.py``) serving the same ``BitBucket`` implementation class:
    ``Set`` and ``Get`` of 32 B, 1 KiB and 100 KiB values, one call at a time. kos is
    compared with plain rpyc tuned the way kos is (Unix socket, frame compression off,
    method references held); plain rpyc with its defaults (Unix socket and loopback
    TCP) is measured too, for context only.
``children``
    Factory children through the http plugin: ``GetHTTPRequester()`` alone and with
    its first ``Get`` of a 10-byte file, with the fork server and with
    ``child-start: exec``, next to a fresh interpreter that imports rpyc and answers
    one call (``children.py``).
``http``
    A 50 MB body read through a Requester against urllib3 in this process
    (``http_read.py``).
``simpleio``
    A simpleio window on a private Xvfb: ``GetNewSimpleIO()`` and its first ``write``
    (``windows.py``).
``startup``
    New processes from start to exit: ``python -c pass``, ``import kos_core``,
    ``kos --help``, ``kos ls`` and a new client's lookup and call, against a new Pyro5
    client's call (``startup.py``, also a script of its own).

Every process it starts is stopped before it exits, also on Ctrl-C or an error.
See ``README.md`` beside this file for the method and the latest results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import rpyc
from rpyc.utils.factory import unix_connect

import kos_core
from children import (
    CHILDREN_FULL,
    CHILDREN_QUICK,
    TINY,
    ChildrenResult,
    format_children,
    run_children,
)
from common import Call, Log, Stats, file_server, helper_process, private_kernel, time_calls
from http_read import BIG_SIZE, READ_FULL, READ_QUICK, ReadResult, format_http_read, run_http_read
from startup import STARTUP_FULL, STARTUP_QUICK, StartupResult, format_startup, run_startup
from windows import WINDOWS_FULL, WINDOWS_QUICK, WindowResult, format_windows, run_windows

PARTS = ("bitbucket", "children", "http", "simpleio", "startup")
SIZES = (32, 1024, 100 * 1024)
SMALL_TARGET = 1.10
LARGE_TARGET = 1.20
SERVER_SCRIPT = Path(__file__).resolve().with_name("plain_rpyc_server.py")
SETUP = "[bitbucket]\nargs: --capacity 10000000\n"


@dataclass(frozen=True)
class Settings:
    """How many calls to make."""

    warmup: int
    small_calls: int
    large_calls: int
    batch_small: int
    batch_large: int
    tcp_calls: int

    def calls(self, size: int) -> int:
        return self.large_calls if size > 1024 else self.small_calls

    def batch(self, size: int) -> int:
        return self.batch_large if size > 1024 else self.batch_small


FULL = Settings(
    warmup=200, small_calls=2000, large_calls=500, batch_small=20, batch_large=10, tcp_calls=40
)
QUICK = Settings(
    warmup=50, small_calls=300, large_calls=100, batch_small=20, batch_large=10, tcp_calls=10
)


@dataclass
class CaseResult:
    """kos against tuned plain rpyc for one operation and value size."""

    case: str
    op: str
    size: int
    kos: Stats
    rpyc: Stats
    ratio: float
    target: float
    passed: bool


@dataclass
class ContextResult:
    """Plain rpyc with its defaults, for context."""

    case: str
    transport: str
    op: str
    size: int
    stats: Stats
    times_kos: float  # median against kos's median for the same case


@dataclass
class Report:
    """Everything one run measured (a part that was not run stays empty)."""

    date: str
    machine: dict[str, str | int | None]
    settings: dict[str, int]  # the bitbucket part's
    parts: list[str] = field(default_factory=list)
    part_settings: dict[str, dict[str, int]] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    context: list[ContextResult] = field(default_factory=list)
    children: ChildrenResult | None = None
    http_read: ReadResult | None = None
    simpleio: WindowResult | None = None
    startup: StartupResult | None = None

    def missed(self) -> list[str]:
        """The targets this run missed."""
        missed = [c.case for c in self.cases if not c.passed]
        if self.children is not None:
            missed += self.children.missed()
        if self.http_read is not None and not self.http_read.passed:
            missed.append(f"http read {self.http_read.size // 1_000_000} MB")
        if self.startup is not None:
            missed += self.startup.missed()
        return missed


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def interleaved(
    first: tuple[Call, tuple[Any, ...]],
    second: tuple[Call, tuple[Any, ...]],
    settings: Settings,
    size: int,
) -> tuple[list[int], list[int]]:
    """Warm both up, then time them in alternating batches (which one goes first
    alternates too), so drift in machine load spreads over both series.
    """
    (fn_a, args_a), (fn_b, args_b) = first, second
    for _ in range(settings.warmup):
        fn_a(*args_a)
        fn_b(*args_b)
    total, batch = settings.calls(size), settings.batch(size)
    samples_a: list[int] = []
    samples_b: list[int] = []
    done = 0
    turn = 0
    while done < total:
        n = min(batch, total - done)
        if turn % 2 == 0:
            time_calls(fn_a, args_a, n, samples_a)
            time_calls(fn_b, args_b, n, samples_b)
        else:
            time_calls(fn_b, args_b, n, samples_b)
            time_calls(fn_a, args_a, n, samples_a)
        done += n
        turn += 1
    return samples_a, samples_b


def measure(fn: Call, args: tuple[Any, ...], warmup: int, count: int) -> Stats:
    """Warm up, then time ``count`` calls of one series alone."""
    for _ in range(warmup):
        fn(*args)
    samples: list[int] = []
    time_calls(fn, args, count, samples)
    return Stats.of(samples)


def payload(size: int) -> bytes:
    """Incompressible bytes, so rpyc's default compression is seen at its real cost."""
    return os.urandom(size)


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def plain_server() -> Iterator[dict[str, Any]]:
    """The plain-rpyc server process; yields its addresses."""
    with tempfile.TemporaryDirectory(prefix="kosb-") as directory:
        command = [sys.executable, str(SERVER_SCRIPT), directory]
        with helper_process(command, "the plain rpyc server") as addresses:
            yield addresses


# --------------------------------------------------------------------------- the run


def run_bitbucket(settings: Settings, report: Report, log: Log) -> None:
    """kos against plain rpyc: fills ``report.cases`` and ``report.context``."""
    with contextlib.ExitStack() as stack:
        log("starting the kernel with the bitbucket plugin ...")
        stack.enter_context(private_kernel("b", SETUP, "bitbucket", ["bitbucket"]))
        log("starting the plain rpyc server ...")
        addresses = stack.enter_context(plain_server())

        kos = stack.enter_context(kos_core.connect())
        bb = kos.lookup("bitbucket")

        tuned = unix_connect(addresses["tuned"])
        stack.callback(tuned.close)
        tuned._channel.compress = False
        set_, get = tuned.root.Set, tuned.root.Get  # method references, held

        default = unix_connect(addresses["default"])
        stack.callback(default.close)
        default_tcp = rpyc.connect("127.0.0.1", addresses["default_tcp"])
        stack.callback(default_tcp.close)

        def default_set(name: str, data: bytes) -> None:
            default.root.Set(name, data)

        def default_get(name: str) -> bytes:
            return bytes(default.root.Get(name))

        def tcp_set(name: str, data: bytes) -> None:
            default_tcp.root.Set(name, data)

        def tcp_get(name: str) -> bytes:
            return bytes(default_tcp.root.Get(name))

        for size in SIZES:
            name, data = f"k{size}", payload(size)
            target = LARGE_TARGET if size > 1024 else SMALL_TARGET
            for op in ("Set", "Get"):
                case = f"{op} {size_label(size)}"
                log(f"timing {case} ...")
                if op == "Set":
                    kos_call: tuple[Call, tuple[Any, ...]] = (bb.Set, (name, data))
                    rpyc_call: tuple[Call, tuple[Any, ...]] = (set_, (name, data))
                else:
                    if bb.Get(name) != data or get(name) != data:
                        raise RuntimeError(f"{case}: a bucket returned the wrong value")
                    kos_call, rpyc_call = (bb.Get, (name,)), (get, (name,))
                kos_ns, rpyc_ns = interleaved(kos_call, rpyc_call, settings, size)
                kos_stats, rpyc_stats = Stats.of(kos_ns), Stats.of(rpyc_ns)
                ratio = kos_stats.median_us / rpyc_stats.median_us
                report.cases.append(
                    CaseResult(
                        case, op, size, kos_stats, rpyc_stats, ratio, target, ratio <= target
                    )
                )

        kos_median = {(c.op, c.size): c.kos.median_us for c in report.cases}
        for size in SIZES:
            name, data = f"k{size}", payload(size)
            default_set(name, data)
            for op, fn, args in (
                ("Set", default_set, (name, data)),
                ("Get", default_get, (name,)),
            ):
                case = f"{op} {size_label(size)}"
                log(f"timing {case} on plain rpyc defaults (unix) ...")
                stats = measure(fn, args, settings.warmup, settings.calls(size))
                report.context.append(
                    ContextResult(
                        case, "unix", op, size, stats, stats.median_us / kos_median[op, size]
                    )
                )
        size = SIZES[-1]
        name, data = f"k{size}", payload(size)
        tcp_set(name, data)
        for op, fn, args in (("Set", tcp_set, (name, data)), ("Get", tcp_get, (name,))):
            case = f"{op} {size_label(size)}"
            log(f"timing {case} on plain rpyc defaults (loopback TCP) ...")
            stats = measure(fn, args, 3, settings.tcp_calls)
            report.context.append(
                ContextResult(case, "tcp", op, size, stats, stats.median_us / kos_median[op, size])
            )


def run(parts: Sequence[str], quick: bool, log: Log) -> Report:
    """Run the chosen parts, in the order of ``PARTS``."""
    settings = QUICK if quick else FULL
    children = CHILDREN_QUICK if quick else CHILDREN_FULL
    reads = READ_QUICK if quick else READ_FULL
    windows = WINDOWS_QUICK if quick else WINDOWS_FULL
    startup = STARTUP_QUICK if quick else STARTUP_FULL
    report = Report(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        machine={
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rpyc": rpyc.__version__,
            "urllib3": importlib.metadata.version("urllib3"),
            "kos_core": kos_core.__version__,
        },
        settings=asdict(settings),
        parts=[part for part in PARTS if part in parts],
        part_settings={
            "children": asdict(children),
            "http": asdict(reads),
            "simpleio": asdict(windows),
            "startup": asdict(startup),
        },
    )
    if "bitbucket" in parts:
        run_bitbucket(settings, report, log)
    if "children" in parts or "http" in parts:
        files = {"tiny": TINY}
        if "http" in parts:
            files["big"] = os.urandom(BIG_SIZE)
        log("starting the HTTP file server ...")
        with file_server(files) as base_url:
            if "children" in parts:
                report.children = run_children(base_url + "tiny", children, log)
            if "http" in parts:
                report.http_read = run_http_read(base_url, files["big"], reads, log)
    if "simpleio" in parts:
        report.simpleio = run_windows(windows, log)
    if "startup" in parts:
        report.startup = run_startup(startup, log)
    return report


# --------------------------------------------------------------------------- output


def format_bitbucket(report: Report) -> list[str]:
    """The tables of the bitbucket part."""
    lines = [
        "kos against plain rpyc with the same tuning"
        " (Unix socket, compression off, method references held); times in µs",
        "",
        f"{'case':<14}{'kos median':>11}{'kos p99':>10}{'rpyc median':>13}{'rpyc p99':>10}"
        f"{'ratio':>8}{'target':>8}  result",
    ]
    for c in report.cases:
        lines.append(
            f"{c.case:<14}{c.kos.median_us:>11.1f}{c.kos.p99_us:>10.1f}"
            f"{c.rpyc.median_us:>13.1f}{c.rpyc.p99_us:>10.1f}"
            f"{c.ratio:>8.3f}{'<= ' + format(c.target, '.2f'):>8}  {'PASS' if c.passed else 'MISS'}"
        )
    lines += [
        "",
        "for context: plain rpyc with its defaults (compression on, conn.root.X(...) per call)",
        "",
        f"{'case':<14}{'transport':<16}{'median':>10}{'p99':>10}{'calls':>7}{'x kos':>8}",
    ]
    for x in report.context:
        transport = "Unix socket" if x.transport == "unix" else "loopback TCP"
        lines.append(
            f"{x.case:<14}{transport:<16}{x.stats.median_us:>10.1f}{x.stats.p99_us:>10.1f}"
            f"{x.stats.calls:>7}{x.times_kos:>8.1f}"
        )
    return lines


def format_report(report: Report) -> str:
    """Every table of the run, and the verdict."""
    machine = report.machine
    lines = [
        f"kos benchmarks — {report.date} — {machine['cpus']} CPUs, Python {machine['python']},"
        f" rpyc {machine['rpyc']}, urllib3 {machine['urllib3']} — parts: {' '.join(report.parts)}",
    ]
    sections: list[list[str]] = []
    if "bitbucket" in report.parts:
        sections.append(format_bitbucket(report))
    if report.children is not None:
        sections.append(format_children(report.children))
    if report.http_read is not None:
        sections.append(format_http_read(report.http_read))
    if report.simpleio is not None:
        sections.append(format_windows(report.simpleio))
    if report.startup is not None:
        sections.append(format_startup(report.startup))
    for section in sections:
        lines += ["", *section]
    missed = report.missed()
    lines += ["", f"targets missed: {', '.join(missed)}" if missed else "all targets met"]
    return "\n".join(lines)


def parse_parts(values: Sequence[str] | None) -> list[str]:
    """The parts named by ``--only`` options (each may list several, comma-separated)."""
    if not values:
        return list(PARTS)
    chosen = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = chosen - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(sorted(unknown))} (choose from {', '.join(PARTS)})"
        )
    return [part for part in PARTS if part in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time kos on this machine, each part against a baseline in the same run."
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="PART",
        help=f"run only this part ({', '.join(PARTS)}); repeat or separate with commas",
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if a target is missed"
    )
    args = parser.parse_args(argv)
    try:
        parts = parse_parts(args.only)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        report = run(parts, args.quick, log)
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if args.check and report.missed() else 0


if __name__ == "__main__":
    sys.exit(main())
