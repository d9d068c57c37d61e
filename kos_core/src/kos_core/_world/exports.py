"""The names a kernel exports: what should be in etcd, made so by one thread.

The kernel says what each exporting owner (a plugin with ``export: yes``) has bound
(:meth:`Exports.set`); a thread writes the difference to etcd under the kernel's
lease (``<prefix>names/<kernel>/<path>``). Binding never waits for etcd: while etcd
is unreachable the wanted set keeps changing, and it is written when etcd answers.
After the kernel joins with a new lease, everything is written again.
"""

from __future__ import annotations

import logging
import threading

from kos_core._world.etcd import Etcd
from kos_core._world.etcd_errors import LeaseLost
from kos_core._world.layout import Layout, Name
from kos_core.errors import WorldUnavailable

log = logging.getLogger("kos.world")


class Exports:
    """The exported names of one kernel, kept in etcd."""

    def __init__(self, etcd: Etcd, layout: Layout, kernel: str) -> None:
        self._etcd = etcd
        self._layout = layout
        self._kernel = kernel
        self._cond = threading.Condition()
        self._wanted: dict[str, dict[str, Name]] = {}  # owner -> path -> name
        self._written: dict[str, Name] = {}  # path -> what etcd holds under our lease
        self._lease = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="kos-world-exports", daemon=True)
        self._thread.start()

    def set(self, owner: str, names: dict[str, Name]) -> None:
        """``owner``'s exported names are now exactly ``names`` (path -> name)."""
        with self._cond:
            if names:
                self._wanted[owner] = dict(names)
            else:
                self._wanted.pop(owner, None)
            self._cond.notify_all()

    def joined(self, lease: int) -> None:
        """The kernel holds a new lease: write every name again under it."""
        with self._cond:
            self._lease = lease
            self._written = {}
            self._cond.notify_all()

    def wanted(self) -> dict[str, Name]:
        """Every name this kernel wants exported (path -> name)."""
        with self._cond:
            return {p: n for names in self._wanted.values() for p, n in names.items()}

    def stop(self) -> None:
        """Stop writing (the lease's revocation removes what was written)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._lease or self._in_sync()):
                    self._cond.wait()
                if self._stopped:
                    return
                lease, wanted, written = self._lease, self.wanted(), dict(self._written)
            try:
                done = self._write(lease, wanted, written)
            except LeaseLost:
                with self._cond:  # the membership will join again and call joined()
                    if self._lease == lease:
                        self._lease = 0
                continue
            except WorldUnavailable as exc:
                log.debug("world: exports wait for etcd (%s)", exc)
                with self._cond:
                    self._cond.wait(0.25)
                continue
            with self._cond:
                if self._lease == lease:
                    self._written = done

    def _in_sync(self) -> bool:
        return self.wanted() == self._written

    def _write(
        self, lease: int, wanted: dict[str, Name], written: dict[str, Name]
    ) -> dict[str, Name]:
        done = dict(written)
        for path in sorted(set(written) - set(wanted)):
            self._etcd.delete(self._layout.name_key(self._kernel, path))
            del done[path]
            log.info("world: unexported %s", path)
        for path, name in sorted(wanted.items()):
            if written.get(path) != name:
                self._etcd.put(self._layout.name_key(self._kernel, path), name.encode(), lease)
                done[path] = name
                log.info("world: exported world/%s/%s", self._kernel, path)
        return done
