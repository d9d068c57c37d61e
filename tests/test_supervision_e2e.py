"""The kernel as a supervisor (docs/operations.md): restarts, health, operator commands, logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from typing import Any

import pytest

import kos_core
from kos_core.errors import NameNotFound, ServiceUnavailable
from kos_core.testing import KernelProcess, KosEnv, StartKernel, process_reaped, wait_for
from kos_helpers import Cli, assert_one_line_error, table

FAST = "backoff: 0.1\nbackoff-max: 0.2\n"


def row_of(kernel: KernelProcess, name: str) -> tuple[Any, ...]:
    row = kernel.plugin_row(name)
    assert row is not None, f"no plugin {name} in the kernel's table"
    return row


def running_again(kernel: KernelProcess, name: str, old_pid: int) -> int:
    """Wait until ``name`` runs again in another process with its services bound."""

    def ready() -> int:
        row = kernel.plugin_row(name)
        if row and row[1] == "running" and row[2] != old_pid and name in row[3]:
            return int(row[2])
        return 0

    return wait_for(ready, 15, f"{name} to run again")


def test_killed_plugin_is_restarted_by_default(bb_kernel: KernelProcess, cli: Cli) -> None:
    pid = bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        kos.lookup("bitbucket").Set("lost", b"with the process")
    os.kill(pid, signal.SIGKILL)
    new_pid = running_again(bb_kernel, "bitbucket", pid)
    assert process_reaped(pid)
    row = row_of(bb_kernel, "bitbucket")
    assert "SIGKILL" in row[5]
    assert row[6] == 1  # restarts
    with kos_core.connect() as kos:
        assert kos.lookup("bitbucket").List() == []  # a new process, a new bucket
    status = cli("status", "--json")
    assert status.returncode == 0, str(status)
    (bb,) = [p for p in json.loads(status.stdout)["plugins"] if p["name"] == "bitbucket"]
    assert (bb["state"], bb["pid"], bb["restarts"]) == ("running", new_pid, 1)


def test_operator_stop_keeps_a_plugin_stopped_until_started(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    kos_env.write_setup(f"[bitbucket]\n{FAST}")
    kernel = start_kernel()
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    result = cli("plugin", "stop", "bitbucket")
    assert result.returncode == 0, str(result)
    wait_for(lambda: row_of(kernel, "bitbucket")[1] == "stopped", 10, "bitbucket to stop")
    assert process_reaped(pid)
    with kos_core.connect() as kos:
        assert "bitbucket" not in kos.list()
    # not restarted behind the operator's back, though its backoff is 0.1 s
    with pytest.raises(TimeoutError):
        wait_for(lambda: row_of(kernel, "bitbucket")[1] != "stopped", 1.0, "a restart")
    result = cli("plugin", "start", "bitbucket")
    assert result.returncode == 0, str(result)
    running_again(kernel, "bitbucket", pid)
    with kos_core.connect() as kos:
        kos.lookup("bitbucket").Set("back", b"again")
    assert_one_line_error(cli("plugin", "stop", "nosuch"), 1, "nosuch")


def test_operator_restart(kos_env: KosEnv, start_kernel: StartKernel, cli: Cli) -> None:
    kernel = start_kernel()
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    result = cli("plugin", "restart", "bitbucket")
    assert result.returncode == 0, str(result)
    running_again(kernel, "bitbucket", pid)
    assert process_reaped(pid)


def test_unanswering_plugin_is_unbound_killed_and_restarted(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    kos_env.write_setup(f"[bitbucket]\nhealth-interval: 0.2\nhealth-timeout: 0.5\n{FAST}")
    kernel = start_kernel()
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("k", b"v")
        os.kill(pid, signal.SIGSTOP)  # alive, but wedged
        try:
            wait_for(lambda: "bitbucket" not in kos.list(), 10, "the wedged plugin to be unbound")
            with pytest.raises(NameNotFound):
                kos.lookup("bitbucket")
            wait_for(lambda: process_reaped(pid), 10, "the wedged plugin to be killed")
            with pytest.raises(ServiceUnavailable):
                bb.Get("k")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        running_again(kernel, "bitbucket", pid)
        kos.lookup("bitbucket").Set("fresh", b"lookup")


def test_plugin_that_keeps_failing_becomes_fatal(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    (kos_env.config_dir / "crashy.py").write_text("import sys\nsys.exit(5)\n")
    kos_env.write_setup(f"[crashy]\nfile: crashy.py\nstartretries: 2\n{FAST}")
    kernel = start_kernel()
    row = wait_for(
        lambda: (r := kernel.plugin_row("crashy")) and r[1] == "fatal" and r,
        15,
        "crashy to be given up on",
    )
    assert row[5] == "exit status 5"
    assert row[2] == 0
    rows = table(cli("status").stdout)
    assert any(r[:2] == ["crashy", "fatal"] for r in rows)


def test_logs_of_a_plugin(kos_env: KosEnv, bb_kernel: KernelProcess, cli: Cli) -> None:
    bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    log_file = kos_env.state_dir / kos_env.kernel / "logs" / "bitbucket.log"
    wait_for(lambda: "registered" in log_file.read_text(), 10, "the plugin's log file")
    result = cli("logs", "bitbucket")
    assert result.returncode == 0, str(result)
    assert "bitbucket plugin registered" in result.stdout
    assert_one_line_error(cli("logs", "nosuch"), 1, "nosuch")
