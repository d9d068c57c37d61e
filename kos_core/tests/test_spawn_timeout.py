"""A factory child that never writes its SBH: after ``$KOS_SPAWN_TIMEOUT`` seconds the
spawn gives up with an empty SBH and the child is killed, for ``spawnserver`` (the
plugin reads the SBH) and for ``ChildFactory`` (its fork server does, for a child
forked on demand and for a spare).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from childapi import TARGET, WIRE_NAME, Counter
from coretest_util import python_env, short_dir, write_script
from kos_core import _rpc, pluginlib
from kos_core.testing import KosEnv, children_of, process_ended, process_reaped, wait_for

TIMEOUT = "1"

PARENT = """
    import json, os, sys, time
    from kos_core import pluginlib

    start = time.monotonic()
    sbh, pid, _pids = pluginlib.spawnserver(sys.argv[1])
    took = time.monotonic() - start
    try:
        os.kill(pid, 0)
        reaped = False
    except ProcessLookupError:
        reaped = True
    print(json.dumps({"sbh": sbh, "pid": pid, "took": took, "reaped": reaped}), flush=True)
"""

SILENT_CHILD = """
    import threading
    threading.Event().wait()  # started, alive, and never writes its SBH
"""


def test_spawnserver_gives_up_on_a_silent_child_after_the_spawn_timeout(
    kos_env: KosEnv, tmp_path: Path
) -> None:
    parent = write_script(tmp_path / "parent.py", PARENT)
    child = write_script(tmp_path / "silent.py", SILENT_CHILD)
    result = subprocess.run(
        [sys.executable, str(parent), str(child)],
        env={**os.environ, "KOS_SPAWN_TIMEOUT": TIMEOUT},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["sbh"] == ""
    assert made["pid"] > 0
    assert made["reaped"], "the silent child was left running"
    assert 1.0 <= made["took"] < 5.0, made  # the setting, not the default of 10 s


@contextlib.contextmanager
def gate() -> Iterator[str]:
    """A listening Unix socket: ``make_counter("wait-for", path)`` blocks until it closes."""
    with short_dir() as directory, socket.socket(socket.AF_UNIX) as listener:
        path = str(directory / "gate.sock")
        listener.bind(path)
        listener.listen(8)
        yield path


@pytest.mark.parametrize("spares", [0, 1])
def test_a_child_factory_gives_up_on_a_child_that_writes_no_sbh_in_time(
    kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch, spares: int
) -> None:
    monkeypatch.setenv("PYTHONPATH", python_env()["PYTHONPATH"])
    monkeypatch.setenv("KOS_SPAWN_TIMEOUT", TIMEOUT)  # the fork server reads it
    factory = pluginlib.ChildFactory(TARGET, WIRE_NAME, spares=spares)
    assert factory._process is not None
    fork_server = factory._process.pid
    made: list[int] = []
    link: _rpc.ClientConnection | None = None
    try:
        with gate() as path:
            sbh, pid, _ = factory.spawn("wait-for", path)  # its object is never made
            assert sbh == ""
            assert factory.last_error == f"the child wrote no SBH within {TIMEOUT} s"
            assert pid > 0
            made.append(pid)
            wait_for(
                lambda: process_reaped(pid) or process_ended(pid), 10, "the silent child to end"
            )
            # Killed by the plugin (a spare) or the fork server; reaped by the fork server.
            wait_for(lambda: pid not in children_of(fork_server), 10, "the fork server to reap")
        sbh, pid, _ = factory.spawn("fine")  # the factory goes on
        made.append(pid)
        counter = _rpc.object_of_sbh(sbh, Counter)
        link = _rpc.connection_of(counter)
        assert counter.Argv() == ["fine"]
    finally:
        if link is not None:
            link.close()
        factory.close()
        for pid in made:
            with contextlib.suppress(ProcessLookupError):
                if not process_ended(pid):
                    os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(process_ended(p) for p in made), 10, "the test's children to end")
