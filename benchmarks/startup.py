"""Start-up: how long a new process takes to do one small thing with kos, against Pyro5.

Usage::

    python benchmarks/startup.py [--runs N] [--quick] [--json PATH] [--check]

(also the ``startup`` part of ``run.py``). It starts a private kernel with the bundled
bitbucket plugin and a Pyro5 daemon (``pyro_server.py``: a dict-backed object on a Unix
socket), then times, from ``Popen`` to exit, in interleaved rounds (each round runs
every command once, in an order that rotates from round to round; the first rounds
warm up and are not counted, and the processes may cache bytecode as installed
distributions do):

* ``python -c pass`` — an interpreter that does nothing, for scale;
* ``python -c "import kos_core"``;
* ``kos --help`` and ``kos ls`` (the installed ``kos`` script);
* a new kos client: ``import kos_core; kos = kos_core.connect();
  bb = kos.lookup("bitbucket"); bb.Get("k")``;
* a new Pyro5 client: ``import Pyro5.api; Pyro5.api.Proxy(uri).get("k")``.

Targets: ``kos --help`` and ``kos ls`` each at most 5.5 times ``python -c pass``
(60 ms on a machine where it takes 11 ms), and the new kos client at most 1.0 times
the new Pyro5 client. Pyro5 is a benchmark-only dependency (``pip install Pyro5``);
without it the Pyro5 row is left out with a note. See ``README.md`` beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import kos_core
from common import HERE, Log, helper_process, private_kernel

PYRO_SCRIPT = HERE / "pyro_server.py"
SETUP = "[bitbucket]\n[http]\nrun-at-boot: no\n[simpleio]\nrun-at-boot: no\n"
CLI_TARGET = 5.5  # kos --help, kos ls: at most this many times `python -c pass`
CLIENT_TARGET = 1.0  # a new kos client: at most this many times a new Pyro5 client
KEY, VALUE = "k", "v"

KOS_CLIENT = (
    "import kos_core; kos = kos_core.connect(); bb = kos.lookup('bitbucket');"
    f" assert bb.Get({KEY!r}) == {VALUE.encode()!r}"
)
PYRO_CLIENT = (
    f"import sys, Pyro5.api; assert Pyro5.api.Proxy(sys.argv[1]).get({KEY!r}) == {VALUE!r}"
)


@dataclass(frozen=True)
class StartupSettings:
    """How many rounds to run (each runs every command once)."""

    warmup: int
    runs: int


STARTUP_FULL = StartupSettings(warmup=3, runs=40)
STARTUP_QUICK = StartupSettings(warmup=2, runs=12)


@dataclass
class Spread:
    """Start-to-exit times of one command (ms)."""

    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Spread:
        ordered = sorted(samples_ns)
        p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8]
        return cls(
            runs=len(ordered),
            median_ms=statistics.median(ordered) / 1e6,
            p90_ms=p90 / 1e6,
            mean_ms=statistics.fmean(ordered) / 1e6,
            max_ms=ordered[-1] / 1e6,
        )


@dataclass
class StartupCase:
    """One command, its times, and its target (a ratio to another case's median)."""

    key: str
    label: str
    spread: Spread
    cpu: Spread  # processor time (user + system): what a busy machine disturbs least
    target: float | None = None  # the most ``ratio`` may be
    against: str = ""  # the key of the case the target compares with
    ratio: float | None = None
    passed: bool | None = None


@dataclass
class StartupResult:
    """Every start-up case of one run, and what the reader should know."""

    cases: list[StartupCase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def missed(self) -> list[str]:
        """The labels of the cases that missed their target."""
        return [c.label for c in self.cases if c.passed is False]


# (key, label, target, against)
CASES = (
    ("pass", "python -c pass", None, ""),
    ("import", "python -c 'import kos_core'", None, ""),
    ("help", "kos --help", CLI_TARGET, "pass"),
    ("ls", "kos ls", CLI_TARGET, "pass"),
    ("kos", "new kos client: connect, lookup, Get", CLIENT_TARGET, "pyro"),
    ("pyro", "new Pyro5 client: Proxy(uri).get", None, ""),
)


def kos_script() -> str:
    """The installed ``kos`` command beside this interpreter (else on ``PATH``)."""
    found = shutil.which("kos", path=str(Path(sys.executable).parent)) or shutil.which("kos")
    if found is None:
        raise RuntimeError("no `kos` command found: install kos-core")
    return found


def commands(pyro_uri: str | None) -> dict[str, list[str]]:
    """The command line of each case (the Pyro5 one only with a daemon's URI)."""
    python, kos = sys.executable, kos_script()
    found = {
        "pass": [python, "-c", "pass"],
        "import": [python, "-c", "import kos_core"],
        "help": [kos, "--help"],
        "ls": [kos, "ls"],
        "kos": [python, "-c", KOS_CLIENT],
    }
    if pyro_uri is not None:
        found["pyro"] = [python, "-c", PYRO_CLIENT, pyro_uri]
    return found


def child_environ() -> dict[str, str]:
    """This process's environment, less ``PYTHONDONTWRITEBYTECODE``: the timed processes
    use cached bytecode (written by the warm-up rounds), as an installed distribution
    does, instead of compiling kos's modules anew every time.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Run ``command`` to its end: its duration and the processor time it used (user
    and system), in ns. Raises if it fails.
    """
    start = time.perf_counter_ns()
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter_ns() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        raise RuntimeError(f"{command} exited with {process.returncode}: {again.stderr}")
    return elapsed, round((usage.ru_utime + usage.ru_stime) * 1e9)


def time_rounds(
    cmds: dict[str, list[str]], settings: StartupSettings, log: Log
) -> dict[str, list[tuple[int, int]]]:
    """Samples (duration, processor time; ns) of every command, taken in rounds whose
    order rotates.
    """
    keys, env = list(cmds), child_environ()
    samples: dict[str, list[tuple[int, int]]] = {key: [] for key in keys}
    for n in range(settings.warmup + settings.runs):
        if n == settings.warmup:
            log(f"timing {settings.runs} rounds of {len(keys)} commands ...")
        shift = n % len(keys)
        for key in keys[shift:] + keys[:shift]:
            elapsed = run_once(cmds[key], env)
            if n >= settings.warmup:
                samples[key].append(elapsed)
    return samples


@contextlib.contextmanager
def pyro_daemon(log: Log, notes: list[str]) -> Iterator[str | None]:
    """The Pyro5 daemon process holding ``KEY``; yields its URI (``None`` without Pyro5)."""
    if importlib.util.find_spec("Pyro5") is None:
        notes.append("Pyro5 is not installed (pip install Pyro5): its row is left out.")
        yield None
        return
    import Pyro5.api

    log("starting the Pyro5 daemon ...")
    with tempfile.TemporaryDirectory(prefix="kosb-pyro-") as directory:
        command = [sys.executable, str(PYRO_SCRIPT), str(Path(directory) / "pyro.sock")]
        with helper_process(command, "the Pyro5 daemon") as info:
            uri = str(info["uri"])
            with Pyro5.api.Proxy(uri) as proxy:
                proxy.set(KEY, VALUE)
            yield uri


def run_startup(settings: StartupSettings, log: Log) -> StartupResult:
    """Start a kernel and a Pyro5 daemon, time every command, stop both."""
    result = StartupResult()
    with contextlib.ExitStack() as stack:
        log("starting the kernel with the bitbucket plugin ...")
        stack.enter_context(private_kernel("s", SETUP, "bitbucket", ["bitbucket"]))
        with kos_core.connect() as kos:
            kos.lookup("bitbucket").Set(KEY, VALUE.encode())
        uri = stack.enter_context(pyro_daemon(log, result.notes))
        samples = time_rounds(commands(uri), settings, log)
    spreads = {key: Spread.of([wall for wall, _ in values]) for key, values in samples.items()}
    cpu = {key: Spread.of([used for _, used in values]) for key, values in samples.items()}
    for key, label, target, against in CASES:
        if key not in spreads:
            continue
        case = StartupCase(key, label, spreads[key], cpu[key])
        if target is not None and against in spreads:
            case.target, case.against = target, against
            case.ratio = case.spread.median_ms / spreads[against].median_ms
            case.passed = case.ratio <= target
        result.cases.append(case)
    return result


def format_startup(result: StartupResult) -> list[str]:
    """The table of the start-up part."""
    first = next(c for c in result.cases if c.key == "pass")
    base, cpu_base = first.spread.median_ms, first.cpu.median_ms
    lines = [
        "start-up: a new process, from Popen to exit; times in ms"
        f" ({first.spread.runs} interleaved runs each; cpu: user + system time used)",
        "",
        f"{'command':<40}{'median':>8}{'p90':>8}{'x pass':>8}{'cpu':>7}{'x pass':>8}"
        f"  {'target':<22}result",
    ]
    for c in result.cases:
        target = ""
        if c.target is not None and c.ratio is not None:
            target = f"{c.ratio:.2f} <= {c.target:g} x {c.against}"
        verdict = "" if c.passed is None else ("PASS" if c.passed else "MISS")
        lines.append(
            f"{c.label:<40}{c.spread.median_ms:>8.1f}{c.spread.p90_ms:>8.1f}"
            f"{c.spread.median_ms / base:>8.2f}{c.cpu.median_ms:>7.1f}"
            f"{c.cpu.median_ms / cpu_base:>8.2f}  {target:<22}{verdict}".rstrip()
        )
    lines += [f"  {note}" for note in result.notes]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time new kos processes (CLI, client) against Pyro5 on this machine."
    )
    parser.add_argument("--runs", type=int, metavar="N", help="rounds to time (default 40)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if a target is missed"
    )
    args = parser.parse_args(argv)
    settings = STARTUP_QUICK if args.quick else STARTUP_FULL
    if args.runs is not None:
        settings = StartupSettings(warmup=settings.warmup, runs=max(2, args.runs))
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = run_startup(settings, log)
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    missed = result.missed()
    print("\n".join(format_startup(result)))
    print(f"\ntargets missed: {', '.join(missed)}" if missed else "\nall targets met")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
