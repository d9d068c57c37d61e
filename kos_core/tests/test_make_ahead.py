"""Spares that make their object ahead of need (``ChildFactory(..., make_ahead=True)``):
real fork servers and children serving ``childapi``'s counter; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from childapi import FLAG_ENV, MADE_ENV, MODE_ENV, TARGET, WIRE_NAME, Counter
from coretest_util import python_env
from kos_core import _rpc, pluginlib
from kos_core.errors import AuthenticationFailed
from kos_core.testing import KosEnv, children_of, idle_spare, process_ended, wait_ended, wait_for


@pytest.fixture
def made_dir(kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where every process's ``make_counter`` calls are written down."""
    monkeypatch.setenv("PYTHONPATH", python_env()["PYTHONPATH"])
    monkeypatch.delenv(FLAG_ENV, raising=False)
    monkeypatch.delenv(MODE_ENV, raising=False)
    monkeypatch.setenv(MADE_ENV, str(tmp_path))
    return tmp_path


class Made:
    """A factory whose spares make ahead, and the children and clients a test made."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        self.directory = directory
        self.factory = pluginlib.ChildFactory(TARGET, WIRE_NAME, make_ahead=True, **kwargs)
        process = self.factory._process
        assert process is not None
        self.fork_server = process.pid
        self.pids: list[int] = []
        self.links: list[_rpc.ClientConnection] = []

    def spawn(self, *args: str) -> tuple[Any, int]:
        sbh, pid, _ = self.factory.spawn(*args)
        assert sbh, self.factory.last_error
        self.pids.append(pid)
        return self.proxy(sbh), pid

    def proxy(self, sbh: str) -> Any:
        proxy = _rpc.object_of_sbh(sbh, Counter)
        link = _rpc.connection_of(proxy)
        assert link is not None
        self.links.append(link)
        return proxy

    def calls(self, pid: int) -> list[list[str]]:
        """The args of each ``make_counter`` call in process ``pid``, in order."""
        return [args for _at, args in made_calls(self.directory, pid)]

    def spare_made(self, args: list[str]) -> int:
        """The idle spare, once it has made its object ahead with ``args``."""
        spare = idle_spare(self.fork_server, but=set(self.pids))
        wait_for(lambda: self.calls(spare) == [args], 10, "the spare to make its object")
        return spare

    def close(self) -> None:
        for link in self.links:
            link.close()
        left = children_of(self.fork_server)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                if not process_ended(pid):
                    os.kill(pid, signal.SIGKILL)
        self.factory.close()
        for pid in left | set(self.pids):
            wait_ended(pid, timeout=10)


def made_calls(directory: Path, pid: int) -> list[tuple[float, list[str]]]:
    """``(time.monotonic(), args)`` of each ``make_counter`` call in process ``pid``."""
    path = directory / str(pid)
    text = path.read_text() if path.exists() else ""
    return [(at, args) for at, args in map(json.loads, text.splitlines())]


@pytest.fixture
def made(made_dir: Path) -> Iterator[Made]:
    with contextlib.closing(Made(made_dir)) as factory:
        yield factory


def test_a_spare_makes_its_object_ahead_with_the_args_of_the_last_spawn(made: Made) -> None:
    first, _first_pid = made.spawn("a", "1")  # no spawn before: made on demand
    assert first.Argv() == ["a", "1"]
    spare = made.spare_made(["a", "1"])
    asked = time.monotonic()
    counter, pid = made.spawn("a", "1")
    assert pid == spare
    assert counter.Argv() == ["a", "1"]
    assert counter.Incr() == 1
    [(at, args)] = made_calls(made.directory, spare)  # made once, ahead of the spawn
    assert args == ["a", "1"] and at < asked


def test_a_spawn_with_other_args_makes_the_object_again(made: Made) -> None:
    made.spawn("a")
    spare = made.spare_made(["a"])
    counter, pid = made.spawn("b")
    assert pid == spare
    assert counter.Argv() == ["b"]
    assert made.calls(spare) == [["a"], ["b"]]


def test_a_child_made_ahead_refuses_a_second_client(made: Made) -> None:
    made.spawn("a")
    made.spare_made(["a"])
    sbh, pid, _ = made.factory.spawn("a")
    made.pids.append(pid)
    first = made.proxy(sbh)
    assert first.Incr() == 1
    with pytest.raises(AuthenticationFailed):
        made.proxy(sbh).Incr()
    assert first.Incr() == 2
    first.Close()
    wait_ended(pid, timeout=10)


def test_the_client_timeout_of_a_child_made_ahead_counts_from_its_spawn(
    made_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")
    with contextlib.closing(Made(made_dir)) as made:
        made.spawn("a")
        spare = made.spare_made(["a"])
        with pytest.raises(TimeoutError):  # idle for twice the client timeout, and still there
            wait_for(lambda: process_ended(spare), 2.0, f"the idle spare {spare} to end")
        _sbh, pid, _ = made.factory.spawn("a")
        made.pids.append(pid)
        assert pid == spare
        wait_ended(pid, timeout=5)  # nobody came


def test_spares_never_outnumber_their_count(made: Made) -> None:
    for i in range(6):
        counter, _pid = made.spawn("a")
        assert counter.Incr() == 1
        if i % 2:
            counter.Close()
    spare = made.spare_made(["a"])
    assert children_of(made.fork_server) - set(made.pids) == {spare}


def test_without_make_ahead_a_spare_makes_nothing_before_its_spawn(made_dir: Path) -> None:
    factory = pluginlib.ChildFactory(TARGET, WIRE_NAME)
    process = factory._process
    assert process is not None
    pids: list[int] = []
    try:
        _sbh, pid, _ = factory.spawn("a")
        pids.append(pid)
        spare = idle_spare(process.pid, but={pid})
        asked = time.monotonic()
        _sbh, pid2, _ = factory.spawn("a")
        pids.append(pid2)
        assert pid2 == spare
        [(at, args)] = made_calls(made_dir, spare)  # made once, for the spawn
        assert args == ["a"] and at > asked
    finally:
        left = children_of(process.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        factory.close()
        for pid in left | set(pids):
            wait_ended(pid, timeout=10)


def test_a_spawn_that_finds_a_spare_does_not_wait_for_the_fork_server(made: Made) -> None:
    made.spawn("a")
    spare = made.spare_made(["a"])  # handed to the plugin as soon as it was forked
    os.kill(made.fork_server, signal.SIGSTOP)
    try:
        counter, pid = made.spawn("a")  # the plugin hands it out itself
        assert pid == spare
        assert counter.Argv() == ["a"]
    finally:
        os.kill(made.fork_server, signal.SIGCONT)
