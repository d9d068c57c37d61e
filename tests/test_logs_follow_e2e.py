"""A plugin's log on a real kernel: rotated at the setup file's ``log-max-bytes`` keeping
``log-backups`` old files, and followed by ``kos logs -f`` across those rotations.

The plugin is a script that prints a numbered line every few milliseconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import StartKernel
from kos_core.testing import KosEnv, wait_for
from kos_helpers import CLI, kill_group, kos_environ

TICKER = """\
import itertools, time
for n in itertools.count():
    print(f"tick {n} " + "x" * 40, flush=True)
    time.sleep(0.01)
"""
MAX_BYTES = 2000
BACKUPS = 2
TICK = re.compile(r" tick (\d+) x+$")


def ticks(text: str) -> list[int]:
    """The tick numbers of the log lines in ``text``, in order."""
    return [int(m.group(1)) for line in text.splitlines() if (m := TICK.search(line))]


@pytest.fixture
def ticker(kos_env: KosEnv, start_kernel: StartKernel) -> Path:
    """A kernel running the ticker plugin with a small rotating log; its log file."""
    (kos_env.config_dir / "ticker.py").write_text(TICKER)
    kos_env.write_setup(
        f"[ticker]\nfile: ticker.py\nregister-timeout: 0\n"
        f"log-max-bytes: {MAX_BYTES}\nlog-backups: {BACKUPS}\n"
    )
    start_kernel()  # stopped after the test
    log = kos_env.state_dir / kos_env.kernel / "logs" / "ticker.log"
    wait_for(lambda: ticks(log.read_text()), 15, "the ticker's first line")
    return log


def test_a_plugins_log_is_rotated_at_its_size_limit(ticker: Path) -> None:
    backups = [ticker.with_name(f"ticker.log.{i}") for i in range(1, BACKUPS + 1)]
    # Enough lines for more rotations than there are backups to keep.
    wait_for(lambda: max(ticks(ticker.read_text()), default=0) > 150, 20, "150 ticks")
    texts = [p.read_text() for p in (backups[1], backups[0], ticker)]  # oldest first
    assert not ticker.with_name(f"ticker.log.{BACKUPS + 1}").exists()
    for path in (*backups, ticker):
        assert os.stat(path).st_mode & 0o777 == 0o600, path
        assert path.stat().st_size <= MAX_BYTES, path
    numbers = [ticks(text) for text in texts]
    assert all(numbers), texts
    assert numbers[0][0] > 0  # the first lines were rotated away for good
    joined = [n for part in numbers for n in part]
    # each older file ends where the next one starts: no line lost or repeated
    assert joined == list(range(joined[0], joined[0] + len(joined))), joined


def test_kos_logs_follow_prints_new_lines_across_rotations(
    kos_env: KosEnv, ticker: Path, tmp_path: Path
) -> None:
    out_path = tmp_path / "follow.out"
    with out_path.open("wb") as out:
        follow = subprocess.Popen(
            [*CLI, "logs", "-f", "--lines", "3", "ticker"],
            env=kos_environ(kos_env),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    try:
        first = wait_for(lambda: ticks(out_path.read_text())[:1], 15, "the first lines")[0]
        # Well past a few rotations (about 26 lines a file): still following.
        wait_for(
            lambda: max(ticks(out_path.read_text())) > first + 150, 20, "lines after rotations"
        )
        assert ticks(ticker.read_text())[0] > first  # the file it started on was rotated
        seen = ticks(out_path.read_text())
        assert seen == sorted(set(seen)), "lines out of order or repeated"
        follow.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        _, err = follow.communicate(timeout=10)
        assert follow.returncode == 0, err
        assert err == b""
    finally:
        kill_group(follow.pid)
        follow.wait()
