"""simpleio: from asking for a window to the first ``write`` answered in it.

Runs a private Xvfb and a real kernel whose simpleio plugin opens its windows there.
There is no target; the numbers say what a client waits for a window. Skipped, with
a note, when ``Xvfb`` is not installed. See ``README.md`` beside this file.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import dataclass, field

import kos_core
from common import Log, Stats, private_kernel, xvfb

SETUP = "[bitbucket]\nrun-at-boot: no\n[http]\nrun-at-boot: no\n"


@dataclass(frozen=True)
class WindowSettings:
    """How many windows to open."""

    warmup: int
    iterations: int


WINDOWS_FULL = WindowSettings(warmup=3, iterations=30)
WINDOWS_QUICK = WindowSettings(warmup=2, iterations=10)


@dataclass
class WindowResult:
    """Window start-ups (stats per window), or why there are none."""

    open_only: Stats | None = None  # GetNewSimpleIO() returned (the child wrote its SBH)
    first_write: Stats | None = None  # ... and the first write("hello\n") answered
    notes: list[str] = field(default_factory=list)


def run_windows(settings: WindowSettings, log: Log) -> WindowResult:
    """Open, write to and close ``settings.iterations`` windows (after a warm-up)."""
    if shutil.which("Xvfb") is None:
        note = "skipped: Xvfb is not installed (the simpleio part needs an X display)"
        log(f"simpleio {note}")
        return WindowResult(notes=[note])
    clock = time.perf_counter_ns
    opened: list[int] = []
    written: list[int] = []
    log("starting Xvfb ...")
    with xvfb() as display:
        log(f"starting a kernel with the simpleio plugin on DISPLAY={display} ...")
        with (
            private_kernel("w", SETUP, "simpleio", ["simpleio"], {"DISPLAY": display}),
            kos_core.connect() as kos,
        ):
            factory = kos.lookup("simpleio")
            log(f"timing {settings.iterations} windows ...")
            for i in range(settings.warmup + settings.iterations):
                start = clock()
                window = factory.GetNewSimpleIO()
                shown = clock()
                window.write("hello\n")
                answered = clock()
                window.close()
                if i >= settings.warmup:
                    opened.append(shown - start)
                    written.append(answered - start)
    return WindowResult(Stats.of(opened), Stats.of(written))


def format_windows(result: WindowResult) -> list[str]:
    """The table of the simpleio part."""
    lines = ["simpleio: a new window and its first write; times in ms per window", ""]
    if result.open_only is not None and result.first_write is not None:
        lines.append(f"{'case':<46}{'median':>9}{'p99':>9}{'n':>5}")
        for label, stats in (
            ("GetNewSimpleIO()", result.open_only),
            ('GetNewSimpleIO() + first write("hello\\n")', result.first_write),
        ):
            lines.append(f"{label:<46}{stats.median_ms:>9.2f}{stats.p99_ms:>9.2f}{stats.calls:>5}")
    for note in result.notes:
        lines += textwrap.wrap(note, 92, initial_indent="  ", subsequent_indent="    ")
    return lines
