"""The kernel: namespace, receiver (plugin registration) and supervisor in one process."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import signal
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kos_core import _rpc
from kos_core._kernel import access
from kos_core._kernel.access import Grant
from kos_core._kernel.discovery import InstalledPlugin
from kos_core._kernel.namespace import Namespace
from kos_core._kernel.reload import records_from_setup, reload_in_background
from kos_core._kernel.servant import KernelServant, PluginEntry, StationServant
from kos_core._kernel.setup_files import SetupConfig
from kos_core._kernel.store import LinkNode, Store
from kos_core._kernel.supervisor import PluginRecord, Supervisor
from kos_core._kp.station import Station
from kos_core._net import connection_file, tls, wire
from kos_core._os import paths, processes
from kos_core._world.member import WorldMember, WorldSettings
from kos_core.errors import (
    KernelUnreachable,
    KosError,
    PermissionDenied,
    RegistrationRefused,
    UsageError,
)
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.kernel_api import PluginRow

log = logging.getLogger("kos.kernel")


def _peer_pid() -> int | None:
    """The pid of the process at the other end of the connection being served, if known
    (a Unix socket's peer credentials; ``None`` over TCP).
    """
    session = _rpc.current_session()
    peer = session.peer if session is not None else None
    return peer[0] if peer is not None else None


class KernelCore:
    """The kernel's state and its supervisor; :func:`run_kernel` drives it."""

    def __init__(
        self,
        name: str,
        *,
        installed: dict[str, InstalledPlugin],
        setup: SetupConfig,
        listen: wire.Address | None = None,
        state_dir: Path | None = None,
        world: WorldSettings | None = None,
        store: Store | None = None,
    ) -> None:
        self.name = paths.check_name(name, "kernel")
        #: the names bound at this kernel: ``store``, by default an in-memory tree
        self.namespace: Store = store if store is not None else Namespace()
        self.namespace.make_context("plugins")
        #: the installed plugins (as discovered at start) and the setup files last read
        self.installed = installed
        self.setup = setup
        #: held by a reload; set by SIGHUP to ask the main loop for one
        self.reload_lock = threading.Lock()
        self.reload_asked = threading.Event()
        default_socket = wire.Address(path=str(paths.runtime_dir() / f"{name}.sock"))
        #: the kernel always listens on a Unix socket; ``--listen HOST:PORT`` adds TCP
        self._unix = listen if listen is not None and listen.path is not None else default_socket
        self._tcp = listen if listen is not None and listen.host is not None else None
        self._state_dir = state_dir or paths.state_dir(name)
        self._secret = secrets.token_urlsafe(32)
        self._servers: list[_rpc.Server] = []
        self._ca_pem = ""
        self._lock_fd: int | None = None
        self.supervisor = Supervisor(name, self._state_dir, self.namespace)
        self._lock = self.supervisor.lock
        self.records = self.supervisor.records
        #: each top-level name an installed plugin declares → that plugin
        self.reserved: dict[str, str] = {}
        #: the world this kernel is in (``--world``), and its plugins that export
        self.world = WorldMember(name, world, self.namespace, self._exports) if world else None
        self.exported: set[str] = set()
        self._load_records()
        self.station = Station(
            name,
            self._state_dir,
            self.namespace,
            setup.kp_access,
            address=lambda: str(self.address),
            call_in_main=self.supervisor.call_in_main,
            world=self.world,
        )

    def _load_records(self) -> None:
        made = records_from_setup(self.name, self.installed, self.setup, self.world is not None)
        self.records.update(made.records)
        self.exported = made.exported
        self.reserved = access.reserved_names((r.name, r.services) for r in self.records.values())

    # -- lifecycle ------------------------------------------------------------------

    def start(self, before_boot: Callable[[], None] | None = None) -> None:
        """Claim the kernel name, start serving, and boot the run-at-boot plugins;
        ``before_boot`` is called once the kernel serves, before any plugin starts.
        """
        if self.world is not None and self._tcp is None:
            raise UsageError("a kernel in a world needs --listen HOST:PORT (its TCP address)")
        self._claim_name()
        processes.sweep_stale_sockets(paths.runtime_dir())
        tls = self._make_tls(self._tcp.host) if self._tcp is not None and self._tcp.host else None
        for address in (self._unix, self._tcp):
            if address is not None:
                server = _rpc.Server(
                    address,
                    self._authorize,
                    name=f"kernel-{self.name}",
                    tls=tls,
                    certified=self._authorize_station,
                )
                self._servers.append(server)
        if self.world is not None and self.tcp_address is not None:
            self.world.join(self.tcp_address)  # before anyone can connect
        self._write_connection_file()
        for server in self._servers:
            server.start()
            log.info("kernel %s listening on %s", self.name, server.address)
        if before_boot is not None:
            before_boot()
        self.supervisor.boot()

    @property
    def address(self) -> wire.Address:
        """Where the kernel listens on its Unix socket."""
        return self._servers[0].address

    @property
    def tcp_address(self) -> wire.Address | None:
        """Where the kernel listens on TCP, if it was asked to."""
        return self._servers[1].address if len(self._servers) > 1 else None

    def _claim_name(self) -> None:
        # A lock held for the kernel's life makes the name ours; whatever an earlier
        # kernel of this name left behind (it was killed) is then stale.
        lock_path = paths.runtime_dir() / f"{self.name}.lock"
        fd = paths.open_private_file(lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                info = connection_file.read(self.name)
            except KernelUnreachable:
                info = None
            pid = info.pid_text if info is not None else "?"
            raise UsageError(
                f"a kernel named {self.name!r} is already running (pid {pid});"
                " choose another name with -n"
            ) from None
        self._lock_fd = fd
        connection_file.remove(self.name)
        if self._unix.path is not None and os.path.exists(self._unix.path):
            os.unlink(self._unix.path)

    def _make_tls(self, host: str) -> ssl.SSLContext:
        # Alone, the kernel's run has its own authority, pinned in the connection file;
        # its processes serve TCP with the one certificate it issued. In a world, the
        # world's authority and the certificate it issued this kernel.
        if self.world is not None:
            self._ca_pem, pair = self.world.ca_pem, self.world.tls_pair
        else:
            self._ca_pem, pair = tls.for_one_run(self.name, host)
        tls.trust(self._ca_pem)  # its health pings reach its plugins over TCP
        paths.write_private_file(paths.tls_file(self.name), pair)
        context = tls.server_context(str(paths.tls_file(self.name)))
        if self.world is not None:  # the stations of the world's kernels (ReceiveKP)
            tls.ask_client_certificates(context, self._ca_pem)
        return context

    def _write_connection_file(self) -> None:
        connection_file.write(
            self.name,
            address=self.address,
            secret=self._secret,
            pid=os.getpid(),
            tcp=self.tcp_address,
            ca=self._ca_pem,
        )

    def server_pid(self, owner: str | None) -> int | None:
        """The pid of the running plugin that bound a service with this ``owner`` tag
        (``plugin:<name>``), if any.
        """
        for record in list(self.records.values()):
            if record.owner == owner:
                return record.pid or None
        return None

    def _authorize(self, token: str) -> _rpc.ServerSession | None:
        grant = self._grant_for(token)
        if grant is None:
            return None
        session = KernelServant(self, grant)
        return _rpc.ServerSession(session, KernelInterface, on_close=session.closed)

    def _authorize_station(self, token: str, sender: str) -> _rpc.ServerSession | None:
        """A TLS client presented a certificate the world's authority issued to kernel
        ``sender`` (only a kernel in a world asks for one): with the station token, it is
        that kernel's station, if the world knows it.
        """
        if not wire.tokens_equal(token, access.STATION_TOKEN):
            return self._authorize(token)
        if self.world is None or sender == self.name or not self.world.knows(sender):
            log.info("kernel %s: refused a station credential for %r", self.name, sender)
            return None
        servant = StationServant(self.station, Grant(access.STATION, sender))
        return _rpc.ServerSession(servant, KernelInterface)

    def _grant_for(self, token: str) -> Grant | None:
        """The rights ``token`` gives, or ``None`` if it is no credential of this kernel."""
        if wire.tokens_equal(token, self._secret):
            return Grant(access.OPERATOR)
        with self._lock:
            for record in self.records.values():
                if record.credential and wire.tokens_equal(token, record.credential):
                    return Grant(access.PLUGIN, record.name, frozenset(record.services))
        return self.station.grant_for(token)

    def _dialable(self, sbh: str) -> bool:
        tcp = self.tcp_address
        return access.dialable(sbh, str(paths.runtime_dir()), tcp.host if tcp is not None else None)

    def run(self, stop: threading.Event, poll_interval: float = 0.05) -> None:
        """Supervise plugins until ``stop`` is set."""
        while not stop.wait(poll_interval):
            if self.reload_asked.is_set():
                self.reload_asked.clear()
                reload_in_background(self)
            self.supervisor.tick()
            self.station.tick()
            if self.world is not None:
                self.world.check()

    def shutdown(self) -> None:
        """Stop every KP and plugin (SIGTERM, then SIGKILL after a grace period), leave
        the world and stop serving.
        """
        if self.world is not None:
            self.world.leave()
        self.namespace.events.close()
        self.station.stop_all()
        self.supervisor.stop_all()
        for server in self._servers:
            server.close()
        try:
            info = connection_file.read(self.name)
        except KernelUnreachable:
            info = None
        if info is not None and info.secret == self._secret:
            connection_file.remove(self.name)
            paths.tls_file(self.name).unlink(missing_ok=True)
        processes.sweep_stale_sockets(paths.runtime_dir())
        if self._lock_fd is not None:
            (paths.runtime_dir() / f"{self.name}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)  # releases the name
            self._lock_fd = None

    # -- plugins --------------------------------------------------------------------

    def register_plugin(
        self, session: KernelServant, name: str, pid: int, health_sbh: str = ""
    ) -> PluginEntry:
        """Handle ``RegisterPlugin`` from ``session``."""
        paths.check_name(name, "plugin")
        peer = _peer_pid()
        if peer is not None and peer != pid:
            raise RegistrationRefused(f"pid {pid} is not the registering process (pid {peer})")
        if peer is None and not session.grant.operator:
            raise RegistrationRefused("plugins register over the kernel's Unix socket")
        if health_sbh and not self._dialable(health_sbh):
            raise PermissionDenied("the health object must be served from this kernel's host")
        with self._lock:
            if session.plugin is not None:
                raise RegistrationRefused(f"this connection is already plugin {session.plugin!r}")
            record = self.records.get(name)
            if record is not None and record.session is not None:
                raise RegistrationRefused(
                    f"a plugin named {name!r} is already registered (pid {record.pid})"
                )
            alive = (
                record is not None and record.process is not None and record.process.poll() is None
            )
            if record is not None and alive and record.pid != pid:
                raise RegistrationRefused(
                    f"the kernel is running plugin {name!r} itself (pid {record.pid})"
                )
            if record is None:
                record = self.records[name] = PluginRecord(name, services=(name,))
            if record.process is None:
                record.started, record.started_mono = time.time(), time.monotonic()
            record.session, record.pid, record.state = session, pid, "running"
            if health_sbh:
                wire.parse_sbh(health_sbh)
                self.supervisor.set_health(record, health_sbh)
            session.plugin, session.owner = name, record.owner
            context = f"plugins/{name}"
            self.namespace.make_context(context, owner=record.owner)
            for link in ("kos", "world"):
                with contextlib.suppress(KosError):
                    self.namespace.bind(f"{context}/{link}", LinkNode("", record.owner))
        log.info("plugin %s registered (pid %d)", name, pid)
        return PluginEntry(self, name)

    def session_closed(self, session: KernelServant) -> None:
        """A connection ended: unbind what it bound; end its plugin registration."""
        with self._lock:
            removed = self.namespace.remove_owner(session.owner)
            self.owner_changed(session.owner)
            name = session.plugin
            record = self.records.get(name) if name else None
            if record is None or record.session is not session:
                return
            record.unbound += removed
            record.session = None
            self.supervisor.forget_health(record)
            if record.command is None:
                del self.records[record.name]
            elif record.process is None and record.state == "running":
                record.state, record.pid = "stopped", 0
        log.info("plugin %s disconnected", name)

    def owner_changed(self, owner: str) -> None:
        """What ``owner`` has bound changed: the world sees it if it exports."""
        if self.world is not None:
            self.world.owner_changed(owner)

    def _exports(self, owner: str) -> bool:
        return owner.startswith("plugin:") and owner[len("plugin:") :] in self.exported

    def plugin_rows(self) -> list[PluginRow]:
        """The plugin table for ``KernelAPI.Kernel.Plugins``."""
        now = time.time()
        with self._lock:
            return [
                (
                    r.name,
                    r.state,
                    r.pid,
                    self.namespace.services_of(r.owner),
                    now - r.started if r.state in ("starting", "running") else 0.0,
                    r.last_exit,
                    r.restarts,
                )
                for r in self.records.values()
            ]


def install_stop_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` (the kernel then stops its plugins and exits 0)."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
