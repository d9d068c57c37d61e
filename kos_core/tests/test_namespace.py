"""The kernel's namespace tree (kos_core._kernel.namespace)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos_core._kernel.namespace import (
    ContextNode,
    LinkNode,
    Namespace,
    ServiceNode,
    join,
    split_path,
)
from kos_core.errors import (
    KosError,
    NameAlreadyBound,
    NameNotFound,
    NotAContext,
    UsageError,
)

SBH = "kos+unix:///run/kos/p1.sock#tok"


def service(owner: str | None = None, typename: str = "ToyAPI.Echo") -> ServiceNode:
    return ServiceNode(typename, SBH, owner)


@pytest.fixture
def ns() -> Namespace:
    space = Namespace()
    space.make_context("plugins")
    return space


def test_bind_lookup_list_unbind(ns: Namespace) -> None:
    entry = service("a")
    assert ns.bind("echo", entry) == "echo"
    assert ns.lookup("echo") is entry
    assert ns.lookup("/echo") is entry
    assert ns.lookup("echo/") is entry
    assert ns.list() == [("echo", "service", "ToyAPI.Echo"), ("plugins", "context", "")]
    assert ns.list("/") == ns.list("")
    assert ns.unbind("echo") is entry
    with pytest.raises(NameNotFound, match="echo is not bound"):
        ns.lookup("echo")
    assert ns.list() == [("plugins", "context", "")]


def test_bind_in_a_subcontext_returns_the_canonical_path(ns: Namespace) -> None:
    assert ns.bind("/plugins/x/", ContextNode()) == "plugins/x"
    assert ns.bind("plugins/x/svc", service()) == "plugins/x/svc"
    assert isinstance(ns.lookup("plugins/x"), ContextNode)
    assert ns.list("plugins/x") == [("svc", "service", "ToyAPI.Echo")]
    assert ns.list("plugins") == [("x", "context", "")]


def test_name_already_bound(ns: Namespace) -> None:
    ns.bind("echo", service("a"))
    with pytest.raises(NameAlreadyBound, match="echo is already bound"):
        ns.bind("echo", service("b"))
    with pytest.raises(NameAlreadyBound):
        ns.bind("plugins", ContextNode())
    assert ns.lookup("echo").owner == "a"


#: ``(method, args)`` of calls on the ``ns`` fixture that name a missing path.
NOT_FOUND_CALLS = [
    ("lookup", ("nothing",)),
    ("lookup", ("plugins/nothing",)),
    ("unbind", ("nothing",)),
    ("bind", ("missing/parent/x", service())),
    ("list", ("nothing",)),
]
#: ``(method, args)`` of calls that go through ``echo``, a service, as a context.
NOT_A_CONTEXT_CALLS = [
    ("lookup", ("echo/inner",)),
    ("bind", ("echo/inner", service())),
    ("list", ("echo",)),
    ("make_context", ("echo/deeper",)),
]


def call_ids(calls: Sequence[tuple[str, Sequence[object]]]) -> list[str]:
    return [f"{method}({args[0]})" for method, args in calls]


@pytest.mark.parametrize(("method", "args"), NOT_FOUND_CALLS, ids=call_ids(NOT_FOUND_CALLS))
def test_name_not_found(ns: Namespace, method: str, args: tuple[object, ...]) -> None:
    with pytest.raises(NameNotFound):
        getattr(ns, method)(*args)


@pytest.mark.parametrize(("method", "args"), NOT_A_CONTEXT_CALLS, ids=call_ids(NOT_A_CONTEXT_CALLS))
def test_not_a_context(ns: Namespace, method: str, args: tuple[object, ...]) -> None:
    ns.bind("echo", service())
    with pytest.raises(NotAContext):
        getattr(ns, method)(*args)


def test_top_context_cannot_be_bound_or_unbound(ns: Namespace) -> None:
    for path in ("", "/", "//"):
        with pytest.raises(UsageError):
            ns.bind(path, service())
        with pytest.raises(UsageError):
            ns.unbind(path)
    assert isinstance(ns.lookup(""), ContextNode)


def test_links_are_followed_in_the_middle_and_at_the_end(ns: Namespace) -> None:
    ns.make_context("plugins/p")
    ns.bind("plugins/p/kos", LinkNode(""))
    ns.bind("echo", service())
    ns.bind("deep", ContextNode())
    ns.bind("deep/svc", service(typename="ToyAPI.Counter"))
    ns.bind("to-deep", LinkNode("deep"))
    ns.bind("to-svc", LinkNode("/deep/svc"))

    # the end
    assert isinstance(ns.lookup("plugins/p/kos"), ContextNode)
    assert ns.list("plugins/p/kos") == ns.list("")
    assert ns.lookup("to-svc").typename == "ToyAPI.Counter"  # type: ignore[union-attr]
    # the middle
    assert ns.lookup("plugins/p/kos/echo") is ns.lookup("echo")
    assert ns.lookup("plugins/p/kos/to-deep/svc") is ns.lookup("deep/svc")
    assert ns.lookup("plugins/p/kos/plugins/p/kos/to-svc") is ns.lookup("deep/svc")
    # the listing shows links as links
    assert ("kos", "link", "/") in ns.list("plugins/p")
    assert ("to-deep", "link", "/deep") in ns.list()
    # through a link to a service is not a context
    with pytest.raises(NotAContext):
        ns.lookup("to-svc/more")


def test_unbind_does_not_follow_a_final_link(ns: Namespace) -> None:
    ns.bind("echo", service())
    ns.bind("alias", LinkNode("echo"))
    removed = ns.unbind("alias")
    assert isinstance(removed, LinkNode)
    assert isinstance(ns.lookup("echo"), ServiceNode)


def test_dangling_link_is_name_not_found(ns: Namespace) -> None:
    ns.bind("dangling", LinkNode("gone/away"))
    with pytest.raises(NameNotFound):
        ns.lookup("dangling")
    with pytest.raises(NameNotFound):
        ns.lookup("dangling/x")


@pytest.mark.parametrize(
    "links",
    [
        {"self": "self"},
        {"a": "b", "b": "a"},
        {"a": "b", "b": "c", "c": "a"},
        {"grow": "grow/grow"},
    ],
)
def test_link_loops_end_with_an_error(ns: Namespace, links: dict[str, str]) -> None:
    for name, target in links.items():
        ns.bind(name, LinkNode(target))
    for name in links:
        with pytest.raises(KosError, match="too many links"):
            ns.lookup(name)
        with pytest.raises(KosError):
            ns.lookup(f"{name}/x")
        with pytest.raises(KosError):
            ns.list(name)


def test_remove_owner_removes_only_that_owners_entries(ns: Namespace) -> None:
    ns.make_context("plugins/a", owner="a")
    ns.bind("plugins/a/kos", LinkNode("", "a"))
    ns.bind("a-svc", service("a"))
    ns.bind("b-svc", service("b"))
    ns.make_context("plugins/b", owner="b")
    ns.bind("plugins/b/kos", LinkNode("", "b"))
    ns.bind("plugins/b/a-inside-b", service("a"))
    ns.bind("unowned", service())

    removed = ns.remove_owner("a")
    assert sorted(removed) == ["a-svc", "plugins/a", "plugins/b/a-inside-b"]
    assert [n for n, _, _ in ns.list()] == ["b-svc", "plugins", "unowned"]
    assert ns.list("plugins") == [("b", "context", "")]
    assert ns.list("plugins/b") == [("kos", "link", "/")]
    assert ns.remove_owner("a") == []
    assert ns.remove_owner("nobody") == []


def test_unbind_with_owner_refuses_others_entries(ns: Namespace) -> None:
    ns.bind("mine", service("a"))
    ns.bind("theirs", service("b"))
    with pytest.raises(NameNotFound):
        ns.unbind("theirs", owner="a")
    assert isinstance(ns.lookup("theirs"), ServiceNode)
    ns.unbind("mine", owner="a")
    with pytest.raises(NameNotFound):
        ns.lookup("mine")


def test_services_of(ns: Namespace) -> None:
    ns.bind("x", service("a"))
    ns.make_context("plugins/a", owner="a")
    ns.bind("plugins/a/y", service("a"))
    ns.bind("plugins/a/kos", LinkNode("", "a"))
    ns.bind("z", service("b"))
    assert ns.services_of("a") == ["plugins/a/y", "x"]
    assert ns.services_of("b") == ["z"]
    assert ns.services_of("c") == []


def test_make_context_is_idempotent_and_creates_parents(ns: Namespace) -> None:
    first = ns.make_context("a/b/c")
    assert ns.make_context("/a/b/c/") is first
    assert ns.list("a") == [("b", "context", "")]


@pytest.mark.parametrize(
    "path",
    [
        "a//b",
        ".hidden",
        "a/../b",
        "a/./b",
        "sp ace",
        "tab\tname",
        "new\nline",
        "x" * 129,
        "/".join(["d"] * 33),
        "caf\u00e9",
        "a\\b",
        "nul\x00",
        "star*",
        "q?",
        "#frag",
    ],
)
def test_bad_path_components_are_usage_errors(ns: Namespace, path: str) -> None:
    with pytest.raises(UsageError):
        split_path(path)
    with pytest.raises(UsageError):
        ns.lookup(path)
    with pytest.raises(UsageError):
        ns.bind(path, service())
    with pytest.raises(UsageError):
        ns.unbind(path)
    with pytest.raises(UsageError):
        ns.list(path)


@pytest.mark.parametrize("path", [None, 3, b"bytes", ["a"]])
def test_non_string_paths_are_usage_errors(ns: Namespace, path: object) -> None:
    with pytest.raises(UsageError):
        ns.lookup(path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("", []),
        ("/", []),
        ("a", ["a"]),
        ("/a/b/", ["a", "b"]),
        ("x" * 128, ["x" * 128]),
        ("/".join(["d"] * 32), ["d"] * 32),
        ("a.b-c_d@e+f:g=h,i~j", ["a.b-c_d@e+f:g=h,i~j"]),
    ],
)
def test_good_paths(path: str, parts: list[str]) -> None:
    assert split_path(path) == parts
    assert join(parts) == "/".join(parts)


def test_concurrent_binds_of_one_name_have_one_winner(ns: Namespace) -> None:
    winners: list[int] = []
    losers: list[int] = []
    barrier = threading.Barrier(16)

    def bind(n: int) -> None:
        barrier.wait()
        try:
            ns.bind("contested", service(str(n)))
            winners.append(n)
        except NameAlreadyBound:
            losers.append(n)

    threads = [threading.Thread(target=bind, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(winners) == 1
    assert len(losers) == 15
    assert ns.lookup("contested").owner == str(winners[0])


# -- property: every operation succeeds or raises a KosError ------------------------------

component = st.one_of(
    st.sampled_from(["a", "b", "plugins", "kos", "x.y", "-", "..", ".", "", " ", "é", "a b"]),
    st.text(max_size=6),
)
paths = st.builds(
    lambda parts, lead: ("/" if lead else "") + "/".join(parts),
    st.lists(component, max_size=5),
    st.booleans(),
)
operation = st.tuples(
    st.sampled_from(["bind-service", "bind-context", "bind-link", "lookup", "list", "unbind"]),
    paths,
    paths,
    st.sampled_from(["a", "b", None]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=25), st.sampled_from(["a", "b", "c"]))
def test_operations_succeed_or_raise_kos_errors(
    ops: list[tuple[str, str, str, str | None]], purge: str
) -> None:
    space = Namespace()
    for op, path, other, owner in ops:
        try:
            if op == "bind-service":
                assert space.bind(path, service(owner)) == join(split_path(path))
            elif op == "bind-context":
                space.bind(path, ContextNode(owner=owner))
            elif op == "bind-link":
                space.bind(path, LinkNode(other, owner))
            elif op == "lookup":
                assert isinstance(space.lookup(path), ServiceNode | ContextNode)
            elif op == "list":
                for name, kind, _ in space.list(path):
                    assert kind in ("service", "context", "link")
                    assert split_path(name) == [name]
            else:
                space.unbind(path, owner=owner)
        except KosError:
            pass
    space.remove_owner(purge)
    assert space.services_of(purge) == []
    space.list("")


def test_a_mistyped_name_gets_did_you_mean(ns: Namespace) -> None:
    ns.bind("bitbucket", service())
    with pytest.raises(NameNotFound, match=r"bitbuckt is not bound \(did you mean 'bitbucket'\?\)"):
        ns.lookup("bitbuckt")
    with pytest.raises(NameNotFound) as unrelated:
        ns.lookup("zzzz")
    assert "did you mean" not in str(unrelated.value)


def test_binding_under_a_missing_context_says_so(ns: Namespace) -> None:
    with pytest.raises(NameNotFound) as caught:
        ns.bind("bad/name", service())
    message = str(caught.value)
    assert "cannot bind or unbind bad/name: the context bad does not exist" in message
    assert "bound at the top" in message
