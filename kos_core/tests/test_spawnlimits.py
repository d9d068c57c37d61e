"""ChildLimits: caps on a factory's live children, per client connection and in all.

The children are real processes (a Python that waits for its standard input to close);
a client is a real :class:`~kos_core._rpc.ServerSession` made current the way the server
makes it current while serving its call.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from childapi import Counter
from kos_core import _rpc, pluginlib
from kos_core._children.limits import GRACE
from kos_core._rpc import connection
from kos_core.testing import process_ended, wait_for

WAIT = [sys.executable, "-c", "import sys; sys.stdin.read()"]


class Children:
    """Starts waiting children; ends them on request and after the test."""

    def __init__(self) -> None:
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.started = 0

    def start(self) -> tuple[str, int, list[int]]:
        process = subprocess.Popen(WAIT, stdin=subprocess.PIPE)
        self.running[process.pid] = process
        self.started += 1
        return f"sbh-of-{process.pid}", process.pid, []

    def end(self, pid: int, wait: bool = True) -> None:
        process = self.running.pop(pid)
        assert process.stdin is not None
        process.stdin.close()
        if wait:
            process.wait(10)

    def close(self) -> None:
        for pid in list(self.running):
            with contextlib.suppress(Exception):
                self.end(pid)


@pytest.fixture
def children() -> Iterator[Children]:
    made = Children()
    try:
        yield made
    finally:
        made.close()


@contextlib.contextmanager
def serving(session: _rpc.ServerSession | None) -> Iterator[None]:
    """Make ``session`` the one whose call this thread serves."""
    connection._current.session = session
    try:
        yield
    finally:
        connection._current.session = None


def new_client() -> _rpc.ServerSession:
    return _rpc.ServerSession(object(), Counter)


def pid_of(result: tuple[str, int, list[int]]) -> int:
    return result[1]


def test_defaults_and_bad_values() -> None:
    limits = pluginlib.ChildLimits()
    assert (limits.per_client, limits.total) == (8, 64)
    assert pluginlib.ChildFactory.__init__.__kwdefaults__["limits"] is None  # → the defaults
    for bad in ((0, 5), (5, 0), (-1, 5)):
        with pytest.raises(ValueError, match="at least 1"):
            pluginlib.ChildLimits(*bad)


def test_one_client_is_capped_and_an_exit_frees_its_place(children: Children) -> None:
    limits = pluginlib.ChildLimits(per_client=3, total=10)
    client = new_client()
    with serving(client):
        pids = [pid_of(limits.start(children.start)) for _ in range(3)]
        started = time.monotonic()
        with pytest.raises(pluginlib.ChildLimitReached) as caught:
            limits.start(children.start)
        waited = time.monotonic() - started
        assert (caught.value.scope, caught.value.live, caught.value.limit) == ("client", 3, 3)
        assert "3 children made for this client are still running" in str(caught.value)
        assert GRACE <= waited < GRACE + 2  # waited for an exit
        started = time.monotonic()
        with pytest.raises(pluginlib.ChildLimitReached):  # refused again: no wait this time
            limits.start(children.start)
        assert time.monotonic() - started < GRACE / 2
        assert children.started == 3  # nothing was started past the cap
        children.end(pids[0])
        limits.start(children.start)  # the exit is seen at once
        assert limits.live(client) == 3
    with serving(new_client()):  # another connection has its own count
        limits.start(children.start)
    assert limits.live() == 4


def test_a_child_that_is_exiting_is_waited_for(children: Children) -> None:
    limits = pluginlib.ChildLimits(per_client=2, total=10)
    with serving(new_client()):
        first = pid_of(limits.start(children.start))
        limits.start(children.start)
        children.end(first, wait=False)  # told to end, not yet gone
        limits.start(children.start)  # admitted once it has gone, within the grace
        assert process_ended(first)
        assert children.started == 3


def test_the_total_counts_every_client(children: Children) -> None:
    limits = pluginlib.ChildLimits(per_client=3, total=4)
    clients = [new_client() for _ in range(3)]
    with serving(clients[0]):
        for _ in range(3):
            limits.start(children.start)
    with serving(clients[1]):
        limits.start(children.start)
        with pytest.raises(pluginlib.ChildLimitReached) as caught:
            limits.start(children.start)
    assert (caught.value.scope, caught.value.live, caught.value.limit) == ("total", 4, 4)
    assert "of this factory" in str(caught.value)
    # outside a call only the total applies, and it is reached
    with serving(None), pytest.raises(pluginlib.ChildLimitReached):
        limits.start(children.start)
    assert children.started == 4
    children.close()
    wait_for(lambda: limits.live() == 0, 5, "every child to be forgotten")
    with serving(clients[2]):
        limits.start(children.start)


def test_a_start_that_fails_does_not_count(children: Children) -> None:
    limits = pluginlib.ChildLimits(per_client=1, total=1)
    with serving(new_client()):
        for _ in range(3):
            assert limits.start(lambda: ("", 0, [])) == ("", 0, [])
        with pytest.raises(RuntimeError):
            limits.start(_raise)
        assert limits.live() == 0
        limits.start(children.start)
        assert limits.live() == 1


def _raise() -> tuple[str, int, list[int]]:
    raise RuntimeError("could not start")
