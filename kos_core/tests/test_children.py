"""Factory children: spawnserver, serve_child, end_connection, the lifeline, ChildFactory.

Real processes throughout: the test process (or a parent script the test can kill)
starts children that serve the toy ``ChildTest.Counter`` interface from
``childapi.py``; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from childapi import (
    FLAG_ENV,
    MODE_ENV,
    SCRIPT,
    TARGET,
    WIRE_NAME,
    Counter,
)
from coretest_util import connection_of, python_env, short_dir
from kos_core import _rpc, pluginlib
from kos_core._net import wire
from kos_core.errors import AuthenticationFailed, ServiceUnavailable
from kos_core.testing import (
    KosEnv,
    children_of,
    idle_spare,
    process_ended,
    process_reaped,
    wait_ended,
    wait_for,
)

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def child_env(kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch) -> KosEnv:
    """The test's kos place, with ``childapi`` importable by every process started."""
    monkeypatch.setenv("PYTHONPATH", python_env()["PYTHONPATH"])
    monkeypatch.delenv(FLAG_ENV, raising=False)
    monkeypatch.delenv(MODE_ENV, raising=False)
    return kos_env


class Tracker:
    """Child pids and client proxies a test made; :meth:`close` ends them all."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.proxies: list[Any] = []

    def spawned(self, made: tuple[str, int, list[int]]) -> tuple[str, int, list[int]]:
        """Track the child of a spawn's result ``(sbh, pid, exited)``; return the result."""
        if made[1]:
            self.pids.append(made[1])
        return made

    def proxy(self, sbh: str) -> Any:
        proxy = _rpc.object_of_sbh(sbh, Counter)
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        for proxy in self.proxies:
            link = _rpc.connection_of(proxy)
            if link is not None:
                link.close()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                if not process_ended(pid):
                    os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: all(process_ended(pid) for pid in self.pids), 10, "the test's children to end"
        )


@pytest.fixture
def track(child_env: KosEnv) -> Iterator[Tracker]:
    with contextlib.closing(Tracker()) as tracker:
        yield tracker


def spawn(track: Tracker, *args: object, **kwargs: Any) -> tuple[str, int, list[int]]:
    """``spawnserver`` of ``childapi.py``; the child is ended after the test."""
    return track.spawned(pluginlib.spawnserver(str(SCRIPT), *args, **kwargs))


def fork_server_of(factory: pluginlib.ChildFactory) -> int:
    """The pid of ``factory``'s fork server."""
    process = factory._process
    assert process is not None, "the factory has no fork server"
    return process.pid


def listening_spare(factory: pluginlib.ChildFactory, env: KosEnv) -> int:
    """``factory``'s idle spare, once it listens on its socket."""
    spare = idle_spare(fork_server_of(factory))
    wait_for(lambda: socket_file(env, spare).exists(), 10, "the spare to listen")
    return spare


def close_factory(factory: pluginlib.ChildFactory) -> None:
    """Close ``factory``; everything still under its fork server (spares) ends too."""
    process = factory._process
    left = children_of(process.pid) if process is not None else set()
    factory.close()
    for pid in left:
        wait_ended(pid, timeout=10)


@pytest.fixture
def factory(track: Tracker) -> Iterator[pluginlib.ChildFactory]:
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME)
    try:
        yield made
    finally:
        track.close()  # first the children (the fork server reaps them), then the server
        close_factory(made)


class Parents:
    """Parent scripts (``childapi.py parent-...``) a test runs; killed after the test."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def parents(child_env: KosEnv) -> Iterator[Parents]:
    with contextlib.closing(Parents()) as made:
        yield made


def forked_counter(factory: pluginlib.ChildFactory, track: Tracker) -> tuple[Any, int, int]:
    """A new forked child's counter (with its client), its pid and its fork server's pid."""
    sbh, pid, _ = track.spawned(factory.spawn())
    counter = track.proxy(sbh)
    return counter, pid, counter.ParentPid()


def read_json_line(process: subprocess.Popen[str], timeout: float = 15.0) -> Any:
    """The first line ``process`` prints, parsed as JSON (within ``timeout``)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"process {process.pid} printed nothing within {timeout:g} s"
    line = process.stdout.readline()
    assert line, f"process {process.pid} exited with {process.wait()} before printing"
    return json.loads(line)


def socket_file(kos_env: KosEnv, pid: int) -> Path:
    """Where a child's one-shot server listens."""
    return kos_env.runtime_dir / f"p{pid}.sock"


# ---------------------------------------------------------------------------- spawnserver


def test_spawnserver_starts_a_script_child_serving_one_object(track: Tracker) -> None:
    sbh, pid, pids = spawn(track)
    assert sbh.startswith("kos+")
    assert pid > 0 and pid not in pids
    counter = track.proxy(sbh)
    assert isinstance(counter, Counter)
    assert [counter.Incr(), counter.Incr(), counter.Incr()] == [1, 2, 3]
    assert counter.Pid() == pid
    assert counter.ParentPid() == os.getpid()


def test_children_are_separate_processes_with_separate_state(track: Tracker) -> None:
    first = track.proxy(spawn(track)[0])
    second = track.proxy(spawn(track)[0])
    assert first.Incr() == 1 and first.Incr() == 2
    assert second.Incr() == 1
    assert first.Pid() != second.Pid()


def test_child_argv_is_filename_flag_fd_and_args(track: Tracker) -> None:
    sbh, _pid, _ = spawn(track, "two words", 7, "-x")
    argv = track.proxy(sbh).Argv()
    assert argv[0] == str(SCRIPT)
    assert argv[1] == "-f"
    assert argv[2].isdigit() and int(argv[2]) > 2
    assert argv[3:] == ["two words", "7", "-x"]
    assert len(argv) == 6


def test_spawnserver_flagoption_is_used_on_the_command_line(
    track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FLAG_ENV, "-p")
    sbh, _pid, _ = spawn(track, "arg", flagoption="-p")
    assert sbh
    argv = track.proxy(sbh).Argv()
    assert argv[1] == "-p" and argv[2].isdigit() and argv[3:] == ["arg"]


def test_missing_script_gives_empty_sbh_and_a_reaped_child(track: Tracker, tmp_path: Path) -> None:
    sbh, pid, pids = pluginlib.spawnserver(str(tmp_path / "no-such-script.py"))
    assert sbh == ""
    assert pid in pids or process_reaped(pid)
    assert process_reaped(pid), f"child {pid} of a failed spawn is still there (a zombie?)"


def test_child_writing_garbage_instead_of_an_sbh_is_stopped_and_reaped(
    track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODE_ENV, "garbage")
    sbh, pid, pids = spawn(track)
    assert sbh == ""
    assert pid > 0
    assert pid in pids or process_reaped(pid)
    assert process_reaped(pid)


def test_a_second_client_with_the_same_sbh_is_refused(track: Tracker) -> None:
    sbh, _pid, _ = spawn(track)
    first = track.proxy(sbh)
    assert first.Incr() == 1
    second = track.proxy(sbh)
    with pytest.raises(AuthenticationFailed):
        second.Incr()
    assert first.Incr() == 2  # the first client is not disturbed


def test_a_wrong_token_is_refused_and_does_not_use_up_the_child(track: Tracker) -> None:
    sbh, _pid, _ = spawn(track)
    address, token = wire.parse_sbh(sbh)
    forged = wire.format_sbh(address, "x" + token[1:] if token[0] != "x" else "y" + token[1:])
    with pytest.raises(AuthenticationFailed):
        track.proxy(forged).Incr()
    assert track.proxy(sbh).Incr() == 1


def test_close_ends_the_child_and_the_next_call_fails(track: Tracker, child_env: KosEnv) -> None:
    sbh, pid, _ = spawn(track)
    counter = track.proxy(sbh)
    assert counter.Incr() == 1
    assert socket_file(child_env, pid).exists()
    assert counter.Close() is None
    wait_ended(pid, timeout=10, reaped=True)
    with pytest.raises(ServiceUnavailable):
        counter.Incr()
    assert not socket_file(child_env, pid).exists()
    # The reaper remembers it: the next spawnserver call reports it in ``pids``.
    _sbh, _other, pids = spawn(track)
    assert pid in pids


def test_dropping_the_connection_without_close_ends_the_child(track: Tracker) -> None:
    sbh, pid, _ = spawn(track)
    counter = track.proxy(sbh)
    assert counter.Incr() == 1
    connection_of(counter).close()
    wait_ended(pid, timeout=10, reaped=True)


def test_sigterm_ends_a_child(track: Tracker) -> None:
    sbh, pid, _ = spawn(track)
    assert track.proxy(sbh).Incr() == 1
    os.kill(pid, signal.SIGTERM)
    wait_ended(pid, timeout=10, reaped=True)


def test_a_child_whose_client_never_comes_ends_after_the_client_timeout(
    track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")
    sbh, pid, _ = spawn(track)
    started = time.monotonic()
    assert sbh
    wait_ended(pid, timeout=10, reaped=True)
    assert time.monotonic() - started > 0.5  # it waited for a client first


def test_a_connected_client_keeps_its_child_past_the_client_timeout(
    track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")
    sbh, pid, _ = spawn(track)
    counter = track.proxy(sbh)
    assert counter.Incr() == 1
    deadline = time.monotonic() + 1.5
    calls = 1
    while time.monotonic() < deadline:  # keep using it well past the timeout
        calls += 1
        assert counter.Incr() == calls
    assert not process_ended(pid)


def test_killing_the_parent_ends_its_child_within_two_seconds(parents: Parents) -> None:
    parent = parents.start("parent-spawn")
    made = read_json_line(parent)
    pid = made["pid"]
    assert made["sbh"], "the parent could not start its child"
    counter = _rpc.object_of_sbh(made["sbh"], Counter)
    try:
        assert counter.Pid() == pid
        assert counter.ParentPid() == parent.pid
        parent.kill()
        parent.wait()
        wait_ended(pid, timeout=2.0)
        with pytest.raises(ServiceUnavailable):
            counter.Incr()
    finally:
        connection_of(counter).close()


def test_end_connection_outside_a_call_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        pluginlib.end_connection()


# ---------------------------------------------------------------------------- ChildFactory


def test_child_factory_spawns_working_children(
    factory: pluginlib.ChildFactory, track: Tracker
) -> None:
    sbh, pid, _exited = track.spawned(factory.spawn("a", "b"))
    assert sbh and pid > 0
    counter = track.proxy(sbh)
    assert counter.Argv() == ["a", "b"]
    assert counter.Pid() == pid
    fork_server = counter.ParentPid()
    assert fork_server in children_of(os.getpid())
    assert pid in children_of(fork_server)
    assert [counter.Incr(), counter.Incr()] == [1, 2]

    sbh2, pid2, _ = track.spawned(factory.spawn())
    other = track.proxy(sbh2)
    assert pid2 != pid
    assert other.Incr() == 1
    assert other.ParentPid() == fork_server


def test_child_factory_children_refuse_a_second_client(
    factory: pluginlib.ChildFactory, track: Tracker
) -> None:
    sbh, _pid, _ = track.spawned(factory.spawn())
    assert track.proxy(sbh).Incr() == 1
    with pytest.raises(AuthenticationFailed):
        track.proxy(sbh).Incr()


def test_child_factory_reports_exited_children(
    factory: pluginlib.ChildFactory, track: Tracker
) -> None:
    sbh, pid, _ = track.spawned(factory.spawn())
    counter = track.proxy(sbh)
    assert counter.Incr() == 1
    counter.Close()
    wait_ended(pid, timeout=10, reaped=True)  # the fork server reaped it
    with pytest.raises(ServiceUnavailable):
        counter.Incr()

    sbh2, pid2, exited = track.spawned(factory.spawn())
    assert pid in exited  # reported once, by the next spawn
    link = connection_of(track.proxy(sbh2))
    link.connect()
    link.close()  # a dropped connection ends a forked child too
    wait_ended(pid2, timeout=10, reaped=True)

    _sbh3, _pid3, exited = track.spawned(factory.spawn())
    assert pid2 in exited
    assert pid not in exited


def test_child_factory_child_without_client_ends_after_the_client_timeout(
    child_env: KosEnv, track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME)  # the fork server inherits the setting
    try:
        sbh, pid, _ = track.spawned(made.spawn())
        assert sbh
        wait_ended(pid, timeout=10, reaped=True)
    finally:
        track.close()
        close_factory(made)


def test_child_factory_child_that_cannot_build_its_object_gives_empty_sbh(
    factory: pluginlib.ChildFactory, track: Tracker
) -> None:
    sbh, pid, _ = track.spawned(factory.spawn("fail"))
    assert sbh == ""
    if pid:
        wait_ended(pid, timeout=10, reaped=True)
    sbh2, _pid2, _ = track.spawned(factory.spawn("fine"))  # the fork server is still working
    assert track.proxy(sbh2).Argv() == ["fine"]


def test_child_factory_restarts_a_dead_fork_server(
    factory: pluginlib.ChildFactory, track: Tracker
) -> None:
    counter, pid, fork_server = forked_counter(factory, track)
    spare = idle_spare(fork_server, but={pid})
    os.kill(fork_server, signal.SIGKILL)
    # Our child: the ChildFactory reaps it when it notices.
    wait_ended(fork_server, timeout=10)
    wait_ended(spare, timeout=10)  # an idle spare sees its fork server go

    sbh2, _pid2, _ = track.spawned(factory.spawn("again"))
    assert sbh2
    again = track.proxy(sbh2)
    assert again.Argv() == ["again"]
    assert again.ParentPid() != fork_server
    # A child made before keeps serving its client until its own end.
    assert counter.Incr() == 1
    counter.Close()
    wait_ended(pid, timeout=10)


@pytest.fixture
def no_spares(track: Tracker) -> Iterator[pluginlib.ChildFactory]:
    """A factory whose fork server forks each child on demand, inside the request."""
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME, spares=0)
    try:
        yield made
    finally:
        track.close()
        close_factory(made)


def test_spawn_does_not_hang_when_the_fork_server_dies_during_a_request(
    no_spares: pluginlib.ChildFactory, track: Tracker
) -> None:
    factory = no_spares  # a spawn that finds a spare does not ask the fork server
    # A live child made earlier, with its client.
    counter, pid, fork_server = forked_counter(factory, track)
    # The next child waits, inside the fork server's request, until the test lets it go.
    # Only that one waits: the gate stops listening once it has come.
    with short_dir() as gate_dir:
        gate_path = str(gate_dir / "gate.sock")
        gate = socket.socket(socket.AF_UNIX)
        gate.bind(gate_path)
        gate.listen(1)
        gate.settimeout(15)
        replies: list[tuple[str, int, list[int]]] = []
        request = threading.Thread(
            target=lambda: replies.append(factory.spawn("wait-for", gate_path)), daemon=True
        )
        request.start()
        held, _ = gate.accept()
        gate.close()
        os.unlink(gate_path)
        try:
            waiting = (children_of(fork_server) - {pid}).pop()
            track.pids.append(waiting)
            os.kill(fork_server, signal.SIGKILL)
            request.join(5)
            returned_on_its_own = not request.is_alive()
        finally:
            held.close()  # the waiting child goes on (and finds its fork server gone)
        if not returned_on_its_own:
            counter.Close()  # the last holders of the dead fork server's socket go away
            wait_ended(waiting, timeout=10)
            request.join(15)
    assert not request.is_alive(), "ChildFactory.spawn() still hangs"
    for reply in replies:
        track.spawned(reply)
    assert returned_on_its_own, (
        "ChildFactory.spawn() hung after its fork server died: the forked children keep"
        " the fork server's end of the control socket open, so no end-of-file arrives"
    )
    # It started a new fork server and made the child.
    assert replies and replies[0][0], replies
    assert track.proxy(replies[0][0]).Argv() == ["wait-for", gate_path]


def test_killing_the_factory_owner_ends_the_fork_server_and_all_its_children(
    parents: Parents,
) -> None:
    parent = parents.start("parent-factory", "3")
    made = read_json_line(parent)
    assert all(made["sbhs"]), made
    servers = children_of(parent.pid)
    assert len(servers) == 1, f"expected one fork server under {parent.pid}: {servers}"
    fork_server = servers.pop()
    pids = set(made["pids"])
    assert pids <= children_of(fork_server)
    spare = idle_spare(fork_server, but=pids)
    counter = _rpc.object_of_sbh(made["sbhs"][0], Counter)  # one of them has a client
    try:
        assert counter.Incr() == 1
        parent.kill()
        parent.wait()
        for pid in [fork_server, *pids, spare]:
            wait_ended(pid, timeout=5.0)
        with pytest.raises(ServiceUnavailable):
            counter.Incr()
    finally:
        connection_of(counter).close()


# ---------------------------------------------------------------------------- spares


def test_spares_are_handed_the_args_of_each_spawn(
    factory: pluginlib.ChildFactory, track: Tracker, child_env: KosEnv
) -> None:
    spare = listening_spare(factory, child_env)
    sbh, pid, _ = track.spawned(factory.spawn("first", 1))
    assert pid == spare  # the spare made before the spawn, not a new fork
    first = track.proxy(sbh)
    assert first.Argv() == ["first", "1"]
    replacement = idle_spare(fork_server_of(factory), but={spare})  # forked after the answer
    sbh2, pid2, _ = track.spawned(factory.spawn("second"))
    assert pid2 == replacement
    second = track.proxy(sbh2)
    assert second.Argv() == ["second"]
    assert [first.Incr(), first.Incr(), second.Incr()] == [1, 2, 1]
    assert (first.Pid(), second.Pid()) == (spare, replacement)


def test_a_spare_whose_make_raises_gives_empty_sbh_and_the_next_spawn_works(
    factory: pluginlib.ChildFactory, track: Tracker, child_env: KosEnv
) -> None:
    spare = idle_spare(fork_server_of(factory))
    sbh, pid, _ = track.spawned(factory.spawn("fail"))
    assert (sbh, pid) == ("", spare)
    assert "make_counter was asked to fail" in factory.last_error
    wait_ended(spare, timeout=10, reaped=True)
    assert not socket_file(child_env, spare).exists()
    sbh2, pid2, _ = track.spawned(factory.spawn("fine"))
    assert sbh2 and pid2 != spare
    assert track.proxy(sbh2).Argv() == ["fine"]


def test_a_spares_client_timeout_counts_from_its_assignment(
    child_env: KosEnv, track: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME)  # the fork server inherits the setting
    try:
        spare = listening_spare(made, child_env)
        with pytest.raises(TimeoutError):  # idle for twice the client timeout, and still there
            wait_for(lambda: process_ended(spare), 2.0, f"the idle spare {spare} to end")
        sbh, pid, _ = track.spawned(made.spawn("late"))
        assert pid == spare
        with pytest.raises(TimeoutError):  # its client may still come: the timeout is 1 s
            wait_for(lambda: process_ended(spare), 0.4, f"the assigned spare {spare} to end")
        counter = track.proxy(sbh)
        assert counter.Argv() == ["late"]  # its client was let in
        assert counter.Incr() == 1
    finally:
        track.close()
        close_factory(made)


def test_sigterm_ends_an_idle_spare_and_the_next_spawn_still_works(
    factory: pluginlib.ChildFactory, track: Tracker, child_env: KosEnv
) -> None:
    spare = listening_spare(factory, child_env)
    os.kill(spare, signal.SIGTERM)
    wait_ended(spare, timeout=10, reaped=True)  # reaped by the fork server
    assert not socket_file(child_env, spare).exists()
    sbh, pid, _ = track.spawned(factory.spawn("after"))
    assert sbh and pid != spare
    assert track.proxy(sbh).Argv() == ["after"]


def test_sigkill_of_an_idle_spare_leaves_no_socket_file(
    factory: pluginlib.ChildFactory, track: Tracker, child_env: KosEnv
) -> None:
    spare = listening_spare(factory, child_env)
    os.kill(spare, signal.SIGKILL)  # it cannot remove its own socket file
    wait_ended(spare, timeout=10, reaped=True)
    wait_for(lambda: not socket_file(child_env, spare).exists(), 10, "the fork server to clean up")
    sbh, _pid, _ = track.spawned(factory.spawn("after"))
    assert track.proxy(sbh).Argv() == ["after"]


def test_sigkill_of_a_forked_child_leaves_no_socket_file(
    factory: pluginlib.ChildFactory, track: Tracker, child_env: KosEnv
) -> None:
    _counter, pid, _ = forked_counter(factory, track)
    assert socket_file(child_env, pid).exists()
    os.kill(pid, signal.SIGKILL)
    wait_ended(pid, timeout=10, reaped=True)
    wait_for(lambda: not socket_file(child_env, pid).exists(), 10, "the fork server to clean up")


def test_sigkill_of_a_spawnserver_child_leaves_no_socket_file(
    track: Tracker, child_env: KosEnv
) -> None:
    _sbh, pid, _ = spawn(track)
    assert socket_file(child_env, pid).exists()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not socket_file(child_env, pid).exists(), 10, "the reaper to clean up")
    assert pid in pluginlib.spawnserver(str(SCRIPT) + ".missing")[2]  # reported as exited


def test_closing_the_factory_ends_its_idle_spare(child_env: KosEnv, track: Tracker) -> None:
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME)
    try:
        spare = listening_spare(made, child_env)
    finally:
        made.close()
    wait_ended(spare, timeout=10)
    assert not socket_file(child_env, spare).exists()


def test_killing_the_factory_owner_ends_its_idle_spare(parents: Parents, child_env: KosEnv) -> None:
    parent = parents.start("parent-factory", "0")
    assert read_json_line(parent) == {"sbhs": [], "pids": []}
    servers = wait_for(lambda: children_of(parent.pid), 10, "the fork server")
    assert len(servers) == 1, f"expected one fork server under {parent.pid}: {servers}"
    fork_server = servers.pop()
    spare = idle_spare(fork_server)
    wait_for(lambda: socket_file(child_env, spare).exists(), 10, "the spare to listen")
    parent.kill()
    parent.wait()
    for pid in (fork_server, spare):
        wait_ended(pid, timeout=5.0)
    assert not socket_file(child_env, spare).exists()


def test_no_spares_forks_each_child_on_demand(child_env: KosEnv, track: Tracker) -> None:
    made = pluginlib.ChildFactory(TARGET, WIRE_NAME, spares=0)
    try:
        sbh, pid, _ = track.spawned(made.spawn("one"))
        fork_server = fork_server_of(made)
        counter = track.proxy(sbh)
        assert counter.Argv() == ["one"]
        counter.Close()
        wait_ended(pid, timeout=10, reaped=True)
        # With a spare, one would have been forked right after the first answer.
        sbh2, pid2, _ = track.spawned(made.spawn("two"))
        assert children_of(fork_server) == {pid2}
        track.proxy(sbh2).Close()
        wait_ended(pid2, timeout=10, reaped=True)
        assert children_of(fork_server) == set()  # nothing under it while idle
    finally:
        track.close()
        close_factory(made)


def test_spares_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="spares"):
        pluginlib.ChildFactory(TARGET, WIRE_NAME, spares=-1)
