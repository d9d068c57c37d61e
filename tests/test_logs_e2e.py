"""Readable logs: every line timed, a marker per kernel run, ``kos logs`` without a
running kernel, operator actions in the kernel's log, the true unbind list, and the last
error line in ``kos status``.
"""

from __future__ import annotations

import re

from kos_core.testing import KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error

#: What every log line starts with: its local date and time (logging's asctime).
TIMED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def test_plugin_logs_are_timed_marked_per_run_and_readable_without_a_kernel(
    start_kernel: StartKernel, cli: Cli
) -> None:
    for _ in range(2):
        kernel = start_kernel()
        kernel.wait_plugin("bitbucket", services=["bitbucket"])
        assert kernel.stop() == 0
    result = cli("logs", "bitbucket")  # no kernel runs now
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    assert lines and all(TIMED.match(line) for line in lines), result.stdout
    markers = [line for line in lines if "=====" in line]
    assert len(markers) == 2, result.stdout
    assert all("plugin bitbucket started" in m and "run started" in m for m in markers)
    assert markers[0] != markers[1]  # each names its own run
    assert sum("registered" in line for line in lines) == 2


def test_kernel_log_holds_the_setup_read_and_operator_actions(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert cli("plugin", "stop", "bitbucket").returncode == 0
    wait_for(lambda: kernel.plugin_row("bitbucket")[1] == "stopped", 10, "bitbucket stopped")  # type: ignore[index]
    assert cli("plugin", "start", "bitbucket").returncode == 0
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert kernel.stop() == 0
    result = cli("logs", "--kernel-log")
    assert result.returncode == 0, str(result)
    text = result.stdout
    assert all(TIMED.match(line) for line in text.splitlines()), text
    assert "===== kernel " in text.splitlines()[0]
    assert f"setup files in {kos_env.config_dir}: none" in text
    assert "plugin bitbucket: stop asked by the operator (it is running)" in text
    assert "plugin bitbucket: start asked by the operator (it is stopped)" in text
    # What the stopped plugin had bound is what the log says it unbound.
    assert re.search(r"plugin bitbucket exit status 0; unbound bitbucket\b", text), text
    assert "unbound nothing" not in text
    assert_one_line_error(cli("logs"), 2, "plugin NAME or --kernel-log")
    assert_one_line_error(cli("logs", "bitbuckt"), 1, "did you mean 'bitbucket'?")


def test_last_exit_carries_the_last_error_line(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    script = "print('starting')\nraise ValueError('timeout: not a number: abc')\n"
    (kos_env.config_dir / "broken.py").write_text(script)
    kos_env.write_setup("[broken]\nfile: broken.py\nrestart: never\n")
    kernel = start_kernel()
    row = wait_for(
        lambda: (r := kernel.plugin_row("broken")) and r[1] == "exited" and r, 15, "broken exited"
    )
    assert row[5] == "exit status 1: ValueError: timeout: not a number: abc", row
    status = cli("status")
    assert "exit status 1: ValueError: timeout: not a number: abc" in status.stdout
