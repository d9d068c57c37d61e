"""The accepting side of kos connections: one listener, a thread per connection.

Before its handshake a connection costs little (see :mod:`kos_core._net.handshakes`);
when the process runs out of file descriptors the listener closes pending connections
or pauses for :data:`ACCEPT_BACKOFF`, and never spins on a failing ``accept()``.

A one-shot server on a Unix socket (a factory child's) accepts on two threads and
serves its one client on the thread that accepted it, when the client's opening line
is there as it connects (a kos client sends it at once): that thread is awake already,
where a new one would first have to be scheduled. The other thread goes on accepting
(large reads' stream connections, refusals of anybody else); a connection whose
opening line is not there at once gets its own thread as on any server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

from kos_core._net import tls, wire
from kos_core._net.handshakes import PendingHandshakes
from kos_core._rpc.connection import (
    DEFAULT_CONFIG,
    HANDLE_KOS_CALL,
    UNSENDABLE,
    RpcConfig,
    session_requests,
)
from kos_core._rpc.rpyc_seam.peer import RpcPeer
from kos_core._rpc.session import ServerSession
from kos_core._rpc.streams import PendingStream, StreamTable
from kos_core.errors import KosError

log = logging.getLogger("kos.rpc")

#: seconds the listener pauses when accept() fails for want of resources
ACCEPT_BACKOFF = 0.05
_WARN_EVERY = 10.0  # seconds between two warnings that the process is out of descriptors
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
#: seconds a one-shot server waits, on its accepting thread, for a new connection's
#: opening line before giving the connection a thread of its own
INLINE_WAIT = 0.02


class Server:
    """Accepts kos connections on one address; each gets a thread (a bounded number of
    them before their handshake, see :mod:`kos_core._net.handshakes`).

    ``authorize(token)`` returns the :class:`ServerSession` for a credential, or ``None``
    to refuse it; ``certified(token, name)``, if given, is asked instead when a TLS client
    presented a certificate (verified by ``tls``; ``name``: its subject's common name).
    Garbage, wrong credentials and wrong protocol versions are refused during the
    handshake and never reach the rpc layer. A TCP listener needs ``tls``: every
    connection to it speaks TLS (its handshake inside the same deadline) before a byte of
    kos's own; plaintext TCP does not exist. A ``one_shot`` server on a Unix socket
    reads a first request pipelined behind the opening line (see
    :mod:`kos_core._net.wire`); its :attr:`address` says so.
    """

    def __init__(
        self,
        address: wire.Address,
        authorize: Callable[[str], ServerSession | None],
        *,
        name: str,
        config: RpcConfig = DEFAULT_CONFIG,
        one_shot: bool = False,
        tls: ssl.SSLContext | None = None,
        certified: Callable[[str, str], ServerSession | None] | None = None,
    ) -> None:
        if address.path is None and tls is None:
            raise KosError(f"cannot listen on {address} without TLS")
        self._tls = tls if address.path is None else None
        self._authorize = authorize
        self._certified = certified
        self._one_shot = one_shot
        #: set when a one-shot server's client has connected; ``finished`` when it has gone
        self.connected = threading.Event()
        self.finished = threading.Event()
        self._name = name
        self._config = config
        try:
            self._listener, self.address = address.listen()
        except OSError as exc:
            raise KosError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        if address.path is not None:
            os.chmod(address.path, 0o600)
        self._pipelined = one_shot and address.path is not None
        if self._pipelined:
            self.address = self.address._replace(pipeline=True)
        self._closed = threading.Event()
        self._connections: set[RpcPeer] = set()
        self._stream_sockets: set[socket.socket] = set()
        #: large reads opened on this server's connections, waiting for or on their sockets
        self.streams = StreamTable()
        self._pending = PendingHandshakes()
        self._lock = threading.Lock()
        accepting = 2 if one_shot and self._tls is None else 1
        self._threads = [
            threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
            for _ in range(accepting)
        ]

    def start(self) -> Server:
        """Start accepting in a background thread."""
        for thread in self._threads:
            thread.start()
        return self

    def _accept_loop(self) -> None:
        warned = -_WARN_EVERY
        while not self._closed.is_set():
            try:
                self._listener.settimeout(self._pending.expire())
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._closed.is_set():
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                if time.monotonic() - warned >= _WARN_EVERY:
                    warned = time.monotonic()
                    log.warning(
                        "%s: cannot accept (%s); closing unauthenticated connections",
                        self._name,
                        "out of file descriptors" if exc.errno in _NO_FDS else exc,
                    )
                # Give a descriptor back, or wait a little: never spin.
                if not self._pending.free_one(ACCEPT_BACKOFF):
                    self._closed.wait(ACCEPT_BACKOFF)
                continue
            self._pending.admit(sock)
            if self._inline(sock):
                if self._serve_here(sock):
                    return  # the one client was served here; the other thread accepts
                continue
            try:
                threading.Thread(
                    target=self._serve_client,
                    args=(sock,),
                    name=f"{self._name}-client",
                    daemon=True,
                ).start()
            except RuntimeError as exc:  # no thread to be had
                log.warning("%s: refused a connection: %s", self._name, exc)
                self._pending.done(sock, failed=True)
                self._closed.wait(ACCEPT_BACKOFF)

    def _inline(self, sock: socket.socket) -> bool:
        """True if this (accepting) thread is to take ``sock``'s handshake: a one-shot
        Unix server's first connection whose whole opening line is there already.
        """
        if not self._one_shot or self._tls is not None or self.connected.is_set():
            return False
        try:
            if not select.select([sock], [], [], INLINE_WAIT)[0]:
                return False
            return b"\n" in sock.recv(wire.MAX_LINE, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False

    def _serve_here(self, sock: socket.socket) -> bool:
        """Take ``sock`` on this accepting thread; True once the session it opened has
        ended (the other accepting thread goes on), False if it opened none.
        """
        sock, accepted = self._admit(sock)
        if accepted is None:
            return False
        if isinstance(accepted, PendingStream):
            self._send_stream(sock, accepted)
            return False
        self._serve_session(sock, accepted)
        return True

    def _serve_client(self, sock: socket.socket) -> None:
        sock, accepted = self._admit(sock)
        if isinstance(accepted, PendingStream):
            self._send_stream(sock, accepted)
        elif accepted is not None:
            self._serve_session(sock, accepted)

    def _admit(
        self, sock: socket.socket
    ) -> tuple[socket.socket, ServerSession | PendingStream | None]:
        """The socket to go on with (``sock``, or the TLS socket wrapping it) and the
        session or stream its handshake opens; ``None`` (the socket closed) if refused.
        """
        if self._tls is not None:
            try:
                wrapped = self._tls.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except OSError as exc:
                log.info("%s: refused a connection: %s", self._name, exc)
                self._pending.done(sock, failed=True)
                return sock, None
            self._pending.replace(sock, wrapped)
            sock = wrapped
        try:
            accepted = self._handshake(sock)
        except (KosError, OSError) as exc:
            log.info("%s: refused a connection: %s", self._name, exc)
            self._pending.done(sock, failed=True)
            return sock, None
        except Exception:
            log.exception("%s: a handshake failed", self._name)
            self._pending.done(sock, failed=True)
            return sock, None
        self._pending.done(sock, failed=False)
        return sock, accepted

    def _handshake(self, sock: socket.socket) -> ServerSession | PendingStream:
        """The session (or the stream) a new connection's credential opens."""
        sock.settimeout(wire.HANDSHAKE_TIMEOUT)  # the watchdog cuts it sooner if need be
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(sock, ssl.SSLSocket):
            sock.do_handshake()
        token = wire.server_handshake(sock, pipelined=self._pipelined)
        stream = self.streams.take(token)
        if stream is not None:
            return stream
        with self._lock:
            taken = self._one_shot and self.connected.is_set()
            cert = tls.peer_name(sock) if isinstance(sock, ssl.SSLSocket) else None
            if taken:
                session = None
            elif cert and self._certified is not None:
                session = self._certified(token, cert)
            else:
                session = self._authorize(token)
            if session is not None and self._one_shot:
                self.connected.set()
        if session is None:
            wire.refuse(sock, "credentials refused")
            raise KosError("credentials refused")
        session.peer = peer_credentials(sock)
        wire.accept(sock)
        sock.settimeout(None)
        return session

    def _serve_session(self, sock: socket.socket, session: ServerSession) -> None:
        session.streams = self.streams
        requests = session_requests(session, self._config)
        conn = RpcPeer.serving(
            sock,
            session,
            requests,
            self._config.call_timeout,
            call=HANDLE_KOS_CALL,
            unsendable=UNSENDABLE,
        )
        with self._lock:
            self._connections.add(conn)
        try:
            conn.serve_all()
        except Exception as exc:  # a broken peer ends its own connection, nothing else
            log.info("%s: connection ended: %s", self._name, exc)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()
            if self._one_shot:
                self.finished.set()

    def _send_stream(self, sock: socket.socket, stream: PendingStream) -> None:
        with self._lock:
            self._stream_sockets.add(sock)
        try:
            wire.accept(sock)
            stream.send(sock, self._config.call_timeout)
        except OSError as exc:
            log.info("%s: a stream connection broke: %s", self._name, exc)
        finally:
            with self._lock:
                self._stream_sockets.discard(sock)
            sock.close()

    def close(self) -> None:
        """Stop accepting, end every connection, remove the socket file."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:  # a fork server forks only once it is single-threaded
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join(1.0)
        self._pending.cut_all()
        if self.address.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address.path)
        with self._lock:
            conns = list(self._connections)
            streams = list(self._stream_sockets)
        for sock in streams:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.hang_up()


_NO_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket; ``None``
    on TCP (or where the system does not tell).
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if sock.family != socket.AF_UNIX or option is None:
        return None
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return pid, uid, gid
