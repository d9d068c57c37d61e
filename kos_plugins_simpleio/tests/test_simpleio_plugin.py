"""The simpleio plugin's factory and the processes behind its windows: refusals
without a usable display, and how each window's child process ends (the client
closes it, the client goes away, the plugin dies). Real kernels, real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kos_core.errors import ServiceUnavailable
from kos_core.testing import KernelProcess, KosEnv, wait_ended, wait_for
from kos_plugins_simpleio import SpawnError
from simpleio_helpers import (
    Pending,
    Screen,
    StartSimpleIO,
    display_free,
    kill_quietly,
    live_descendants,
    window_child,
)

# --------------------------------------------------------------------------- no display


def test_no_display_is_SpawnError(start_simpleio: StartSimpleIO) -> None:
    kernel = start_simpleio(None)  # DISPLAY unset for the kernel
    with kernel.connect() as kos:
        factory = kos.lookup("simpleio")
        with pytest.raises(SpawnError, match=r"(?i)display"):
            factory.GetNewSimpleIO()
        with pytest.raises(SpawnError, match=r"(?i)display"):
            factory.GetNewSimpleIOWH(10, 40)
    row = kernel.plugin_row("simpleio")
    assert row is not None and row[1] == "running" and row[2] == kernel.plugin_pids["simpleio"]


def _unused_display() -> str:
    number = 9999
    while not display_free(number):
        number += 1
    return f":{number}"


def test_a_display_with_no_X_server_is_SpawnError(start_simpleio: StartSimpleIO) -> None:
    display = _unused_display()
    kernel = start_simpleio(display)
    before = live_descendants(kernel.plugin_pids["simpleio"])
    with kernel.connect() as kos:
        factory = kos.lookup("simpleio")
        # Tk fails at once on a display nobody serves: well before the plugin's own
        # 10 s limit for a child to report.
        error = Pending(factory.GetNewSimpleIO, "GetNewSimpleIO()").error(8)
        assert isinstance(error, SpawnError), repr(error)
        assert display in str(error)
        # ... and says why, in Tk's words.
        assert "couldn't connect to display" in str(error), str(error)
        # The plugin is still there for the next client, which gets the same answer.
        again = Pending(lambda: factory.GetNewSimpleIOWH(5, 20), "GetNewSimpleIOWH()").error(8)
        assert isinstance(again, SpawnError), repr(again)
    # No failed window process is left behind.
    wait_for(
        lambda: live_descendants(kernel.plugin_pids["simpleio"]) == before, 10, "no process left"
    )


# --------------------------------------------------------------------------- lifetimes


def test_close_ends_the_window_and_its_process(
    kernel: KernelProcess, screen: Screen, kos_env: KosEnv
) -> None:
    before_pids, before_windows = live_descendants(kernel.plugin_pids["simpleio"]), screen.windows()
    with kernel.connect() as kos:
        file = kos.lookup("simpleio").GetNewSimpleIO()
        wid = screen.new_window(before_windows)
        pid = window_child(kernel, before_pids)
        file.write("goodbye\n")
        file.close()
        wait_ended(pid, "the window process")
        screen.wait_gone(wid)
        assert not (kos_env.runtime_dir / f"p{pid}.sock").exists()
        with pytest.raises(ServiceUnavailable):
            file.write("too late\n")
    assert live_descendants(kernel.plugin_pids["simpleio"]) == before_pids  # only the fork server


CLIENT = """\
import sys

import kos_core

kos = kos_core.connect()
file = kos.lookup("simpleio").GetNewSimpleIO()
file.write("a client that leaves without close()\\n")
print("ready", flush=True)
sys.stdin.readline()  # then leave, without file.close() or kos.close()
"""


@pytest.mark.parametrize("how", ["exits", "is killed"])
def test_a_client_that_goes_away_without_close_ends_its_window(
    kernel: KernelProcess, screen: Screen, tmp_path: Path, how: str
) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    before_pids, before_windows = live_descendants(kernel.plugin_pids["simpleio"]), screen.windows()
    client = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert client.stdout is not None
        ready = Pending(client.stdout.readline, "the client to open its window").result(20)
        assert ready == "ready\n", client.stderr.read() if client.stderr else ""
        wid = screen.new_window(before_windows)
        pid = window_child(kernel, before_pids)
        assert client.stdin is not None
        if how == "is killed":
            client.send_signal(signal.SIGKILL)
        else:
            client.stdin.write("go\n")
            client.stdin.flush()
        client.wait(20)
        wait_ended(pid, "the window process")
        screen.wait_gone(wid)
    finally:
        kill_quietly([client.pid])
        client.wait()
        for stream in (client.stdin, client.stdout, client.stderr):
            if stream is not None:
                stream.close()
    if how == "exits":
        assert client.returncode == 0


def test_killing_the_plugin_ends_its_windows(kernel: KernelProcess, screen: Screen) -> None:
    before_pids = live_descendants(kernel.plugin_pids["simpleio"])
    with kernel.connect() as kos:
        files, wids, pids = [], [], []
        for _ in range(2):
            windows = screen.windows()
            files.append(kos.lookup("simpleio").GetNewSimpleIO())
            wids.append(screen.new_window(windows))
            pids.append(window_child(kernel, before_pids | set(pids)))
        everything = live_descendants(kernel.plugin_pids["simpleio"])
        os.kill(kernel.plugin_pids["simpleio"], signal.SIGKILL)
        for pid in everything:
            wait_ended(pid, "a process of the killed plugin")
        for wid in wids:
            screen.wait_gone(wid)
        for file in files:
            with pytest.raises(ServiceUnavailable):
                file.write("is anyone there?\n")
