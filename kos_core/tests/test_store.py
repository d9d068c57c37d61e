"""The seam behind the kernel's namespace (kos_core._kernel.store): the in-memory tree
is a :class:`Store`, and the kernel's operations behave through the protocol as the
kernel relies on them.
"""

from __future__ import annotations

import pytest

from kos_core._kernel.core import KernelCore
from kos_core._kernel.namespace import Namespace
from kos_core._kernel.setup_files import SetupConfig
from kos_core._kernel.store import ContextNode, LinkNode, ServiceNode, Store
from kos_core.errors import NameAlreadyBound, NameNotFound, NotAContext, UsageError
from kos_core.testing import KosEnv

SBH = "kos+unix:///run/kos/p1.sock#tok"


def as_store(store: Store) -> Store:
    """Typed ``Store``: mypy checks that what is passed implements the protocol."""
    return store


@pytest.fixture
def store() -> Store:
    return as_store(Namespace())


def test_the_in_memory_tree_binds_looks_up_and_lists_through_the_protocol(store: Store) -> None:
    store.make_context("plugins/bb", owner="plugin:bb")
    assert store.bind("/plugins/bb/svc", ServiceNode("ToyAPI.Echo", SBH, "plugin:bb")) == (
        "plugins/bb/svc"
    )
    store.bind("plugins/bb/top", LinkNode(""))
    found = store.lookup("plugins/bb/svc")
    assert isinstance(found, ServiceNode) and found.sbh == SBH
    assert isinstance(store.lookup("plugins/bb/top"), ContextNode)  # a link is followed
    assert store.list("plugins/bb") == [
        ("svc", "service", "ToyAPI.Echo"),
        ("top", "link", "/"),
    ]
    assert store.services_of("plugin:bb") == ["plugins/bb/svc"]


def test_the_errors_the_kernel_maps_come_through_the_protocol(store: Store) -> None:
    store.bind("svc", ServiceNode("ToyAPI.Echo", SBH, "a"))
    with pytest.raises(NameAlreadyBound):
        store.bind("svc", ServiceNode("ToyAPI.Echo", SBH, "b"))
    with pytest.raises(NameNotFound):
        store.lookup("nothing")
    with pytest.raises(NotAContext):
        store.list("svc")
    with pytest.raises(UsageError):
        store.lookup("bad//.name")
    with pytest.raises(NameNotFound):
        store.unbind("svc", owner="b")  # not b's to unbind


def test_unbinding_and_removing_an_owner_log_events(store: Store) -> None:
    store.make_context("plugins")
    store.bind("plugins/one", ServiceNode("ToyAPI.Echo", SBH, "x"))
    store.bind("plugins/two", ServiceNode("ToyAPI.Echo", SBH, "x"))
    removed = store.unbind("plugins/one", owner="x")
    assert isinstance(removed, ServiceNode)
    assert store.remove_owner("x") == ["plugins/two"]
    assert store.services_of("x") == []
    _, events = store.events.since(0, 0.0, lambda event: True)
    assert [(kind, path) for _, kind, path, _ in events] == [
        ("bind", "plugins/one"),
        ("bind", "plugins/two"),
        ("unbind", "plugins/one"),
        ("unbind", "plugins/two"),
    ]


def test_the_kernel_keeps_its_names_in_the_store_it_is_given(env: KosEnv) -> None:
    given = Namespace()
    core = KernelCore(env.kernel, installed={}, setup=SetupConfig((), {}), store=given)
    assert core.namespace is given
    assert core.supervisor.namespace is given and core.station.namespace is given
    assert given.list("") == [("plugins", "context", "")]  # made by the kernel
