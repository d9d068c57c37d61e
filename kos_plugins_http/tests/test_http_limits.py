"""Caps on running requesters: one client cannot hold more than
``max-requesters-per-client``, all clients together not more than ``max-requesters``;
past a cap the factory answers ``FactoryFailed`` and starts no process. A requester
nobody connects to ends within ``KOS_CHILD_CLIENT_TIMEOUT`` (5 s by default).

Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from conftest import StartHttp
from httptest_helpers import LOOPBACK
from kos_core._children import factory
from kos_core.testing import descendants_of, process_reaped, sbh_pid, wait_for
from kos_plugins_http import FactoryFailed, FileIOError, Requester

ATTEMPTS = 300


def ask(factory: object, count: int) -> tuple[list[Requester], list[tuple[int, str]]]:
    """Ask ``factory`` for ``count`` requesters: those given, and (number, message) of
    each refusal.
    """
    given: list[Requester] = []
    refused: list[tuple[int, str]] = []
    for i in range(count):
        try:
            given.append(factory.GetHTTPRequester())  # type: ignore[attr-defined]
        except FactoryFailed as exc:
            refused.append((i, str(exc)))
    return given, refused


def rss_mib(pids: set[int]) -> int:
    """The resident memory of ``pids`` added up (shared pages counted in each), in MiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total // 1024


def close_and_wait(requester: Requester) -> None:
    """Close ``requester`` and wait until its process has ended (until then it counts)."""
    pid = sbh_pid(requester)
    requester.Close()
    wait_for(lambda: process_reaped(pid), 10, f"requester {pid} to end")


@pytest.mark.parametrize("child_start", ["fork", "exec"])
def test_one_client_asking_for_300_requesters_is_capped(
    start_http: StartHttp, child_start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Requesters this client never connects to must not time out and make room while
    # the test asks (exec starts a fresh interpreter each: seconds on a busy machine).
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "300")
    plugin = start_http(LOOPBACK + f"child-start: {child_start}\n")
    factory = plugin.factory  # one connection to the factory: one client
    started = time.monotonic()
    given, refused = ask(factory, ATTEMPTS)
    took = time.monotonic() - started
    processes = descendants_of(plugin.pid)
    print(
        f"\n{ATTEMPTS} requesters asked for by one client ({child_start}):"
        f" {len(given)} given, FactoryFailed from #{refused[0][0] + 1} on;"
        f" {len(processes)} processes under the plugin, {rss_mib(processes)} MiB RSS in all;"
        f" {took:.1f} s"
    )
    assert len(given) == 8 and len(refused) == ATTEMPTS - 8
    assert refused[0][0] == 8
    message = refused[0][1]
    assert "8 requesters are running for this client" in message, message
    assert "max-requesters-per-client (8)" in message, message
    # the requesters, the fork server and its spare: nothing was started past the cap
    assert len(processes) <= 8 + (2 if child_start == "fork" else 0), processes
    # each requester still works, and one that has ended makes room for another
    with pytest.raises(FileIOError, match="not allowed"):
        given[0].Get("file:///etc/passwd")
    close_and_wait(given[0])
    assert factory.GetHTTPRequester() is not None
    with pytest.raises(FactoryFailed):
        factory.GetHTTPRequester()


def test_all_clients_together_are_capped(start_http: StartHttp) -> None:
    plugin = start_http(LOOPBACK + "max-requesters-per-client: 3\nmax-requesters: 5\n")
    first, second, third = plugin.factory, plugin.factory, plugin.factory
    assert len(ask(first, 4)[0]) == 3  # its own cap first
    given, refused = ask(second, 4)
    assert len(given) == 2 and [i for i, _ in refused] == [2, 3]
    message = refused[0][1]
    assert "5 requesters are running in all" in message, message
    assert "max-requesters (5)" in message, message
    with pytest.raises(FactoryFailed, match="in all"):
        third.GetHTTPRequester()
    assert len(descendants_of(plugin.pid)) <= 5 + 2
    close_and_wait(given[0])  # one ends: a third client gets its place
    assert third.GetHTTPRequester() is not None


def test_a_requester_nobody_connects_to_ends_within_the_default_timeout(
    start_http: StartHttp,
) -> None:
    assert factory.CLIENT_TIMEOUT == 5.0  # the default (this test does not set it)
    plugin = start_http()
    started = time.monotonic()
    _unused, pid = plugin.requester_with_pid()  # its SBH is never used
    wait_for(lambda: process_reaped(pid), factory.CLIENT_TIMEOUT + 3, f"requester {pid} to end")
    took = time.monotonic() - started
    print(f"\nunclaimed requester ended after {took:.1f} s")
    assert took >= factory.CLIENT_TIMEOUT - 0.5  # not before its client could come
    assert plugin.factory.GetHTTPRequester() is not None  # its place is free
