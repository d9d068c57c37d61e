"""Migration: a KP moves from its station to another kernel, through the stations.

::

    KP process at A        station A                       station B
    kos.migrate("B")
      state: plain data ─MigrateKP(B, state)─▶ a running KP, not
      (else MigrationError,                  moving; B is not A
       nothing is sent)                      route_to(B) ─ReceiveKP─▶ accept: yes?
                                                                      its own limits;
                                                                      a new confined
                                                                      process runs
                                             ends the KP ◀─new id──── __main__(kos)
      (never returns: ended)                 at A: process, names

What travels (:class:`Traveller`): the KP's file name, class and source (the source
the station was given, not what the KP says it is), its arguments, the limits it asked
for (the receiving station applies its own defaults and ceilings to them), its
instance attributes as plain data (:mod:`.codec`) and where it came from. What does
not: open connections, bound services (its ``kps/<id>/`` at A goes with it), threads,
files in its working directory, CPU and wall-clock time used (each station limits the
KP's stay there), ``--unconfined`` (the receiving station always confines).

Who may do what: only a KP may ask to migrate, and only itself (its KP credential
names it). It never reaches the other kernel itself: it cannot read a connection file,
has no network and no credential there. :func:`route_to` picks the station's way to B:

* **B in this runtime directory** (:class:`LocalRoute`): B's Unix socket with B's
  operator credential, read from its connection file. The kernels of one runtime
  directory run as one user, who can read each other's connection files anyway, so A
  gains nothing it did not have.
* **B in this kernel's world, on another host** (:class:`WorldRoute`): the TCP+TLS
  address of B's record in A's world cache, dialled as a *station*: the token
  ``station`` over TLS presenting A's world certificate (the one ``kos world ca issue
  A`` made), trusting the world's authority alone and requiring B's certificate to
  name B. B's listener asks every client for a certificate (a plain client still
  connects) and verifies it against the world's authority; the station credential
  names the kernel the certificate names (B records it as the KP's origin, whatever
  the sender claims), holds only while B's world knows that kernel, and allows
  ``ReceiveKP`` and nothing else (:class:`~kos_core._kernel.servant.StationServant`).
  A kernel alone never grants it.
* otherwise :class:`MigrationError` (``no kernel 'B' here or in the world``).

B's ``ReceiveKP`` is otherwise operator-only, and B treats what arrives as it treats
``kos kp submit``: untrusted code it confines under its own ``[kp-access]`` policy, or
refuses (``accept: no``).

The handover: A ends the old process only once B has answered with the new id (the
new ``__main__`` runs). A kill of the KP at A meanwhile (``kos kp kill``, its
wall-clock limit) waits for that answer: if B took the KP it has moved and runs on at
B (the kill answers ``migrated to B (KP <id>)``; kill it there); if not, it is killed
at A as asked. The kernel stopping kills it at once (B may still take it).
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kos_core._client import Kos, kernel_link
from kos_core._kernel import access
from kos_core._kp import codec
from kos_core._net import connection_file, wire
from kos_core._os import paths
from kos_core._rpc import ClientConnection
from kos_core.errors import KosError, MigrationError
from kos_core.kernel_api import KPTraveller

if TYPE_CHECKING:
    from kos_core._kp.station import Station

log = logging.getLogger("kos.kernel")

#: the largest ``MigrateKP`` or ``ReceiveKP`` request: the state, plus the source
#: (a ``SubmitKP`` request is at most 64 KiB) and the rest
MAX_REQUEST = codec.MAX_STATE + 128 * 1024
#: the kernel methods that carry a KP's state accept requests up to this; every other
#: kernel request stays small (``MAX_KERNEL_REQUEST``)
LARGER_REQUESTS = {"MigrateKP": MAX_REQUEST, "ReceiveKP": MAX_REQUEST}


@dataclass(frozen=True)
class Traveller:
    """A KP on its way from one station to another."""

    #: ``FILE:CLASS``, as it was submitted
    target: str
    source: str
    args: list[str]
    #: the limits it asked for (``cpu=5,mem=64``; "" for the station's defaults)
    limits: str
    #: where it comes from, as the receiving station's ``kos kp list`` shows it
    origin: str
    #: its instance attributes, encoded by :func:`.codec.encode_state`
    state: bytes

    def described(self) -> KPTraveller:
        """All of it but the state, as ``KernelAPI.Kernel.ReceiveKP`` takes it."""
        return (self.target, self.source, self.args, self.limits, self.origin)


class Route(Protocol):
    """A way to hand a KP to one kernel."""

    def deliver(self, kp: Traveller) -> str:
        """Hand ``kp`` over; return its id at the kernel once its ``__main__`` runs
        there. Raises :class:`MigrationError` if it was refused or could not start.
        """


class LocalRoute:
    """To a kernel of this runtime directory: its Unix socket, with the operator
    credential of its connection file.
    """

    def __init__(self, kernel: str) -> None:
        self.kernel = kernel

    def deliver(self, kp: Traveller) -> str:
        """Call the kernel's ``ReceiveKP``."""
        try:
            link, _ = kernel_link(self.kernel)
        except KosError as exc:
            raise MigrationError(f"cannot reach kernel {self.kernel!r}: {exc}") from None
        return _hand_over(self.kernel, link, kp)


class World(Protocol):
    """What a route through the world needs of this kernel's world membership."""

    def address_of(self, kernel: str) -> str | None:
        """The TCP+TLS address (``HOST:PORT``) of ``kernel`` in the world's record of
        it, or ``None`` if there is no such kernel in the world.
        """

    def station_context(self) -> ssl.SSLContext:
        """The TLS client context that presents this kernel's world certificate."""


class StationAddress(wire.Address):
    """A kernel of the world at its TCP address, dialled as a station: with
    ``context`` (this kernel's world certificate presented, the world authority alone
    trusted), and the kernel's certificate required to name ``kernel``. ``context`` is
    no field: it is neither compared nor shown.
    """

    context: ssl.SSLContext | None = None

    @classmethod
    def dialled_with(
        cls, host: str | None, port: int, kernel: str, context: ssl.SSLContext
    ) -> StationAddress:
        """``kernel`` at ``host:port``, dialled with ``context``."""
        station = cls(host=host, port=port, kernel=kernel)
        station.context = context
        return station

    def connect(self, timeout: float) -> socket.socket:
        """Open the TCP connection and its TLS (``ssl.SSLError`` if the peer is not
        ``kernel`` of this world, ``OSError`` if it cannot be reached).
        """
        assert self.host is not None and self.context is not None
        sock = socket.create_connection((self.host, self.port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self.context.wrap_socket(sock, server_hostname=self.kernel)
        except BaseException:
            sock.close()
            raise


def station_link(kernel: str, address: str, context: ssl.SSLContext) -> ClientConnection:
    """A (not yet opened) connection to ``kernel`` of the world at ``address``, with
    the station credential: the token ``station`` over TLS with ``context``.
    """
    where = wire.Address.parse(address)
    dial = StationAddress.dialled_with(where.host, where.port, kernel, context)
    return ClientConnection(dial, access.STATION_TOKEN, f"kernel {kernel!r}")


class WorldRoute:
    """To a kernel of this kernel's world on another host: its TCP address from the
    world's record, with the station credential (:func:`station_link`).
    """

    def __init__(self, kernel: str, address: str, world: World) -> None:
        self.kernel = kernel
        self.address = address
        self._world = world

    def deliver(self, kp: Traveller) -> str:
        """Call the kernel's ``ReceiveKP`` as a station."""
        link = station_link(self.kernel, self.address, self._world.station_context())
        return _hand_over(self.kernel, link, kp)


def _hand_over(kernel: str, link: ClientConnection, kp: Traveller) -> str:
    """``ReceiveKP`` of ``kp`` over ``link`` (closed after): the KP's id at ``kernel``."""
    kos = Kos(kernel, link)
    try:
        return str(kos.kernel.ReceiveKP(kp.described(), kp.state))
    except MigrationError:
        raise
    except KosError as exc:
        raise MigrationError(f"kernel {kernel!r} did not take the KP: {exc}") from None
    finally:
        kos.close()


def route_to(kernel: str, world: World | None = None) -> Route:
    """How to reach kernel ``kernel``: a kernel of this runtime directory first, else
    (if this kernel is in ``world``) a kernel the world knows. Raises
    :class:`MigrationError` if there is none.
    """
    try:
        running = connection_file.read(kernel) is not None
    except KosError as exc:
        raise MigrationError(f"cannot reach kernel {kernel!r}: {exc}") from None
    if running:
        return LocalRoute(kernel)
    if world is None:
        raise MigrationError(
            f"no kernel {kernel!r} runs in this runtime directory"
            " (a KP moves only between kernels of one runtime directory, or of one world)"
        )
    try:
        address = world.address_of(kernel)
    except KosError as exc:
        raise MigrationError(f"cannot reach kernel {kernel!r}: {exc}") from None
    if address is None:
        raise MigrationError(f"no kernel {kernel!r} here or in the world")
    return WorldRoute(kernel, address, world)


def arrived_from(sender: str, claimed: str) -> str:
    """Where a KP handed over by the station of kernel ``sender`` (as its certificate
    names it) comes from: ``from <sender> (KP <id>)``, the id the sender claims if it
    is well-formed.
    """
    match = _ORIGIN.fullmatch(claimed)
    return f"from {sender} (KP {match[1]})" if match else f"from {sender}"


_ORIGIN = re.compile(r"from \S+ \(KP ([0-9a-f]{1,32})\)")


def send(station: Station, kp_id: str, kernel: str, state: bytes) -> str:
    """Move KP ``kp_id`` of ``station``, whose attributes are ``state``, to ``kernel``.

    Once its ``__main__`` runs there, the KP is ended here (its process, its names) and
    its id there is returned. Raises :class:`MigrationError`, the KP untouched, if it
    cannot move (and then kills it if it was to be killed while it tried:
    :meth:`.Station.kill`).
    """
    try:
        paths.check_name(kernel, "kernel")
    except KosError as exc:
        raise MigrationError(str(exc)) from None
    if kernel == station.kernel:
        raise MigrationError(f"the KP already runs at kernel {kernel!r}")
    codec.check_size(state)
    with station.lock:
        record = station.records.get(kp_id)
        if record is None or not record.alive:  # "starting" too: its __main__ may be quick
            raise MigrationError(f"KP {kp_id} is not running at kernel {station.kernel!r}")
        if record.migrating:
            raise MigrationError(f"KP {kp_id} is already moving")
        record.migrating = True
    traveller = Traveller(
        f"{record.filename}:{record.classname}",
        record.source,
        list(record.args),
        record.asked_limits,
        f"from {station.kernel} (KP {kp_id})",
        state,
    )
    try:
        new_id = route_to(kernel, station.world).deliver(traveller)
    except BaseException as exc:
        log.info("KP %s (%s) stays: %s", kp_id, record.classname, exc)
        station.settle(kp_id)  # a kill asked meanwhile is carried out now
        raise
    station.settle(kp_id, f"{kernel} (KP {new_id})")
    return new_id


def receive(station: Station, kp: Traveller) -> str:
    """Run a KP arriving from another kernel at ``station``, if its policy accepts it;
    return its id here once its ``__main__`` runs.
    """
    if not station.access.accept:
        raise MigrationError(
            f"kernel {station.kernel!r} accepts no KPs from other kernels ([kp-access] accept: no)"
        )
    try:
        return station.submit(
            kp.target, kp.source, kp.args, kp.limits, origin=kp.origin, state=kp.state
        )
    except MigrationError:
        raise
    except KosError as exc:
        raise MigrationError(f"kernel {station.kernel!r} cannot run the KP: {exc}") from None
