"""Joining a world: the kernel's lease, its record, keep-alive and rejoining.

A kernel joins by granting itself a lease (TTL :data:`LEASE_TTL`) and creating its
record ``<prefix>kernels/<name>`` held by that lease, in one transaction that
succeeds only if no such key exists: a name is unique in the world because etcd
says so, not because kernels agree. A thread then renews the lease every third of
the TTL. When etcd cannot be reached the kernel keeps its lease id and keeps trying;
an etcd that answers with an error (overloaded) still counts as reachable while the
lease it last renewed has more than a third of its TTL left (:data:`BUSY_GRACE`);
when etcd answers again and the lease is gone (it expired during a partition, or
etcd lost its data), the kernel joins again with a new lease and republishes. If
meanwhile another kernel took the name, this one stops (exit 2) rather than fight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kos_core._world.etcd import Etcd
from kos_core._world.etcd_errors import EtcdDenied, EtcdRefused
from kos_core._world.layout import BadValue, KernelRecord, Layout, parse_record
from kos_core.errors import UsageError, WorldUnavailable

log = logging.getLogger("kos.world")

#: the lease's time to live, seconds: a dead or cut-off kernel's names vanish within it
LEASE_TTL = 6
#: how long to wait between attempts while etcd does not answer
RETRY = 0.25
#: the share of the TTL after the last renewal during which keep-alives that etcd
#: refuses (it answered, overloaded) leave the kernel reachable: the lease still holds
BUSY_GRACE = 2 / 3


class NameTaken(UsageError):
    """Another kernel holds this kernel's name in the world."""


class Membership:
    """One kernel's place in the world: its lease and its record.

    ``on_joined(lease)`` is called (on this object's thread, or in :meth:`join`) each
    time the kernel holds a new lease; ``on_reachable(bool)`` whenever etcd starts or
    stops answering the keep-alive.
    """

    def __init__(
        self,
        etcd: Etcd,
        layout: Layout,
        record: KernelRecord,
        *,
        on_joined: Callable[[int], None],
        on_reachable: Callable[[bool], None],
        ttl: int = LEASE_TTL,
    ) -> None:
        self._etcd = etcd
        self._layout = layout
        self.record = record
        self._on_joined = on_joined
        self._on_reachable = on_reachable
        self.ttl = ttl
        self.lease = 0
        self._renewed = 0.0  # time.monotonic() of the last renewal etcd confirmed
        #: set when this kernel must stop: why (the name was taken from it)
        self.fatal: NameTaken | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kos-world-lease", daemon=True)

    def join(self) -> None:
        """Try to join now, then keep the membership alive on a thread.

        Raises :class:`NameTaken` if another kernel holds the name, and
        :class:`~.etcd_errors.EtcdDenied` if etcd will not let it in (a certificate, a
        password). If etcd does not answer, logs it and keeps trying in the background.
        """
        try:
            self._join()
        except EtcdDenied:
            raise
        except WorldUnavailable as exc:
            log.warning("world: cannot join yet (%s); local names work, retrying", exc)
            self._on_reachable(False)
        self._thread.start()

    def _join(self) -> None:
        lease = self._etcd.grant(self.ttl)
        holder = self._etcd.create(
            self._layout.kernel_key(self.record.name), self.record.encode(), lease
        )
        if holder is not None:
            self._etcd.revoke(lease)
            raise NameTaken(_taken_message(self.record.name, holder.value))
        self.lease = lease
        self._renewed = time.monotonic()
        log.info("world: joined as %r (lease %x, ttl %d s)", self.record.name, lease, self.ttl)
        self._on_reachable(True)
        self._on_joined(lease)

    def _loop(self) -> None:
        reachable = True
        busy = False
        while not self._stop.wait(self.ttl / 3 if self.lease and reachable and not busy else RETRY):
            busy = False
            try:
                if self.lease and self._etcd.keepalive(self.lease) > 0:
                    self._renewed = time.monotonic()
                    ok = True
                else:
                    if self.lease:
                        log.warning("world: lease %x is gone; joining again", self.lease)
                        self.lease = 0
                    self._join()
                    ok = True
            except EtcdRefused as exc:
                # etcd answered: while the lease surely holds, it is busy, not gone
                busy = True
                ok = reachable and self._lease_holds()
                if reachable:
                    log.log(
                        logging.INFO if ok else logging.WARNING,
                        "world: etcd refused a keep-alive (%s)%s",
                        exc,
                        "; retrying" if ok else "; the lease may expire",
                    )
            except WorldUnavailable as exc:
                ok = False
                if reachable:
                    log.warning("world: etcd unreachable (%s); local names keep working", exc)
            except NameTaken as exc:
                self.fatal = NameTaken(f"{exc} (after a loss of contact with etcd)")
                log.error("world: %s", self.fatal)
                return
            if ok != reachable:
                reachable = ok
                if ok:
                    log.info("world: etcd answers again")
                self._on_reachable(ok)

    def _lease_holds(self) -> bool:
        """Whether the lease surely has not expired yet (renewed recently enough)."""
        return bool(self.lease) and time.monotonic() - self._renewed < self.ttl * BUSY_GRACE

    def leave(self) -> None:
        """Stop renewing and revoke the lease: every key of this kernel goes at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.lease:
            try:
                self._etcd.revoke(self.lease)
            except WorldUnavailable as exc:
                log.warning("world: could not revoke lease (%s); it expires by itself", exc)
            self.lease = 0


def _taken_message(kernel: str, value: bytes) -> str:
    try:
        holder = parse_record(kernel, value)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started))
        who = f"by a kernel on host {holder.host} ({holder.address}, since {since})"
    except BadValue:
        who = "by a record kos cannot read"
    return f"kernel name {kernel!r} is taken in the world {who}; choose another name with -n"
