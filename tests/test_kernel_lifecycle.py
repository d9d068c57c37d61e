"""The kernel as a process: boot, clean stop, supervision, run-at-boot, one kernel per name."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess

import pytest

import kos_core
from kos_core.errors import NameNotFound, ServiceUnavailable
from kos_core.testing import (
    KernelProcess,
    KosEnv,
    StartKernel,
    process_ended,
    process_reaped,
    wait_for,
)
from kos_helpers import (
    Cli,
    assert_one_line_error,
    booting_line,
    connection_file,
    connection_info,
    group_members,
)
from kos_plugins_bitbucket import BitBucket


def wait_all_booted(kernel: KernelProcess) -> None:
    """Wait until no plugin the kernel booted is still starting."""

    def booted() -> bool:
        with kernel.connect() as kos:
            return bool(booting_line(kernel)) and all(r[1] != "starting" for r in kos.plugins())

    wait_for(booted, 15, "every plugin to finish starting")


@pytest.mark.all_plugins
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_kernel_boots_and_stops_cleanly(
    kos_env: KosEnv, start_kernel: StartKernel, signum: signal.Signals
) -> None:
    kernel = start_kernel()  # no setup file: the embedded default boots every plugin
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    wait_all_booted(kernel)
    conn_file = connection_file(kos_env)
    kernel_socket = kos_env.runtime_dir / f"{kos_env.kernel}.sock"
    plugin_socket = kos_env.runtime_dir / f"p{pid}.sock"
    assert pid != kernel.pid
    assert not process_ended(pid)
    assert conn_file.exists()
    assert kernel_socket.exists()
    assert plugin_socket.exists()
    assert connection_info(kos_env)["pid"] == kernel.pid

    kernel.process.send_signal(signum)
    try:
        status = kernel.process.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kernel did not stop on {signum.name}\n{kernel.log()}") from None

    assert status == 0, kernel.log()
    wait_for(lambda: process_reaped(pid), 5, f"plugin pid {pid} to be gone")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # nothing at all is left in the kernel's process group (grandchildren included)
    wait_for(lambda: not group_members(kernel.pid), 5, "the kernel's process group to be empty")
    assert not conn_file.exists()
    assert not kernel_socket.exists()
    assert not plugin_socket.exists()
    log = kernel.log()
    assert "bitbucket plugin exiting" in log  # the plugin's finally block ran
    assert f"kernel {kos_env.kernel!r} stopped" in log
    assert "Traceback" not in log


def test_kernel_listens_on_tcp_when_asked(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    kernel = start_kernel("--listen", "127.0.0.1:0")
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    info = connection_info(kos_env)
    address = info["tcp"]
    assert address.startswith("tcp:127.0.0.1:")
    assert not address.endswith(":0")
    # Local clients and plugins still use the kernel's Unix socket.
    assert info["address"] == f"unix:{kos_env.runtime_dir / f'{kos_env.kernel}.sock'}"
    with kos_core.connect() as kos:
        kind, typename, sbh = kos.kernel.Lookup("bitbucket")
        assert (kind, typename) == ("service", "BitBucketAPI.BitBucket")
        assert sbh.startswith("kos+tcp://127.0.0.1:")  # the plugin serves over TCP too
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("over", b"tcp")
        assert bb.Get("over") == b"tcp"
    assert kernel.stop() == 0


def test_killed_plugin_is_unbound(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    kos_env.write_setup("[bitbucket]\nrestart: never\n")  # stays dead, whatever the default
    kernel = start_kernel()
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("k", b"v")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: "bitbucket" not in kos.list(), 10, "bitbucket to be unbound")
        with pytest.raises(NameNotFound):
            kos.lookup("bitbucket")
        with pytest.raises(ServiceUnavailable):  # a proxy from before talks to nobody
            bb.Get("k")
        row = wait_for(
            lambda: (r := kernel.plugin_row("bitbucket")) and r[5] and r,
            10,
            "the plugin table to record how the plugin ended",
        )
        assert row[1] not in ("starting", "running"), row
        assert "SIGKILL" in row[5], row
        assert row[3] == []
        assert "bitbucket" not in kos.list("plugins")
    assert kernel.process.poll() is None  # the kernel survives its plugin
    assert process_reaped(pid)
    assert kernel.stop() == 0
    assert not (kos_env.runtime_dir / f"p{pid}.sock").exists()  # the dead plugin's socket


def test_run_at_boot_0_does_not_run_the_plugin(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    kos_env.write_setup("[bitbucket]\nrun-at-boot: 0\n")
    kernel = start_kernel()
    booting = wait_for(lambda: booting_line(kernel), 10, "the kernel to finish booting")
    assert "bitbucket" not in booting
    row = kernel.plugin_row("bitbucket")
    assert row is not None
    assert (row[1], row[2]) == ("stopped", 0)
    with kos_core.connect() as kos:
        assert "bitbucket" not in kos.list()
    result = cli("plugins", "--json")
    assert result.returncode == 0, str(result)
    (entry,) = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == "bitbucket"]
    assert entry["run_at_boot"] is False
    assert entry["state"] == "stopped"
    assert entry["pid"] is None
    assert "bitbucket plugin registered" not in kernel.log()


def test_second_kernel_with_the_same_name_is_refused(
    kos_env: KosEnv, bb_kernel: KernelProcess, cli: Cli
) -> None:
    before = connection_info(kos_env)
    result = cli("run", "-n", kos_env.kernel, timeout=20)
    assert result.returncode != 0
    line = assert_one_line_error(result, result.returncode, "already running", kos_env.kernel)
    assert str(bb_kernel.pid) in line
    # the running kernel was not disturbed
    assert connection_info(kos_env) == before
    assert bb_kernel.process.poll() is None
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("still", b"here")
        assert bb.Get("still") == b"here"


def test_ctrl_c_in_the_terminal_stops_everything_quietly(start_kernel: StartKernel) -> None:
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group:
    # the kernel and every plugin get it at once.
    kernel = start_kernel()
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    wait_for(lambda: "bitbucket plugin registered" in kernel.log(), 10, "bitbucket to serve")
    os.killpg(kernel.pid, signal.SIGINT)
    status = kernel.process.wait(15)
    assert status == 0, kernel.log()
    wait_for(lambda: not group_members(kernel.pid), 5, "the kernel's process group to be empty")
    assert process_reaped(pid)
    log = kernel.log()
    assert "bitbucket plugin exiting" in log
    assert "Traceback" not in log, log
    assert "KeyboardInterrupt" not in log, log


def test_kernel_stops_with_clients_connected(kos_env: KosEnv, bb_kernel: KernelProcess) -> None:
    kos = kos_core.connect()
    try:
        bb = kos.lookup("bitbucket")
        bb.Set("held", b"open")  # a live connection to the kernel and one to the plugin
        bb_kernel.process.send_signal(signal.SIGTERM)
        assert bb_kernel.process.wait(15) == 0, bb_kernel.log()
        with pytest.raises(ServiceUnavailable):
            bb.Get("held")
    finally:
        kos.close()
    assert not connection_file(kos_env).exists()


STUBBORN = """\
import pathlib
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path({ready!r}).write_text("ignoring SIGTERM")
while True:
    time.sleep(60)
"""


def test_plugin_that_ignores_sigterm_is_killed_at_shutdown(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    ready = kos_env.state_dir / "stubborn.ready"
    (kos_env.config_dir / "stubborn.py").write_text(STUBBORN.format(ready=str(ready)))
    kos_env.write_setup("[stubborn]\nfile: stubborn.py\n\n[bitbucket]\nrun-at-boot: 1\n")
    kernel = start_kernel()
    wait_for(ready.exists, 10, "the stubborn plugin to ignore SIGTERM")
    row = kernel.plugin_row("stubborn")
    assert row is not None
    stubborn = int(row[2])
    assert stubborn > 0
    kernel.process.send_signal(signal.SIGTERM)
    assert kernel.process.wait(15) == 0, kernel.log()
    assert process_reaped(stubborn)
    wait_for(lambda: not group_members(kernel.pid), 5, "the kernel's process group to be empty")


def test_plugin_that_fails_to_start_is_reported(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    (kos_env.config_dir / "failing.py").write_text("import sys\nsys.exit(3)\n")
    kos_env.write_setup(
        "[failing]\nfile: failing.py\nrestart: never\n\n[bitbucket]\nrun-at-boot: 1\n"
    )
    kernel = start_kernel()
    row = wait_for(
        lambda: (r := kernel.plugin_row("failing")) and r[5] and r,
        10,
        "the failing plugin to be reported",
    )
    assert row[1] not in ("starting", "running"), row
    assert row[5] == "exit status 3"
    kernel.wait_plugin("bitbucket", services=["bitbucket"])  # the others run anyway
    table = cli("plugins")
    (failing,) = [line.split() for line in table.stdout.splitlines() if line.startswith("failing ")]
    assert failing[4] == row[1]
    assert failing[5] == "-"


def test_two_kernels_started_at_once_with_one_name(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    kernels = [start_kernel(ready=False) for _ in range(3)]

    def settled() -> bool:
        alive = [k for k in kernels if k.process.poll() is None]
        return len(alive) <= 1 and all(
            k.process.poll() is not None or "running at" in k.log() for k in kernels
        )

    with contextlib.suppress(TimeoutError):  # reported below, with what each kernel said
        wait_for(settled, 20, "all but one kernel to give up")
    alive = [k for k in kernels if k.process.poll() is None]
    logs = "\n---\n".join(k.log() for k in kernels)
    assert len(alive) == 1, logs
    (winner,) = alive
    assert connection_info(kos_env)["pid"] == winner.pid, logs
    for loser in kernels:
        if loser is not winner:
            assert loser.process.returncode != 0
            assert "already running" in loser.log(), logs
    winner.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        kos.lookup("bitbucket").Set("one", b"kernel")


@pytest.mark.parametrize("delay_marker", ["listening", "booting"])
def test_kernel_stopped_while_its_plugins_boot(
    kos_env: KosEnv, start_kernel: StartKernel, delay_marker: str
) -> None:
    kernel = start_kernel(ready=False)
    if delay_marker == "listening":
        wait_for(connection_file(kos_env).exists, 15, "the kernel to listen")
    else:
        wait_for(lambda: booting_line(kernel), 15, "the kernel to start booting")
    kernel.process.send_signal(signal.SIGTERM)
    assert kernel.process.wait(15) == 0, kernel.log()
    wait_for(lambda: not group_members(kernel.pid), 5, "the kernel's process group to be empty")
    assert not connection_file(kos_env).exists()
    assert "Traceback" not in kernel.log(), kernel.log()


def test_damaged_connection_file(kos_env: KosEnv, start_kernel: StartKernel, cli: Cli) -> None:
    conn_file = connection_file(kos_env)
    conn_file.write_text("{not json")
    assert_one_line_error(cli("ls"), 1, str(conn_file))
    kernel = start_kernel()  # a new kernel replaces the damaged file
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert connection_info(kos_env)["pid"] == kernel.pid
    assert cli("call", "bitbucket", "List").returncode == 0


def test_kernel_listens_on_a_unix_path_when_asked(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    path = kos_env.runtime_dir / "custom.sock"
    kernel = start_kernel("--listen", f"unix:{path}")
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert connection_info(kos_env)["address"] == f"unix:{path}"
    assert path.exists()
    with kos_core.connect() as kos:
        kos.lookup("bitbucket").Set("custom", b"path")
    assert kernel.stop() == 0
    assert not path.exists()
    assert not connection_file(kos_env).exists()


def test_two_kernels_side_by_side(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    other = dataclasses.replace(kos_env, kernel="otherk")
    first = start_kernel()
    second = start_kernel(env=other)
    first_bb = first.wait_plugin("bitbucket", services=["bitbucket"])
    second_bb = second.wait_plugin("bitbucket", services=["bitbucket"])
    assert first_bb != second_bb  # each kernel runs its own plugin
    with kos_core.connect(kos_env.kernel) as one, kos_core.connect("otherk") as two:
        one.lookup("bitbucket").Set("where", b"first")
        two.lookup("bitbucket").Set("where", b"second")
        assert one.lookup("bitbucket").Get("where") == b"first"
        assert two.lookup("bitbucket").Get("where") == b"second"
    assert first.stop() == 0
    with kos_core.connect("otherk") as two:  # stopping one leaves the other alone
        assert two.lookup("bitbucket").Get("where") == b"second"
    assert not process_ended(second_bb)
