"""kos over rpyc: the one module that knows rpyc.

rpyc gives us framing, request/reply matching, threading and brine serialisation.
We use it through a connection class whose request table holds only what kos
needs — ping, close, *call a declared method*, *release a reference* — so rpyc's
attribute access, netrefs, pickling and code execution are not reachable from the
wire at all. Every call is one round trip: ``(handle, method, args)`` out,
``(status, payload)`` back. Frame compression is off (it costs more than it saves
on local sockets) and every TCP socket has ``TCP_NODELAY``.

Reply statuses: ``0`` result, ``1`` a declared exception ``(wire_name, args)``,
``2`` an undeclared failure ``(kind, message)``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import socket
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from rpyc.core import brine, consts
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.stream import SocketStream

from . import _streams, _wire
from ._redact import public_message, value_name
from ._streams import PendingStream, StreamTable
from .errors import (
    KosError,
    RemoteError,
    ServiceUnavailable,
)
from .interface import (
    Interface,
    MethodSpec,
    check_value,
    convert,
    find_interface,
    from_wire,
    is_interface,
)

log = logging.getLogger("kos.rpc")

HANDLE_KOS_CALL = 64
HANDLE_KOS_RELEASE = 65
HANDLE_KOS_STREAM = 66
HANDLE_KOS_STREAM_END = 67
OK, DECLARED, FAULT = 0, 1, 2
#: The largest request a service accepts unless it says otherwise (``kos_max_request``).
DEFAULT_MAX_REQUEST = int(os.environ.get("KOS_MAX_REQUEST", str(64 * 1024 * 1024)))
_OVERSIZED = b"\xff"  # marks a frame the channel refused to hold in memory
_PREFIX = 4096
_RECV_CHUNK = 256 * 1024
_REQUEST = brine.I1.pack(consts.MSG_REQUEST)
_MAX_WORKERS = 4
_DISCARD_CHUNK = 64 * 1024
_T = TypeVar("_T")


@dataclass(frozen=True)
class RpcConfig:
    """Tuning of kos connections (rpyc's configuration dict, typed and closed)."""

    call_timeout: float = float(os.environ.get("KOS_CALL_TIMEOUT", "30"))
    connect_timeout: float = 5.0

    def rpyc(self) -> dict[str, Any]:
        """The rpyc protocol configuration this stands for."""
        return {
            "allow_pickle": False,
            "allow_public_attrs": False,
            "allow_all_attrs": False,
            "allow_setattr": False,
            "allow_delattr": False,
            "import_custom_exceptions": False,
            "instantiate_custom_exceptions": False,
            "include_local_traceback": False,
            "include_local_version": False,
            "log_exceptions": False,
            "close_catchall": True,
            "logger": None,
            "sync_request_timeout": self.call_timeout,
        }


DEFAULT_CONFIG = RpcConfig()


class KosStream(SocketStream):  # type: ignore[misc]
    """rpyc's socket stream without its quadratic copying of large writes and reads."""

    def read(self, count: int) -> bytes:
        try:
            first: bytes = self.sock.recv(min(count, _RECV_CHUNK))
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None
        if len(first) == count:  # the common case: one system call, no copy
            return first
        if not first:
            self.close()
            raise EOFError("connection closed by peer")
        # The buffer grows with what arrives, not with what a frame header announces.
        buffer = bytearray(first)
        buffer.extend(bytes(min(len(buffer), count - len(buffer))))
        got = len(first)
        while got < count:
            if got == len(buffer):
                buffer.extend(bytes(min(len(buffer), count - got)))
            try:
                with memoryview(buffer) as view:
                    n = self.sock.recv_into(view[got:], min(len(buffer) - got, _RECV_CHUNK))
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not n:
                self.close()
                raise EOFError("connection closed by peer")
            got += n
        return bytes(buffer)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


class KosChannel(Channel):  # type: ignore[misc]
    """An rpyc channel that never holds more than ``max_frame`` bytes of one request.

    A longer frame is read and dropped in small chunks; ``recv`` then returns a marker
    with the frame's first bytes, from which the connection answers the request with
    an error (so the caller gets a clear exception and the connection goes on).
    """

    def __init__(self, stream: SocketStream, max_frame: int | None = None) -> None:
        super().__init__(stream, compress=False)
        self.max_frame = max_frame

    def send(self, data: bytes) -> None:
        header = self.FRAME_HEADER.pack(len(data), 0)
        if len(data) <= _RECV_CHUNK:
            self.stream.write(header + data + self.FLUSHER)  # one system call
        else:  # no copy of a large frame
            self.stream.write(header)
            self.stream.write(memoryview(data))
            self.stream.write(self.FLUSHER)

    def recv(self) -> bytes:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if compressed:
            raise EOFError("compressed frames are not accepted")
        if self.max_frame is None or length <= self.max_frame:
            if length <= _RECV_CHUNK:  # small: frame and flusher in one read
                data: bytes = self.stream.read(length + len(self.FLUSHER))
                return data[: -len(self.FLUSHER)]
            frame: bytes = self.stream.read(length)
            self.stream.read(len(self.FLUSHER))
            return frame
        prefix = self.stream.read(min(length, _PREFIX))
        left = length - len(prefix) + len(self.FLUSHER)
        while left > 0:
            left -= len(self.stream.read(min(left, _DISCARD_CHUNK)))
        marker: bytes = _OVERSIZED + length.to_bytes(8, "big") + bytes(prefix)
        return marker


def _peek_call(prefix: bytes) -> tuple[int, int, Any, Any] | None:
    """``(seq, handler, handle, method)`` from the start of a request frame, if readable."""
    stream = io.BytesIO(prefix)
    try:
        if stream.read(1) != brine.I1.pack(consts.MSG_REQUEST) or stream.read(1) != brine.TAG_TUP2:
            return None
        seq = brine._load(stream)
        if stream.read(1) != brine.TAG_TUP2:
            return None
        handler = brine._load(stream)
        if handler != HANDLE_KOS_CALL or stream.read(1) != brine.TAG_TUP2:
            return int(seq), int(handler), None, None
        brine._load(stream)  # the boxing label
        if stream.read(1) != brine.TAG_TUP3:
            return int(seq), int(handler), None, None
        return int(seq), int(handler), brine._load(stream), brine._load(stream)
    except Exception:
        return None


class KosConnection(Connection):  # type: ignore[misc]
    """An rpyc connection that serves only kos requests."""

    _workers: ThreadPoolExecutor | None = None

    def __init__(self, root: Any, channel: KosChannel, config: dict[str, Any]) -> None:
        super().__init__(root, channel, config)
        self._concurrent = isinstance(root, Session) and root.concurrent and not self._bind_threads

    def _dispatch(self, data: bytes) -> None:
        if self._concurrent and data[:1] == _REQUEST:
            # rpyc's own request dispatch, except that the call runs on a worker thread.
            self._recvlock.release()
            seq, args = brine.load(data[1:])
            if self._workers is None:
                self._workers = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="kos-call")
            self._workers.submit(self._dispatch_request, seq, args)
            return
        if not data.startswith(_OVERSIZED):
            super()._dispatch(data)
            return
        size = int.from_bytes(data[1:9], "big")
        call = _peek_call(data[9:])
        self._recvlock.release()  # as rpyc's own dispatch does before handling a request
        if call is None:
            raise EOFError(f"refused an unreadable request of {size} bytes")
        seq, _handler, handle, method = call
        session = cast(Session, self._local_root)
        reply = session.too_large(handle, method, size)
        self._send(consts.MSG_REPLY, seq, self._box(reply))

    @classmethod
    def _request_handlers(cls) -> dict[int, Callable[..., Any]]:
        return {
            consts.HANDLE_PING: cls._handle_ping,
            consts.HANDLE_CLOSE: cls._handle_close,
            HANDLE_KOS_CALL: cls._handle_kos_call,
            HANDLE_KOS_RELEASE: cls._handle_kos_release,
            HANDLE_KOS_STREAM: cls._handle_kos_stream,
            HANDLE_KOS_STREAM_END: cls._handle_kos_stream_end,
        }

    def _handle_kos_call(self, handle: int, method: str, args: tuple[Any, ...]) -> Any:
        session = cast(Session, self._local_root)
        _current.session = session
        try:
            return session.dispatch(handle, method, args)
        finally:
            _current.session = None

    def _cleanup(self, _anyway: bool = True) -> None:
        super()._cleanup(_anyway)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    def _dispatch_request(self, seq: int, raw_args: Any) -> None:
        super()._dispatch_request(seq, raw_args)
        root = self._local_root
        if isinstance(root, Session) and root.ending:
            # The reply is sent; now hang up (a servant asked for it, e.g. Close()).
            self._channel.close()

    def _handle_kos_release(self, handle: int) -> None:
        cast(Session, self._local_root).release(handle)

    def _handle_kos_stream(self, handle: int, size: int) -> Any:
        return cast(Session, self._local_root).open_stream(handle, size)

    def _handle_kos_stream_end(self, token: str) -> Any:
        timeout = float(self._config["sync_request_timeout"])
        return cast(Session, self._local_root).end_stream(token, timeout)


_current = threading.local()


def current_session() -> Session | None:
    """The session whose call the current thread is serving, if any."""
    return cast("Session | None", getattr(_current, "session", None))


class Session:
    """The server side of one connection: the objects this client may call, by handle.

    Handle 0 is the object the client's credential named; objects returned by
    reference get further handles, valid only on this connection.
    """

    def __init__(
        self,
        root: object,
        interface: type[Interface],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._objects: dict[int, tuple[object, type[Interface]]] = {0: (root, interface)}
        self._next = itertools.count(1)
        self._on_close = on_close
        self.ending = False
        #: run this client's calls on worker threads, so one that blocks (a read waiting
        #: for a person to type) does not hold up the others (set ``kos_concurrent``)
        self.concurrent = getattr(root, "kos_concurrent", False) is True
        limit = getattr(root, "kos_max_request", None)
        #: requests larger than this are refused without being held in memory
        self.max_request = int(limit) if isinstance(limit, int) else DEFAULT_MAX_REQUEST
        #: where large reads of this connection's files are sent from (set by the server)
        self.streams: StreamTable | None = None
        #: (pid, uid, gid) of the peer process on a Unix socket; ``None`` over TCP
        self.peer: tuple[int, int, int] | None = None

    def too_large(self, handle: Any, method: Any, size: int) -> tuple[int, Any]:
        """The reply to a request of ``size`` bytes that was too large to accept.

        The object may say what that means for it with ``kos_too_large(method, size)``,
        raising one of its declared exceptions (a full bucket, say).
        """
        entry = self._objects.get(handle) if type(handle) is int else None
        spec = entry[1].methods().get(method) if entry and type(method) is str else None
        hook = getattr(entry[0], "kos_too_large", None) if entry else None
        message = f"a request of {size} bytes is larger than this service accepts"
        if spec is not None and callable(hook):
            try:
                hook(method, size)
            except KosError as exc:
                if exc.wire_name and spec.exception(exc.wire_name) is not None:
                    return DECLARED, (exc.wire_name, _plain_args(exc))
        return FAULT, ("RequestTooLarge", f"{message} ({self.max_request} bytes)")

    def end_after_reply(self) -> None:
        """Close this connection once the call being served has been answered."""
        self.ending = True

    def on_connect(self, conn: Connection) -> None:
        """Called by rpyc when the connection is set up."""

    def on_disconnect(self, conn: Connection) -> None:
        """Called by rpyc when the connection ends: drop references, run the close hook."""
        self._objects.clear()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            try:
                on_close()
            except Exception:
                log.exception("connection close hook failed")

    def release(self, handle: int) -> None:
        """Forget an object the client no longer references."""
        if handle != 0:
            self._objects.pop(handle, None)

    def dispatch(self, handle: int, method: str, args: tuple[Any, ...]) -> tuple[int, Any]:
        """Call one declared method; never raises (failures are encoded in the reply)."""
        try:
            obj, interface, spec = self._find(handle, method)
            call_args = _check_args(spec, args)
        except _Refused as refused:
            return refused.reply
        except TypeError as exc:
            return FAULT, ("TypeError", str(exc))
        try:
            result = getattr(obj, method)(*call_args)
        except (Exception, SystemExit) as exc:  # SystemExit must not travel as itself
            return self._failure(interface, spec, exc)
        try:
            if spec.returns_refs:
                return OK, self._encode_refs(result, spec.returns)
            return OK, check_value(result, spec.returns, f"result of {method}()")
        except TypeError as exc:
            log.error("%s.%s returned a bad value: %s", interface.wire_name, method, exc)
            return FAULT, ("TypeError", str(exc))

    def _find(self, handle: Any, method: Any) -> tuple[object, type[Interface], MethodSpec]:
        entry = self._objects.get(handle) if type(handle) is int else None
        if entry is None:
            raise _Refused("NoSuchObject", f"no handle {value_name(handle)} on this connection")
        obj, interface = entry
        spec = interface.methods().get(method) if type(method) is str else None
        if spec is None:
            raise _Refused("NoSuchMethod", f"{interface.wire_name}: no method {value_name(method)}")
        return obj, interface, spec

    def _failure(
        self, interface: type[Interface], spec: MethodSpec, exc: BaseException
    ) -> tuple[int, Any]:
        """The reply reporting that ``spec``'s method raised ``exc``."""
        if isinstance(exc, KosError):
            if not exc.wire_name or spec.exception(exc.wire_name) is None:
                log.info("%s.%s raised undeclared %r", interface.wire_name, spec.name, exc)
                return FAULT, (exc.wire_name or type(exc).__name__, public_message(str(exc)))
            return DECLARED, (exc.wire_name, _plain_args(exc))
        log.warning("%s.%s failed", interface.wire_name, spec.name, exc_info=exc)
        return FAULT, (type(exc).__name__, public_message(str(exc)))

    def open_stream(self, handle: Any, size: Any) -> tuple[int, Any]:
        """The reply to ``KOS_STREAM``: a large ``read(size)`` of the object ``handle``
        names, inline or as a stream (see :mod:`kos_core._streams`); ``None`` if the
        object cannot stream.
        """
        try:
            obj, interface, spec = self._find(handle, "read")
        except _Refused as refused:
            return refused.reply
        hook = getattr(obj, "kos_read_stream", None)
        if self.streams is None or not callable(hook):
            return OK, None
        if type(size) is not int:
            return FAULT, ("TypeError", "the size of a read must be an int")

        def fail(exc: BaseException) -> tuple[int, Any]:
            return self._failure(interface, spec, exc)

        try:
            stream = hook(size)
            return OK, None if stream is None else self.streams.open(stream, fail)
        except Exception as exc:
            return fail(exc)

    def end_stream(self, token: Any, timeout: float) -> tuple[int, Any]:
        """The reply to ``KOS_STREAM_END``: how the stream ``token`` opened went."""
        if self.streams is None:
            return FAULT, ("NoSuchStream", "this connection sends no streams")
        try:
            failure = self.streams.end(token, timeout)
        except (LookupError, TimeoutError) as exc:
            return FAULT, (type(exc).__name__, str(exc))
        return failure or (OK, None)

    def _encode_refs(self, value: Any, tp: Any) -> Any:
        return convert(value, tp, self._encode_leaf, lists=tuple)

    def _encode_leaf(self, value: Any, tp: Any) -> Any:
        if not is_interface(tp):
            return check_value(value, tp, "result")
        if value is None:
            return None
        sbh = sbh_of(value)
        if sbh is not None:
            return ("s", sbh)
        handle = next(self._next)
        self._objects[handle] = (value, tp)
        return ("h", handle)


class _Refused(Exception):
    """A request names no object or method this session serves."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.reply = (FAULT, (kind, message))


def _check_args(spec: MethodSpec, args: Any) -> tuple[Any, ...]:
    if type(args) is not tuple:
        raise TypeError("arguments must be a tuple")
    if not spec.required <= len(args) <= len(spec.params):
        raise TypeError(f"{spec.name}() takes {len(spec.params)} arguments, {len(args)} given")
    out = []
    for given, (tp, what, by_reference, has_lists) in zip(args, spec.arg_checks, strict=False):
        if by_reference:
            raise TypeError(f"{what}: passing objects by reference to a server is not supported")
        value = check_value(given, tp, what)
        out.append(from_wire(value, tp, _no_references) if has_lists else value)
    return tuple(out)


def _no_references(value: Any, interface: type[Interface]) -> Any:
    raise TypeError("references cannot be passed to a server")


def _plain_args(exc: BaseException) -> tuple[Any, ...]:
    if all(isinstance(a, (str, bytes, int, float, bool, type(None))) for a in exc.args):
        return tuple(exc.args)
    return (str(exc),)


# --------------------------------------------------------------------------- server


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
        session.peer = _peer_credentials(sock)
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


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


# --------------------------------------------------------------------------- client


class _ClientRoot:
    """What a client serves back to its server: nothing."""

    def on_connect(self, conn: Connection) -> None:
        """Rpyc hook; nothing to do."""

    def on_disconnect(self, conn: Connection) -> None:
        """Rpyc hook; nothing to do."""


class Link:
    """A client's connection to one served object (connected on first use).

    ``what`` names the object in error messages.
    """

    def __init__(
        self,
        address: _wire.Address,
        token: str,
        what: str,
        config: RpcConfig = DEFAULT_CONFIG,
    ) -> None:
        self.address = address
        self.token = token
        self.what = what
        self._config = config
        self._conn: KosConnection | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        """True once the connection is open and not closed."""
        return self._conn is not None and not self._conn.closed

    def connect(self) -> KosConnection:
        """Open the connection now (idempotent); raises :class:`ServiceUnavailable` etc."""
        conn = self._conn
        if conn is not None:
            return conn
        with self._lock:
            if self._conn is not None:
                return self._conn
            if self._closed:
                raise ServiceUnavailable(f"{self.what}: connection already closed")
            channel = KosChannel(KosStream(self._open_socket(self.token)))
            self._conn = KosConnection(_ClientRoot(), channel, self._config.rpyc())
            # Dropping the last proxy hangs up: a factory child sees its client go.
            weakref.finalize(self, _hang_up, channel)
            return self._conn

    def _open_socket(self, token: str, *, stream: bool = False) -> socket.socket:
        """A new socket to :attr:`address`, past the handshake with ``token`` (for a
        stream's bytes, with ``stream``).
        """
        try:
            sock = self.address.connect(self._config.connect_timeout)
        except OSError as exc:
            raise ServiceUnavailable(
                f"{self.what}: cannot connect to {self.address}: {exc.strerror or exc}"
            ) from exc
        try:
            _wire.client_handshake(sock, token, stream=stream)
            sock.settimeout(None)
        except OSError as exc:
            sock.close()
            raise ServiceUnavailable(f"{self.what}: handshake failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return sock

    def read_stream(self, handle: int, spec: MethodSpec, size: int) -> Any:
        """A large ``read(size)`` of the object ``handle`` names, inline or on a second
        connection (see :mod:`kos_core._streams`); ``None`` if that object cannot
        stream. ``spec`` is its ``read`` method, whose declared exceptions the read raises.
        """
        reply = self._request(HANDLE_KOS_STREAM, spec, (handle, size))
        if reply is None:
            return None
        if _is_inline(reply):
            return reply[1]
        if not _is_stream(reply):
            raise RemoteError("ProtocolError", f"{self.what}: malformed reply to a stream request")
        _, token, length = reply
        data = _streams.receive(
            self._open_socket(token, stream=True), length, self._config.call_timeout, self.what
        )
        self._request(HANDLE_KOS_STREAM_END, spec, (token,))
        if length is not None and len(data) != length:
            message = f"{self.what}: the stream ended after {len(data)} of {length} bytes"
            raise RemoteError("ShortStream", message)
        return data

    def _request(self, handler: int, spec: MethodSpec, args: tuple[Any, ...]) -> Any:
        conn = self._conn or self.connect()
        try:
            status, payload = conn.sync_request(handler, *args)
        except (AsyncResultTimeout, EOFError, OSError) as exc:
            raise self._unavailable(spec, exc) from None
        return self._result(spec, status, payload)

    def invoke(self, handle: int, spec: MethodSpec, args: tuple[Any, ...]) -> Any:
        """Call ``spec`` on the object ``handle`` names; rebuild the result or exception."""
        return self._request(HANDLE_KOS_CALL, spec, (handle, spec.name, args))

    def begin(self, handle: int, spec: MethodSpec, args: tuple[Any, ...]) -> Callable[[], Any]:
        """Send a call without waiting; the returned function waits for its result.

        Several calls in flight on one connection overlap their round trips (used to
        stream a large read in pieces).
        """
        conn = self._conn or self.connect()
        with self._translated(spec):
            pending = conn.async_request(HANDLE_KOS_CALL, handle, spec.name, args)
        pending.set_expiry(self._config.call_timeout)

        def result() -> Any:
            with self._translated(spec):
                status, payload = pending.value
            return self._result(spec, status, payload)

        return result

    @contextlib.contextmanager
    def _translated(self, spec: MethodSpec) -> Iterator[None]:
        try:
            yield
        except (AsyncResultTimeout, EOFError, OSError) as exc:
            raise self._unavailable(spec, exc) from None

    def _unavailable(self, spec: MethodSpec, exc: BaseException) -> ServiceUnavailable:
        if isinstance(exc, AsyncResultTimeout):
            return ServiceUnavailable(
                f"{self.what}: no answer to {spec.name}() within {self._config.call_timeout:g} s"
            )
        return ServiceUnavailable(f"{self.what}: the serving process is gone ({exc})")

    def _result(self, spec: MethodSpec, status: int, payload: Any) -> Any:
        if status == OK:
            if spec.plain_result:
                return payload
            return from_wire(payload, spec.returns, self._make_ref)
        kind, detail = payload
        if status == DECLARED:
            exc_class = spec.exception(kind)
            if exc_class is not None:
                raise exc_class(*detail)
            raise RemoteError(kind, " ".join(map(str, detail)))
        raise RemoteError(kind, detail)

    def release(self, handle: int) -> None:
        """Tell the server a by-reference object is no longer used (no reply awaited)."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(Exception):
            # No result object: one would keep the connection alive, waiting for a
            # reply that is never read, after its last proxy is gone.
            conn._async_request(HANDLE_KOS_RELEASE, (handle,))

    def _make_ref(self, wire: Any, interface: type[Interface]) -> Any:
        if wire is None:
            return None
        kind, value = wire
        if kind == "s":
            return object_of_sbh(value, interface)
        return make_proxy(interface, self, int(value))

    def close(self) -> None:
        """Close the connection (the server side sees a disconnect)."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _is_inline(reply: Any) -> bool:
    return (
        type(reply) is tuple
        and len(reply) == 2
        and reply[0] == "i"
        and isinstance(reply[1], (bytes, str))
    )


def _is_stream(reply: Any) -> bool:
    if type(reply) is not tuple or len(reply) != 3 or reply[0] != "s":
        return False
    _, token, length = reply
    return type(token) is str and (length is None or (type(length) is int and length >= 0))


def _hang_up(channel: KosChannel) -> None:
    with contextlib.suppress(Exception):
        channel.close()


class RemoteObject:
    """Base of generated client proxies. Attributes are prefixed ``_kos_`` so they
    never shadow interface methods (``FileAPI.File`` has ``open`` and ``close``).
    """

    _kos_proxy_of: type[Interface] | None = None
    _kos_link: Link
    _kos_handle: int
    _kos_sbh: str | None

    def __init__(self, link: Link, handle: int = 0, sbh: str | None = None) -> None:
        self._kos_link = link
        self._kos_handle = handle
        self._kos_sbh = sbh
        if handle:
            weakref.finalize(self, link.release, handle)

    def __repr__(self) -> str:
        iface = self._kos_proxy_of
        name = iface.wire_name if iface else "?"
        return f"<{name} proxy: {self._kos_link.what} #{self._kos_handle}>"


_PROXY_CLASSES: dict[type[Interface], type[RemoteObject]] = {}


def proxy_class(interface: type[Interface]) -> type[RemoteObject]:
    """The generated client proxy class for ``interface`` (a subclass of it)."""
    cls = _PROXY_CLASSES.get(interface)
    if cls is None:
        # An interface may give its proxies client-side behaviour (a mixin whose
        # methods call the remote ones as ``_kos_remote_<name>``).
        mixin = getattr(interface, "_kos_client_mixin", None)
        bases: tuple[type, ...] = (RemoteObject, interface)
        namespace: dict[str, Any] = {"_kos_proxy_of": interface, "__slots__": ()}
        for name, spec in interface.methods().items():
            remote = _proxy_method(spec)
            namespace[f"_kos_remote_{name}"] = remote
            if mixin is None or name not in vars(mixin):
                namespace[name] = remote
        if mixin is not None:
            bases = (mixin, *bases)
        cls = type(f"{interface.__name__}Proxy", bases, namespace)
        _PROXY_CLASSES[interface] = cls
    return cls


def _proxy_method(spec: MethodSpec) -> Callable[..., Any]:
    checks = tuple((tp, what) for tp, what, _, _ in spec.arg_checks)

    def method(self: RemoteObject, *args: Any, **kwargs: Any) -> Any:
        bound = spec.bind(args, kwargs)
        wire = tuple(check_value(v, tp, what) for v, (tp, what) in zip(bound, checks, strict=True))
        return self._kos_link.invoke(self._kos_handle, spec, wire)

    method.__name__ = spec.name
    method.__doc__ = spec.doc
    return method


def make_proxy(
    interface: type[Interface], link: Link, handle: int = 0, sbh: str | None = None
) -> Any:
    """A proxy of ``interface`` for the object ``handle`` on ``link``."""
    return proxy_class(interface)(link, handle, sbh)


def object_of_sbh(sbh: str, interface: type[_T] | str | None = None) -> Any:
    """A proxy for the object an SBH names; connects on first call.

    ``interface`` is the interface class or its wire name; it is required because an
    SBH names a place, not a type.
    """
    if interface is None:
        raise TypeError("object_of_sbh needs the interface (class or wire name)")
    iface = find_interface(interface) if isinstance(interface, str) else interface
    if not is_interface(iface):
        raise TypeError(f"{interface!r} is not an interface")
    address, token = _wire.parse_sbh(sbh)
    link = Link(address, token, f"{cast(type[Interface], iface).wire_name} at {address}")
    return make_proxy(cast(type[Interface], iface), link, 0, sbh)


def sbh_of(obj: object) -> str | None:
    """The SBH a proxy was made from, or ``None`` for local objects and by-reference proxies."""
    if isinstance(obj, RemoteObject) and obj._kos_handle == 0:
        return obj._kos_sbh
    return None


def link_of(obj: object) -> Link | None:
    """The link a proxy talks through, or ``None`` for local objects."""
    return obj._kos_link if isinstance(obj, RemoteObject) else None
