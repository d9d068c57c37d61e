"""The supervisor's less travelled paths, on a real kernel with real plugin processes:
``restart: always``, the ``startsecs`` reset of the failure count and backoff, the
SIGKILL after the stop grace, a plugin that cannot even be launched, and a stop while a
plugin waits in backoff.

The plugins are small scripts (``file:`` sections) that append a line to a file each
time they run, so a test counts the runs the kernel made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conftest import StartKernel
from kos_core._kernel.supervisor import STOP_GRACE
from kos_core.testing import KernelProcess, KosEnv, process_ended, wait_for
from kos_helpers import Cli

#: a script that notes its run in RUNS, waits SECONDS, then exits with STATUS
SCRIPT = """\
import os, sys, time
with open({runs!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
time.sleep({seconds})
sys.exit({status})
"""

#: a script that notes its run in RUNS, then ignores SIGTERM and never ends by itself
STUBBORN = """\
import os, signal, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open({runs!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
threading.Event().wait()
"""


def plugin_script(env: KosEnv, name: str, template: str = SCRIPT, **values: Any) -> Path:
    """Write ``<name>.py`` in the config directory; return the file it notes its runs in."""
    runs = env.state_dir / f"{name}.runs"
    (env.config_dir / f"{name}.py").write_text(template.format(runs=str(runs), **values))
    return runs


def runs(path: Path) -> int:
    """How many times the plugin has started so far."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def row_when(kernel: KernelProcess, name: str, state: str, timeout: float = 20.0) -> Any:
    """``name``'s row of the plugin table, once it is in ``state``."""
    return wait_for(
        lambda: (row := kernel.plugin_row(name)) and row[1] == state and row,
        timeout,
        f"plugin {name} to be {state}",
    )


def kernel_log(env: KosEnv) -> str:
    """The kernel's own log file (what ``kos logs --kernel-log`` prints)."""
    return (env.state_dir / env.kernel / "logs" / "kernel.log").read_text()


@pytest.mark.parametrize(
    ("restart", "state", "started"), [("always", "fatal", 3), ("on-failure", "exited", 1)]
)
def test_restart_always_restarts_a_plugin_that_exits_0(
    kos_env: KosEnv, start_kernel: StartKernel, restart: str, state: str, started: int
) -> None:
    ran = plugin_script(kos_env, "quits", seconds=0, status=0)
    kos_env.write_setup(
        f"[quits]\nfile: quits.py\nrestart: {restart}\nstartretries: 2\n"
        "startsecs: 30\nbackoff: 0.1\nbackoff-max: 0.2\n"  # every run counts as quick
    )
    kernel = start_kernel()
    row = row_when(kernel, "quits", state)
    # always: exit 0 is restarted like a crash; quick exits in a row end in fatal
    assert runs(ran) == started
    assert (row[5], row[6]) == ("exit status 0", started - 1)


def test_a_plugin_that_outlives_startsecs_starts_a_new_failure_count(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    ran = plugin_script(kos_env, "flaky", seconds=1.0, status=3)
    quick = plugin_script(kos_env, "quick", seconds=1.0, status=3)
    common = "startretries: 1\nbackoff: 0.1\nbackoff-max: 5\n"
    kos_env.write_setup(
        f"[flaky]\nfile: flaky.py\nstartsecs: 0.2\n{common}\n"
        f"[quick]\nfile: quick.py\nstartsecs: 30\n{common}"
    )
    kernel = start_kernel()
    # quick never stays up 30 s: its second failure in a row (> startretries) is fatal
    row = row_when(kernel, "quick", "fatal")
    assert runs(quick) == 2 and row[5] == "exit status 3"
    # flaky stays up past startsecs each time: every crash is a first failure again
    wait_for(lambda: runs(ran) >= 4, 20, "flaky to be restarted three times")
    row = kernel.plugin_row("flaky")
    assert row is not None and row[1] != "fatal", row
    log = kernel_log(kos_env)
    delays = [line for line in log.splitlines() if "plugin flaky exit status 3; restarting" in line]
    assert len(delays) >= 3, log
    # ...and its backoff starts again from the first delay instead of doubling
    assert all(line.endswith("restarting in 0.1 s") for line in delays), delays


def test_a_plugin_that_ignores_sigterm_is_killed_after_the_stop_grace(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    ran = plugin_script(kos_env, "stubborn", STUBBORN)
    kos_env.write_setup("[stubborn]\nfile: stubborn.py\nregister-timeout: 0\n")
    kernel = start_kernel()
    wait_for(lambda: runs(ran) == 1, 15, "the stubborn plugin to run")
    pid = int(ran.read_text())
    start = time.monotonic()
    result = cli("plugin", "stop", "stubborn")
    took = time.monotonic() - start
    assert result.returncode == 0, str(result)
    assert result.stdout.strip() == "stubborn: stopped"
    assert took >= STOP_GRACE - 0.5, f"stopped after {took:.1f} s, before the grace ended"
    assert process_ended(pid)
    row = row_when(kernel, "stubborn", "stopped")
    assert row[5] == "killed by SIGKILL", row
    assert "plugin stubborn did not stop in time; killing it" in kernel_log(kos_env)
    assert runs(ran) == 1  # stopped, so not restarted


def test_a_plugin_that_cannot_be_launched_becomes_fatal_after_its_retries(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    ran = plugin_script(kos_env, "nostart", seconds=0, status=0)
    # Its working directory cannot be made: a file holds its place, so Popen fails.
    workdir = kos_env.state_dir / kos_env.kernel / "plugins" / "nostart"
    workdir.parent.mkdir(parents=True)
    workdir.write_text("not a directory\n")
    kos_env.write_setup(
        "[nostart]\nfile: nostart.py\nstartretries: 2\nbackoff: 0.1\nbackoff-max: 0.2\n"
    )
    kernel = start_kernel()
    row = row_when(kernel, "nostart", "fatal")
    assert row[5] == "cannot start: Not a directory", row
    assert (row[2], row[6]) == (0, 2)  # no pid; two restarts were tried
    assert runs(ran) == 0
    log = kernel_log(kos_env)
    assert log.count("plugin nostart: cannot start: Not a directory") == 3, log
    assert "plugin nostart failed 3 times in a row" in log
    status = cli("status")
    assert any(line.split()[:2] == ["nostart", "fatal"] for line in status.stdout.splitlines())


def test_stop_during_backoff_cancels_the_restart(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    ran = plugin_script(kos_env, "crashy", seconds=0, status=4)
    kos_env.write_setup("[crashy]\nfile: crashy.py\nbackoff: 2\n")
    kernel = start_kernel()
    row_when(kernel, "crashy", "backoff")
    assert runs(ran) == 1
    result = cli("plugin", "stop", "crashy")
    assert result.returncode == 0, str(result)
    assert result.stdout.strip() == "crashy: stopped"
    # The restart the backoff had planned (2 s after the crash) does not happen.
    with pytest.raises(TimeoutError):
        wait_for(lambda: runs(ran) > 1, 3.0, "a restart")
    row = row_when(kernel, "crashy", "stopped")
    assert row[5] == "exit status 4"
    assert "plugin crashy: stop asked by the operator (it is backoff)" in kernel_log(kos_env)
    result = cli("plugin", "start", "crashy", "--no-wait")
    assert result.returncode == 0, str(result)
    wait_for(lambda: runs(ran) == 2, 15, "crashy to run again when started")
