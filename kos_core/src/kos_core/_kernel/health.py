"""Health checks: the kernel pings every running plugin; one that does not answer in
time has its services unbound and is killed, then handled like a crash.

A ping the kernel cannot even make for want of descriptors or memory (an attack on its
own sockets, say) is skipped, not held against the plugin.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from typing import TYPE_CHECKING

from kos_core import _rpc
from kos_core._kernel.store import Store
from kos_core._net import wire
from kos_core.kernel_api import PluginHealth

if TYPE_CHECKING:
    from kos_core._kernel.supervisor import PluginRecord

log = logging.getLogger("kos.kernel")

_NO_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _out_of_resources(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is this process running out of descriptors
    or memory, rather than a failure of the other side.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_RESOURCES:
            return True
        seen = seen.__cause__
    return False


class HealthChecks:
    """The health-check part of the supervisor (a mixin of :class:`Supervisor`)."""

    records: dict[str, PluginRecord]
    lock: threading.RLock
    namespace: Store
    _stopping: threading.Event

    def set_health(self, record: PluginRecord, sbh: str) -> None:
        """Start pinging a registered plugin through the health object ``sbh`` names."""
        self._drop_health(record)
        if not sbh or record.supervision.health_interval <= 0:
            return
        address, token = wire.parse_sbh(sbh)
        timeout = record.supervision.health_timeout
        config = _rpc.RpcConfig(call_timeout=timeout, connect_timeout=timeout)
        record.health = _rpc.ClientConnection(
            address, token, f"plugin {record.name} (health)", config
        )
        record.answered = False
        record.next_ping = time.monotonic() + record.supervision.health_interval

    def forget_health(self, record: PluginRecord) -> None:
        """Stop pinging a plugin (its registration ended)."""
        with self.lock:
            self._drop_health(record)

    def _drop_health(self, record: PluginRecord) -> None:
        link, record.health = record.health, None
        if link is not None:
            link.close()

    def _health_loop(self) -> None:
        ping = PluginHealth.methods()["Ping"]
        while not self._stopping.wait(0.1):
            now = time.monotonic()
            with self.lock:
                due = [
                    r
                    for r in self.records.values()
                    if r.health is not None and r.state == "running" and now >= r.next_ping
                ]
                for record in due:
                    record.next_ping = now + record.supervision.health_interval
            for record in due:
                link = record.health
                if link is None:
                    continue
                try:
                    link.invoke(0, ping, ())
                    if not record.answered:
                        record.answered = True
                        log.info("plugin %s answers its health pings", record.name)
                except Exception as exc:
                    if _out_of_resources(exc):
                        # The kernel's own shortage (an attack on its sockets, say) says
                        # nothing of the plugin: try again at the next ping.
                        log.warning("plugin %s: health ping skipped: %s", record.name, exc)
                        continue
                    self._unhealthy(record, link, str(exc))

    def _unhealthy(self, record: PluginRecord, link: _rpc.ClientConnection, why: str) -> None:
        with self.lock:
            if record.health is not link or self._stopping.is_set():
                return
            log.error("plugin %s is not answering (%s); unbinding its services", record.name, why)
            record.state = "unhealthy"
            record.killed_for = "unhealthy: no answer to a health ping"
            self.namespace.remove_owner(record.owner)
            self._drop_health(record)
            if record.alive:
                assert record.process is not None
                with contextlib.suppress(ProcessLookupError):
                    record.process.kill()
