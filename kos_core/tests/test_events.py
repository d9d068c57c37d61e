"""The namespace's event log: bounded, numbered, filtered per watcher's rights."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from kos_core._kernel import access
from kos_core._kernel.access import Grant
from kos_core._kernel.events import EventLog
from kos_core._kernel.namespace import ContextNode, Namespace, ServiceNode
from kos_core._kernel.servant import KernelServant
from kos_core.errors import PermissionDenied

SBH = "kos+unix:///tmp/x.sock#" + "x" * 32


def test_a_watcher_that_falls_behind_gets_a_lost_marker_and_memory_stays_bounded() -> None:
    log = EventLog(keep=8)
    for i in range(20):
        log.add("bind", f"s{i}", "ToyAPI.Echo")
    seq, events = log.since(0, 0.0)
    assert seq == 20
    assert events[0] == (12, "lost", "", "")  # 1..12 were dropped
    assert [e[0] for e in events[1:]] == list(range(13, 21))
    assert len(log._events) == 8
    assert log.since(20, 0.0) == (20, [])  # nothing new, no wait
    assert log.since(-1, 0.0) == (20, [])  # "from now"


def test_a_waiting_watcher_wakes_at_once_and_close_releases_it() -> None:
    log = EventLog()
    adder = threading.Timer(0.0, lambda: log.add("bind", "a", "ToyAPI.Echo"))
    started = time.monotonic()
    adder.start()
    seq, events = log.since(0, 5.0)
    assert time.monotonic() - started < 1.0
    assert (seq, events) == (1, [(1, "bind", "a", "ToyAPI.Echo")])
    adder.join()
    closer = threading.Timer(0.0, log.close)
    closer.start()
    assert log.since(1, 5.0) == (1, [])
    assert time.monotonic() - started < 2.0
    closer.join()


def test_the_namespace_logs_binds_and_every_service_an_unbind_takes_away() -> None:
    ns = Namespace()
    ns.make_context("plugins")
    ns.make_context("plugins/p", owner="plugin:p")
    ns.bind("plugins/p/svc", ServiceNode("ToyAPI.Echo", SBH, "conn:2"))
    ns.bind("top", ServiceNode("ToyAPI.Echo", SBH, "plugin:p"))
    ns.bind("ctx", ContextNode(owner="conn:3"))  # contexts and links are not events
    ns.unbind("top", owner="plugin:p")
    assert ns.remove_owner("plugin:p") == ["plugins/p"]
    _, events = ns.events.since(0, 0.0)
    assert [e[1:3] for e in events] == [
        ("bind", "plugins/p/svc"),
        ("bind", "top"),
        ("unbind", "top"),
        ("unbind", "plugins/p/svc"),  # gone with its context
    ]


def test_events_are_only_those_under_the_path_that_the_credential_may_look_up() -> None:
    ns = Namespace()
    kernel = cast(Any, SimpleNamespace(namespace=ns, world=None))
    grant = Grant(access.KP, "k1", may_look=lambda parts: parts[:1] != ["secret"])
    session = KernelServant(kernel, grant)
    for path in ("open", "secret", "plugins/a"):
        ns.make_context("plugins")
        ns.bind(path, ServiceNode("ToyAPI.Echo", SBH, "o"))
    _, events = session.Events("", 0, 0.0)
    assert [e[2] for e in events] == ["open", "plugins/a"]
    _, events = session.Events("plugins", 0, 0.0)
    assert [e[2] for e in events] == ["plugins/a"]
    with pytest.raises(PermissionDenied):
        session.Events("secret", 0, 0.0)
