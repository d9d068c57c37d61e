"""The accepting side of kos connections: one listener, a thread per connection."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable

from . import _wire
from ._connection import DEFAULT_CONFIG, KosChannel, KosConnection, KosStream, RpcConfig
from ._session import Session
from ._streams import PendingStream, StreamTable
from .errors import KosError

log = logging.getLogger("kos.rpc")


class Server:
    """Accepts kos connections on one address; each authenticated client gets a thread.

    ``authorize(token)`` returns the :class:`Session` for a credential, or ``None``
    to refuse it. Garbage, wrong credentials and wrong protocol versions are refused
    during the handshake and never reach rpyc.
    """

    def __init__(
        self,
        address: _wire.Address,
        authorize: Callable[[str], Session | None],
        *,
        name: str,
        config: RpcConfig = DEFAULT_CONFIG,
        one_shot: bool = False,
    ) -> None:
        self._authorize = authorize
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
        self._closed = threading.Event()
        self._connections: set[KosConnection] = set()
        self._stream_sockets: set[socket.socket] = set()
        #: large reads opened on this server's connections, waiting for or on their sockets
        self.streams = StreamTable()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"{name}-accept", daemon=True
        )

    def start(self) -> Server:
        """Start accepting in a background thread."""
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            threading.Thread(
                target=self._serve_client, args=(sock,), name=f"{self._name}-client", daemon=True
            ).start()

    def _serve_client(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(_wire.HANDSHAKE_TIMEOUT)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            token = _wire.server_handshake(sock)
            stream = self.streams.take(token)
            if stream is not None:
                self._send_stream(sock, stream)
                return
            with self._lock:
                taken = self._one_shot and self.connected.is_set()
                session = None if taken else self._authorize(token)
                if session is not None and self._one_shot:
                    self.connected.set()
            if session is None:
                _wire.refuse(sock, "credentials refused")
                raise KosError("credentials refused")
            _wire.accept(sock)
            sock.settimeout(None)
        except (KosError, OSError) as exc:
            log.info("%s: refused a connection: %s", self._name, exc)
            sock.close()
            return
        session.streams = self.streams
        channel = KosChannel(KosStream(sock), session.max_request)
        conn = KosConnection(session, channel, self._config.rpyc())
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
            _wire.accept(sock)
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
                conn._channel.close()
