"""The kernel's namespace: a tree of contexts whose leaves describe services.

Paths are slash-separated (``plugins/bitbucket/kos``); a leading slash is allowed
and means the same. A *service* entry holds the service's interface name and its
SBH; a *link* entry names another path (``plugins/<name>/kos`` links to the top
context). Every entry may have an owner (a plugin name) so that everything a
plugin bound disappears with it.
"""

from __future__ import annotations

import builtins
import re
import threading

from kos_core._hints import did_you_mean
from kos_core._kernel.events import EventLog
from kos_core._kernel.store import ContextNode, Entry, LinkNode, ServiceNode
from kos_core.errors import NameAlreadyBound, NameNotFound, NotAContext, UsageError

__all__ = ["ContextNode", "LinkNode", "Namespace", "ServiceNode", "join", "split_path"]

_COMPONENT = re.compile(r"^[A-Za-z0-9_@+:=,~-][A-Za-z0-9_.@+:=,~-]{0,127}$")
_MAX_DEPTH = 32
_MAX_LINKS = 16


def split_path(path: str) -> list[str]:
    """Split and check a path; raise :class:`UsageError` on a malformed one."""
    if not isinstance(path, str):
        raise UsageError("a path must be a string")
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) > _MAX_DEPTH:
        raise UsageError(f"path too deep ({len(parts)} components, at most {_MAX_DEPTH})")
    for part in parts:
        if not _COMPONENT.match(part):
            raise UsageError(
                f"bad name {part!r} in path {path!r}: use letters, digits and _.@+:=,~- "
                "(not starting with '.')"
            )
    return parts


def join(parts: list[str]) -> str:
    """The canonical form of a split path."""
    return "/".join(parts)


class Namespace:
    """A thread-safe namespace tree, in memory: the kernel's :class:`~.store.Store`."""

    def __init__(self) -> None:
        self._root = ContextNode()
        self._lock = threading.RLock()
        #: every service bound and unbound, for watchers
        self.events = EventLog()

    def _walk(self, parts: list[str], follow_last: bool = True) -> Entry:
        node: Entry = self._root
        hops = 0
        queue = list(parts)
        done: list[str] = []
        while queue:
            name = queue.pop(0)
            if isinstance(node, LinkNode):
                raise AssertionError("unreachable")
            if not isinstance(node, ContextNode):
                raise NotAContext(f"{join(done) or '/'} is not a context")
            child = node.entries.get(name)
            if child is None:
                hint = did_you_mean(name, node.entries)
                raise NameNotFound(f"{join([*done, name])} is not bound{hint}")
            if isinstance(child, LinkNode) and (queue or follow_last):
                hops += 1
                if hops > _MAX_LINKS:
                    raise NotAContext(f"too many links while resolving {join(parts)}")
                queue = split_path(child.target) + queue
                node, done = self._root, []
                continue
            done.append(name)
            node = child
        return node

    def lookup(self, path: str) -> ServiceNode | ContextNode:
        """The service or context at ``path`` (links followed)."""
        with self._lock:
            node = self._walk(split_path(path))
            assert not isinstance(node, LinkNode)
            return node

    def list(self, path: str = "") -> builtins.list[tuple[str, str, str]]:
        """``(name, kind, detail)`` for each entry of the context at ``path``, sorted.

        kind is ``service`` (detail: interface name), ``context`` or ``link`` (detail: target).
        """
        with self._lock:
            node = self._walk(split_path(path))
            if not isinstance(node, ContextNode):
                raise NotAContext(f"{path} is a service, not a context")
            out = []
            for name, entry in sorted(node.entries.items()):
                if isinstance(entry, ServiceNode):
                    out.append((name, "service", entry.typename))
                elif isinstance(entry, LinkNode):
                    out.append((name, "link", "/" + entry.target))
                else:
                    out.append((name, "context", ""))
            return out

    def _parent(self, path: str) -> tuple[ContextNode, str, builtins.list[str]]:
        parts = split_path(path)
        if not parts:
            raise UsageError("the top context cannot be bound or unbound")
        try:
            parent = self._walk(parts[:-1])
        except NameNotFound as exc:
            raise NameNotFound(
                f"cannot bind or unbind {join(parts)}: the context {join(parts[:-1])} does not"
                f" exist ({exc}); a name without '/' is bound at the top"
            ) from None
        if not isinstance(parent, ContextNode):
            raise NotAContext(f"{join(parts[:-1])} is not a context")
        return parent, parts[-1], parts

    def bind(self, path: str, entry: Entry) -> str:
        """Bind ``entry`` at ``path``; the parent context must exist. Returns the canonical path."""
        with self._lock:
            parent, name, parts = self._parent(path)
            if name in parent.entries:
                raise NameAlreadyBound(f"{join(parts)} is already bound")
            parent.entries[name] = entry
            if isinstance(entry, ServiceNode):
                self.events.add("bind", join(parts), entry.typename)
            return join(parts)

    def make_context(self, path: str, owner: str | None = None) -> ContextNode:
        """Return the context at ``path``, creating it (and missing parents) if needed."""
        with self._lock:
            node = self._root
            for name in split_path(path):
                child = node.entries.get(name)
                if child is None:
                    child = node.entries[name] = ContextNode(owner=owner)
                if not isinstance(child, ContextNode):
                    raise NotAContext(f"{name} in {path} is not a context")
                node = child
            return node

    def unbind(self, path: str, owner: str | None = None) -> Entry:
        """Remove the entry at ``path`` (not following a final link).

        With ``owner`` given, refuse (as :class:`NameNotFound`) entries someone else owns.
        """
        with self._lock:
            parent, name, parts = self._parent(path)
            entry = parent.entries.get(name)
            if entry is None or (owner is not None and entry.owner != owner):
                raise NameNotFound(f"{join(parts)} is not bound")
            del parent.entries[name]
            self._gone(entry, parts)
            return entry

    def remove_owner(self, owner: str) -> builtins.list[str]:
        """Remove every entry ``owner`` made; return their paths."""
        removed: builtins.list[str] = []
        with self._lock:
            self._remove_owner(self._root, [], owner, removed)
        return removed

    def _remove_owner(
        self, node: ContextNode, prefix: builtins.list[str], owner: str, removed: builtins.list[str]
    ) -> None:
        for name, entry in list(node.entries.items()):
            if entry.owner == owner:
                del node.entries[name]
                removed.append(join([*prefix, name]))
                self._gone(entry, [*prefix, name])
            elif isinstance(entry, ContextNode):
                self._remove_owner(entry, [*prefix, name], owner, removed)

    def _gone(self, entry: Entry, parts: builtins.list[str]) -> None:
        """Log an unbind event for each service ``entry`` (at ``parts``) took away."""
        if isinstance(entry, ServiceNode):
            self.events.add("unbind", join(parts), entry.typename)
        elif isinstance(entry, ContextNode):
            for name, child in sorted(entry.entries.items()):
                self._gone(child, [*parts, name])

    def services_of(self, owner: str) -> builtins.list[str]:
        """Paths of the services ``owner`` has bound."""
        found: builtins.list[str] = []
        with self._lock:
            stack: builtins.list[tuple[ContextNode, builtins.list[str]]] = [(self._root, [])]
            while stack:
                node, prefix = stack.pop()
                for name, entry in node.entries.items():
                    if isinstance(entry, ServiceNode) and entry.owner == owner:
                        found.append(join([*prefix, name]))
                    elif isinstance(entry, ContextNode):
                        stack.append((entry, [*prefix, name]))
        return sorted(found)
