"""The world as one kernel sees it: a copy of everything under the prefix, kept by a
watch, that ``world/...`` lookups are answered from without asking etcd.

A thread lists the prefix (learning the revision), then watches from the next
revision. When the watch is cancelled (history compacted past it) or breaks, the
thread lists again and watches from the new revision. While there is no live watch
(etcd unreachable, or the kernel's keep-alive fails), the cache is *unavailable*:
lookups raise :class:`~kos_core.errors.WorldUnavailable` at once rather than answer
from a copy that may be stale.

What a lookup may see is checked (:mod:`.layout`): a value kos did not write is
logged once and ignored; a name counts only while its kernel's record is there, held
by the same lease, and its SBH points at that kernel's host; a record that claims
an address another kernel holds is ignored (the older one keeps it).

A watch through etcd's JSON gateway has been known to fall silent without ending
(etcd issues 8237 and 8401). Every :data:`CHECK` seconds the cache reads the prefix's
newest modification and key count (one small read, though etcd scans the prefix's
keys to answer it); if it still lacks a change it lacked at the previous check, the
watch is closed and the thread lists again.

Each name that appears, changes or goes is reported to ``on_change(kind, kernel, path,
typename)`` (kind ``bind`` or ``unbind``) once the cache holds it, outside the cache's
lock: the kernel adds these to its event log, so ``kos watch world`` shows them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kos_core._net import wire
from kos_core._world.etcd import Etcd, KeyValue, Watch
from kos_core._world.layout import BadValue, KernelRecord, Layout, Name, parse_name, parse_record
from kos_core.errors import NameNotFound, NotAContext, WorldUnavailable

log = logging.getLogger("kos.world")

#: how long to wait before listing again after etcd failed to answer
RETRY = 0.25
#: seconds between two checks that the watch still follows etcd (a silent watch is
#: replaced within twice this)
CHECK = 10.0

#: ``on_change(kind, kernel, path, typename)``: a world name was bound or unbound
OnChange = Callable[[str, str, str, str], None]
#: one change: (kind, kernel, path, typename)
_Change = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Record:
    record: KernelRecord
    lease: int
    create_revision: int


@dataclass(frozen=True)
class _Entry:
    name: Name
    lease: int
    host: str


class WorldCache:
    """The watched copy of one world."""

    def __init__(
        self,
        etcd: Etcd,
        layout: Layout,
        ca_fingerprint: str,
        on_change: OnChange | None = None,
    ) -> None:
        self._etcd = etcd
        self._on_change = on_change
        self._layout = layout
        self._ca = ca_fingerprint
        self._lock = threading.Lock()
        self._kernels: dict[str, _Record] = {}
        self._names: dict[str, dict[str, _Entry]] = {}  # kernel -> path -> entry
        self._live = False  # a watch is running on a fresh list
        self._reachable = True  # the membership's keep-alive answers
        self._watch: Watch | None = None
        self._keys: set[str] = set()  # every key under the prefix, as the watch says
        self._revision = 0  # the store's revision the cache has caught up with
        self._behind: tuple[int, int] | None = None  # what a check found missing
        self._stopped = threading.Event()
        #: events applied so far (benchmarks count them)
        self.events = 0
        self._thread = threading.Thread(target=self._loop, name="kos-world-watch", daemon=True)
        self._checker = threading.Thread(
            target=self._check_loop, name="kos-world-check", daemon=True
        )

    def start(self) -> None:
        """Start listing and watching, and checking that the watch keeps up."""
        self._thread.start()
        self._checker.start()

    def wait_live(self, timeout: float) -> bool:
        """Wait until the cache is live (for the first lookups after joining)."""
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            if self._stopped.wait(0.02):
                break
        return self._live

    def set_reachable(self, reachable: bool) -> None:
        """The membership's view of etcd: when its keep-alive fails, the watch may be
        silently cut off (a partition), so lookups fail until a new list is done.
        """
        with self._lock:
            self._reachable = reachable
            watch = self._watch
            # a watch made while the keep-alive was failing is live once it answers
            self._live = reachable and watch is not None
        if not reachable and watch is not None:
            watch.close()

    def stop(self) -> None:
        """Stop watching."""
        self._stopped.set()
        with self._lock:
            watch = self._watch
        if watch is not None:
            watch.close()

    # -- the thread -----------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                revision, kvs = self._etcd.range_prefix(self._layout.prefix)
                self._load(kvs, revision)
                watch = self._etcd.watch(self._layout.prefix, revision + 1)
                with self._lock:
                    self._watch = watch
                    self._live = self._reachable
                if self._stopped.is_set():
                    watch.close()
                for batch in watch:
                    if batch.cancelled:
                        log.info(
                            "world: watch cancelled (%s); listing again",
                            f"compacted to {batch.compacted_to}"
                            if batch.compacted_to
                            else batch.reason or "no reason given",
                        )
                        watch.close()
                        break
                    self._apply(batch.events, batch.revision)
            except WorldUnavailable as exc:
                if not self._stopped.is_set():
                    log.debug("world: watch ended (%s)", exc)
            except Exception:  # a bug must not leave a live-looking cache that never changes
                log.exception("world: the watch failed; listing again")
            with self._lock:
                self._live = False
                ended, self._watch = self._watch, None
            if ended is not None:
                ended.close()
            self._stopped.wait(RETRY)

    def _check_loop(self) -> None:
        while not self._stopped.wait(CHECK):
            try:
                self.check_progress()
            except WorldUnavailable as exc:
                log.debug("world: cannot check the watch (%s)", exc)

    def check_progress(self) -> bool:
        """Compare the cache with etcd's newest change under the prefix; close a watch
        that has missed, since the previous check, what it missed then. True if it did.
        """
        newest, count = self._etcd.newest(self._layout.prefix)
        with self._lock:
            if not self._live:
                self._behind = None
                return False
            behind = (
                (newest, self.events)
                if (newest > self._revision or count != len(self._keys))
                else None
            )
            previous, self._behind = self._behind, behind
            stalled = (
                behind is not None
                and previous is not None
                and (self._revision < previous[0] or self.events == previous[1])
            )
            watch = self._watch if stalled else None
            if stalled:
                self._behind = None
        if watch is not None:
            log.warning(
                "world: the watch fell silent (etcd has revision %d and %d keys, the cache"
                " revision %d and %d keys); listing again",
                newest, count, self._revision, len(self._keys),
            )  # fmt: skip
            watch.close()
        return watch is not None

    def _load(self, kvs: list[KeyValue], revision: int) -> None:
        with self._lock:
            before = self._typenames()
            self._revision = revision
            self._keys = {kv.key for kv in kvs}
            self._kernels, self._names = {}, {}
            for kv in kvs:
                self._put(kv)
            after = self._typenames()
        changes: list[_Change] = [
            ("unbind", kernel, path, typename)
            for (kernel, path), typename in before.items()
            if after.get((kernel, path)) != typename
        ]
        changes += [
            ("bind", kernel, path, typename)
            for (kernel, path), typename in after.items()
            if before.get((kernel, path)) != typename
        ]
        self._report(changes)

    def _apply(self, events: list[tuple[bool, KeyValue]], revision: int = 0) -> None:
        changes: list[_Change] = []
        with self._lock:
            for deleted, kv in events:
                self.events += 1
                if deleted:
                    self._keys.discard(kv.key)
                    self._delete(kv.key, changes)
                else:
                    self._keys.add(kv.key)
                    self._put(kv, changes)
                self._revision = max(self._revision, kv.mod_revision)
            self._revision = max(self._revision, revision)
        self._report(changes)

    def _typenames(self) -> dict[tuple[str, str], str]:
        return {
            (kernel, path): entry.name.typename
            for kernel, names in self._names.items()
            for path, entry in names.items()
        }

    def _report(self, changes: list[_Change]) -> None:
        if self._on_change is None:
            return
        for change in changes:
            try:
                self._on_change(*change)
            except Exception:  # a watcher's trouble must not stop the cache
                log.exception("world: reporting %s failed", change)

    def _put(self, kv: KeyValue, changes: list[_Change] | None = None) -> None:
        try:
            kind, kernel, path = self._layout.parse_key(kv.key)
            if kind == "kernel":
                record = parse_record(kernel, kv.value)
                if record.ca != self._ca:
                    raise BadValue(f"kernel {kernel!r} was given another world authority")
                held = self._address_holder(record.address, kernel)
                if held is not None and held.create_revision < kv.create_revision:
                    raise BadValue(
                        f"kernel {kernel!r} claims address {record.address}, which"
                        f" kernel {held.record.name!r} holds"
                    )
                self._kernels[kernel] = _Record(record, kv.lease, kv.create_revision)
            else:
                name = parse_name(kv.value)
                address, _ = wire.parse_sbh(name.sbh)
                assert address.host is not None
                held = self._kernels.get(kernel)
                if held is not None and held.lease != kv.lease:
                    raise BadValue(f"a name of kernel {kernel!r} not held by its lease")
                if held is not None and held.record.listen_host != address.host:
                    raise BadValue(f"a name of kernel {kernel!r} served from another host")
                if address.kernel not in (None, kernel):
                    raise BadValue(f"a name of kernel {kernel!r} naming kernel {address.kernel!r}")
                names = self._names.setdefault(kernel, {})
                old = names.get(path)
                names[path] = _Entry(name, kv.lease, address.host)
                if changes is not None and (old is None or old.name != name):
                    if old is not None:
                        changes.append(("unbind", kernel, path, old.name.typename))
                    changes.append(("bind", kernel, path, name.typename))
        except BadValue as exc:
            log.warning("world: ignoring %s in etcd: %s", _printable(kv.key), exc)
            self._delete(kv.key, changes)

    def _address_holder(self, address: str, kernel: str) -> _Record | None:
        for other, held in self._kernels.items():
            if other != kernel and held.record.address == address:
                return held
        return None

    def _delete(self, key: str, changes: list[_Change] | None = None) -> None:
        try:
            kind, kernel, path = self._layout.parse_key(key)
        except BadValue:
            return
        if kind == "kernel":
            self._kernels.pop(kernel, None)
        else:
            old = self._names.get(kernel, {}).pop(path, None)
            if old is not None and changes is not None:
                changes.append(("unbind", kernel, path, old.name.typename))

    # -- lookups ----------------------------------------------------------------------

    def _check_live(self) -> None:
        if not self._live:
            raise WorldUnavailable(
                f"the world's etcd ({self._etcd.url}) cannot be reached; local names still work"
            )

    def _valid(self, kernel: str) -> tuple[KernelRecord, dict[str, Name]] | None:
        held = self._kernels.get(kernel)
        if held is None:
            return None
        host = held.record.listen_host
        names = {
            path: entry.name
            for path, entry in self._names.get(kernel, {}).items()
            if entry.lease == held.lease and entry.host == host
        }
        return held.record, names

    def kernels(self) -> dict[str, KernelRecord]:
        """Every kernel of the world (name -> record)."""
        with self._lock:
            self._check_live()
            return {name: held.record for name, held in sorted(self._kernels.items())}

    def names(self, kernel: str) -> dict[str, Name]:
        """The names ``kernel`` exports (path -> name); empty if it is not in the world."""
        with self._lock:
            self._check_live()
            valid = self._valid(kernel)
            return dict(sorted(valid[1].items())) if valid is not None else {}

    def lookup(self, parts: list[str]) -> Name | None:
        """The name at ``world/<parts>``, or ``None`` if it is a context; raise
        :class:`NameNotFound` if there is nothing there.
        """
        with self._lock:
            self._check_live()
            if not parts:
                return None
            valid = self._valid(parts[0])
            where = "/".join(["world", *parts])
            if valid is None:
                raise NameNotFound(f"{where} is not bound (no kernel {parts[0]!r} in the world)")
            path = "/".join(parts[1:])
            if not path:
                return None
            if path in valid[1]:
                return valid[1][path]
            if any(p.startswith(path + "/") for p in valid[1]):
                return None
            for known in valid[1]:
                if path.startswith(known + "/"):
                    raise NotAContext(f"world/{parts[0]}/{known} is not a context")
            raise NameNotFound(f"{where} is not bound")

    def list(self, parts: list[str]) -> list[tuple[str, str, str]]:
        """``(name, kind, detail)`` of the context ``world/<parts>``."""
        if not parts:
            return [(name, "context", "") for name in self.kernels()]
        if self.lookup(parts) is not None:
            raise NotAContext(f"world/{'/'.join(parts)} is a service, not a context")
        prefix = "/".join(parts[1:])
        out: dict[str, tuple[str, str, str]] = {}
        for path, name in self.names(parts[0]).items():
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            head, _, tail = rest.partition("/")
            out[head] = (head, "context", "") if tail else (head, "service", name.typename)
        return [out[key] for key in sorted(out)]


def _printable(key: str) -> str:
    text = key if len(key) <= 200 else key[:200] + "..."
    return repr(text)
