"""A kernel in a world: its TLS material, membership, exports and cache together.

The kernel (``_kernel/core.py``) makes one :class:`WorldMember` when run with ``--world``
and calls it at a few points: when it starts listening (:meth:`~WorldMember.join`),
for paths under ``world`` (:meth:`~WorldMember.lookup`, :meth:`~WorldMember.list`),
when an owner's bindings change (:meth:`~WorldMember.owner_changed`), on each tick
(:meth:`~WorldMember.check`) and when it stops (:meth:`~WorldMember.leave`).
"""

from __future__ import annotations

import builtins
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kos_core._kernel import namespace
from kos_core._kernel.store import ServiceNode, Store
from kos_core._net import tls, wire
from kos_core._world.cache import WorldCache
from kos_core._world.etcd import Etcd
from kos_core._world.exports import Exports
from kos_core._world.layout import KernelRecord, Layout, Name
from kos_core._world.membership import LEASE_TTL, Membership
from kos_core._world.url import WorldURL
from kos_core.errors import KosError, UsageError
from kos_core.kernel_api import WorldRow

log = logging.getLogger("kos.world")

#: the top-level context under which the world's kernels appear
WORLD = "world"
#: in a world, tells each plugin the kernel starts whether it exports ("yes": it and
#: its factory children serve TCP+TLS; "no": the Unix socket only)
EXPORT_ENV = "KOS_WORLD_EXPORT"
_BOOLEANS = {"1": True, "yes": True, "true": True, "on": True}
_BOOLEANS.update({"0": False, "no": False, "false": False, "off": False})


def parse_export(name: str, options: Mapping[str, str], where: str) -> bool:
    """A plugin's ``export`` setting (default no); :class:`UsageError` if malformed."""
    value = options.get("export")
    if value is None:
        return False
    flag = _BOOLEANS.get(value.strip().lower())
    if flag is None:
        raise UsageError(
            f"{where}: [{name}] bad value for export: {value!r} (use yes/no, 1/0, true/false)"
        )
    return flag


@dataclass(frozen=True)
class WorldSettings:
    """How a kernel joins a world: etcd's URL and where its TLS files are."""

    url: WorldURL
    tls_dir: Path
    ttl: int = LEASE_TTL

    def material(self, kernel: str) -> tuple[str, bytes]:
        """The world authority's certificate, and this kernel's certificate and key as
        one PEM file's bytes; :class:`UsageError` naming the command that makes what is
        missing.
        """
        where = self.tls_dir
        try:
            ca_pem = (where / "ca.pem").read_text()
        except OSError:
            raise UsageError(
                f"no world authority at {where / 'ca.pem'}; make one with:"
                f" kos world ca init --dir {where}"
            ) from None
        try:
            pair = (where / f"{kernel}.pem").read_bytes() + (
                where / f"{kernel}-key.pem"
            ).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"no world certificate for kernel {kernel!r} ({exc.filename} is missing);"
                f" make it with: kos world ca issue {kernel} --dir {where}"
            ) from None
        return ca_pem, pair


def world_settings(url: str, tls_dir: Path) -> WorldSettings:
    """The settings of ``kos run --world URL`` (the password from ``$KOS_WORLD_PASSWORD``)."""
    return WorldSettings(WorldURL.parse(url, os.environ.get("KOS_WORLD_PASSWORD")), tls_dir)


@functools.lru_cache(maxsize=4096)
def _naming(sbh: str, kernel: str) -> str:
    """``sbh`` naming ``kernel`` (``?kernel=``), remembered: lookups are hot, names few."""
    address, token = wire.parse_sbh(sbh)
    return wire.format_sbh(address._replace(kernel=kernel), token)


class WorldMember:
    """One kernel's membership of a world."""

    def __init__(
        self,
        kernel: str,
        settings: WorldSettings,
        namespace: Store,
        exported: Callable[[str], bool],
    ) -> None:
        self.kernel = kernel
        self.settings = settings
        self.ca_pem, self.tls_pair = settings.material(kernel)
        self._station_context = tls.presenting_context(
            self.ca_pem,
            str(settings.tls_dir / f"{kernel}.pem"),
            str(settings.tls_dir / f"{kernel}-key.pem"),
        )
        self._namespace = namespace
        self._exported = exported
        self._etcd = Etcd(settings.url)
        self._layout = Layout(settings.url.prefix)
        self.cache = WorldCache(
            self._etcd, self._layout, tls.fingerprint(self.ca_pem), self._changed
        )
        self.exports = Exports(self._etcd, self._layout, kernel)
        self._membership: Membership | None = None
        if not settings.url.loopback_only and not settings.url.tls:
            log.warning(
                "world: etcd:// is plain HTTP: the SBHs of exported names reach etcd"
                " unencrypted; use etcds:// between hosts"
            )

    def join(self, tcp: wire.Address) -> None:
        """Join the world with the kernel listening at ``tcp``; raise
        :class:`~.membership.NameTaken` (a usage error: exit 2) if the name is taken.
        """
        assert tcp.host is not None
        record = KernelRecord(
            name=self.kernel,
            host=socket.gethostname(),
            address=f"{tcp.host}:{tcp.port}",
            ca=tls.fingerprint(self.ca_pem),
            protocol=wire.PROTOCOL_VERSION,
            started=time.time(),
            pid=os.getpid(),
        )
        self._membership = Membership(
            self._etcd,
            self._layout,
            record,
            on_joined=self.exports.joined,
            on_reachable=self.cache.set_reachable,
            ttl=self.settings.ttl,
        )
        self._membership.join()
        self.cache.start()
        self.cache.wait_live(2.0)

    def _changed(self, kind: str, kernel: str, path: str, typename: str) -> None:
        """A world name changed in the cache: tell the kernel's watchers."""
        self._namespace.events.add(kind, namespace.join([WORLD, kernel, path]), typename)

    @staticmethod
    def covers(path: str) -> bool:
        """True for ``world`` and the paths under it."""
        parts = namespace.split_path(path)
        return bool(parts) and parts[0] == WORLD

    def lookup(self, path: str) -> tuple[str, str, str]:
        """``KernelAPI.Kernel.Lookup`` of a path under ``world``, from the cache.

        The SBH of a name under ``world/<kernel>`` names that kernel: the client
        accepts only a server whose certificate was issued to it.
        """
        parts = namespace.split_path(path)[1:]
        name = self.cache.lookup(parts)
        if name is None:
            return ("context", "", namespace.join([WORLD, *parts]))
        return ("service", name.typename, _naming(name.sbh, parts[0]))

    def list(self, path: str) -> list[tuple[str, str, str]]:
        """``KernelAPI.Kernel.List`` of a path under ``world``, from the cache."""
        return self.cache.list(namespace.split_path(path)[1:])

    def address_of(self, kernel: str) -> str | None:
        """The TCP+TLS address (``HOST:PORT``) of ``kernel`` from the cache, ``None`` if
        the world has no such kernel; :class:`~kos_core.errors.WorldUnavailable` while
        etcd cannot be reached.
        """
        record = self.cache.kernels().get(kernel)
        return record.address if record is not None else None

    def knows(self, kernel: str) -> bool:
        """True if ``kernel`` is in the world now (as far as the cache can tell)."""
        try:
            return self.address_of(kernel) is not None
        except KosError:
            return False

    def station_context(self) -> ssl.SSLContext:
        """The TLS client context this kernel's station dials the world's kernels with:
        it presents this kernel's world certificate and trusts the world's authority
        alone.
        """
        return self._station_context

    def rows(self) -> builtins.list[WorldRow]:
        """``KernelAPI.Kernel.World``: each kernel's name, host, address, uptime, names."""
        now = time.time()
        return [
            (name, record.host, record.address, max(now - record.started, 0.0), list(names))
            for name, record in self.cache.kernels().items()
            for names in [self.cache.names(name)]
        ]

    def owner_changed(self, owner: str) -> None:
        """``owner`` bound or unbound something: export what it now has, if it exports."""
        if not self._exported(owner):
            return
        names: dict[str, Name] = {}
        for path in self._namespace.services_of(owner):
            try:
                service = self._namespace.lookup(path)
            except KosError:
                continue
            if not isinstance(service, ServiceNode):
                continue
            address, _ = wire.parse_sbh(service.sbh)
            if address.host is None:
                log.warning("world: not exporting %s: it is served on a Unix socket only", path)
                continue
            names[path] = Name(service.typename, service.sbh)
        self.exports.set(owner, names)

    def check(self) -> None:
        """Raise the reason this kernel must stop, if there is one (its name was
        taken while it was cut off from etcd).
        """
        if self._membership is not None and self._membership.fatal is not None:
            raise self._membership.fatal

    def leave(self) -> None:
        """Leave the world: revoke the lease (every name goes at once), stop watching."""
        self.exports.stop()
        if self._membership is not None:
            self._membership.leave()
        self.cache.stop()
