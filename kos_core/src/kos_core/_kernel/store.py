"""What the kernel needs of the store behind its namespace: the :class:`Store` protocol,
and the entries a store holds.

The kernel (:mod:`.core`, :mod:`.servant`, :mod:`.supervisor`, the station, the world
member) speaks to its namespace only through :class:`Store`. Today the store is the
in-memory tree of :mod:`.namespace`; another one (kept in etcd, say) implements the
same operations, with the same errors (:class:`~kos_core.errors.NameNotFound`,
:class:`~kos_core.errors.NameAlreadyBound`, :class:`~kos_core.errors.NotAContext`,
:class:`~kos_core.errors.UsageError` for a malformed path), and is handed to the kernel
in its place.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from kos_core._kernel.events import EventLog

__all__ = ["ContextNode", "Entry", "LinkNode", "ServiceNode", "Store"]


@dataclass
class ServiceNode:
    """A bound service: its interface name, its SBH, and who bound it."""

    typename: str
    sbh: str
    owner: str | None = None


@dataclass
class LinkNode:
    """A name that stands for another path."""

    target: str
    owner: str | None = None


@dataclass
class ContextNode:
    """A context: named entries."""

    entries: dict[str, Entry] = field(default_factory=dict)
    owner: str | None = None


#: what a name is bound to
Entry: TypeAlias = ServiceNode | LinkNode | ContextNode


class Store(Protocol):
    """A namespace: contexts of named entries, addressed by slash-separated paths
    (``plugins/bitbucket/kos``; a leading slash means the same), each entry tagged with
    the owner that made it. Safe to call from any thread.
    """

    @property
    def events(self) -> EventLog:
        """Every service bound and unbound, in order, for watchers."""

    def lookup(self, path: str) -> ServiceNode | ContextNode:
        """The service or context at ``path``, links followed."""

    def list(self, path: str = "") -> builtins.list[tuple[str, str, str]]:
        """``(name, kind, detail)`` for each entry of the context at ``path``, sorted by
        name; kind is ``service`` (detail: interface name), ``context`` (detail: "") or
        ``link`` (detail: ``/`` and its target).
        """

    def bind(self, path: str, entry: Entry) -> str:
        """Bind ``entry`` at ``path`` (its context must exist); return the canonical path."""

    def make_context(self, path: str, owner: str | None = None) -> ContextNode:
        """The context at ``path``, made (with missing parents, owned by ``owner``) if
        there is none.
        """

    def unbind(self, path: str, owner: str | None = None) -> Entry:
        """Remove and return the entry at ``path`` (a final link is not followed); with
        ``owner``, only an entry ``owner`` made.
        """

    def remove_owner(self, owner: str) -> builtins.list[str]:
        """Remove every entry ``owner`` made; return their paths."""

    def services_of(self, owner: str) -> builtins.list[str]:
        """The paths of the services ``owner`` has bound, sorted."""
