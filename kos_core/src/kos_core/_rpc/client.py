"""The client side of kos connections: a :class:`ClientConnection` to one served object and the
generated proxies that call through it. Every call is one round trip:
``(handle, method, args)`` out, ``(status, payload)`` back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar, cast

from kos_core._net import wire
from kos_core._rpc import dial, streams
from kos_core._rpc.client_peer import ClientPeer, NoReply
from kos_core._rpc.connection import (
    DECLARED,
    DEFAULT_CONFIG,
    HANDLE_KOS_CALL,
    HANDLE_KOS_RELEASE,
    HANDLE_KOS_STREAM,
    HANDLE_KOS_STREAM_END,
    OK,
    RpcConfig,
)
from kos_core.errors import (
    CallTimeout,
    CommunicationError,
    ConnectionLost,
    ProtocolMismatch,
    RemoteError,
    ServiceUnavailable,
    UsageError,
)
from kos_core.interface import (
    Interface,
    MethodSpec,
    check_value,
    find_interface,
    from_wire,
    is_interface,
)

_T = TypeVar("_T")


class ClientConnection:
    """A client's connection to one served object (connected on first use).

    ``what`` names the object in error messages (their ``target``).
    """

    def __init__(
        self,
        address: wire.Address,
        token: str,
        what: str,
        config: RpcConfig = DEFAULT_CONFIG,
    ) -> None:
        self.address = address
        self.token = token
        self.what = what
        self._config = config
        self._conn: ClientPeer | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: a call timed out and its connection was dropped (objects held by reference
        #: on it are gone; the next call on the object itself reconnects)
        self._dropped = False

    @property
    def connected(self) -> bool:
        """True once the connection is open and not closed."""
        return self._conn is not None and not self._conn.closed

    def connect(self) -> ClientPeer:
        """Open the connection now (idempotent); raises :class:`ServiceUnavailable` etc."""
        conn = self._conn
        if conn is not None:
            return conn
        return self._open(None)[0]

    def _open(self, first: dial.First | None) -> tuple[ClientPeer, Callable[[], Any] | None]:
        """The connection, opened unless another thread has; and, if ``first`` (which
        sends a request) sent it pipelined behind the opening line (a server whose SBH
        allows it: one round trip instead of two), the function that waits for its reply.
        """
        with self._lock:
            if self._conn is not None:
                return self._conn, None
            if self._closed:
                raise ServiceUnavailable("connection already closed", target=self.what)
            pipelined = first is not None and self.address.pipeline
            sock = self._open_socket(self.token, pipelined=pipelined)
            conn = ClientPeer(sock, self._config.call_timeout)
            reply = None
            if first is not None and pipelined:
                try:
                    reply = dial.pipeline(conn, sock, first, self.what)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
            # Dropping the last proxy hangs up: a factory child sees its client go.
            weakref.finalize(self, conn.hang_up)
            return conn, reply

    def _open_socket(
        self, token: str, *, stream: bool = False, pipelined: bool = False
    ) -> socket.socket:
        """A new socket to :attr:`address` past the handshake (see :func:`.dial.open_socket`)."""
        return dial.open_socket(
            self.address,
            token,
            self._config.connect_timeout,
            self.what,
            stream=stream,
            pipelined=pipelined,
        )

    def read_stream(self, handle: int, spec: MethodSpec, size: int) -> Any:
        """A large ``read(size)`` of the object ``handle`` names, inline or on a second
        connection (see :mod:`kos_core._rpc.streams`); ``None`` if that object cannot
        stream. ``spec`` is its ``read`` method, whose declared exceptions the read raises.
        """
        reply = self._request(HANDLE_KOS_STREAM, spec, (handle, size))
        if reply is None:
            return None
        if streams.is_inline(reply):
            return reply[1]
        if not streams.is_stream(reply):
            message = "malformed reply to a stream request"
            raise ProtocolMismatch(message, target=self.what, method=spec.name)
        _, token, length = reply
        try:
            sock = self._open_socket(token, stream=True)
            data = streams.receive(sock, length, self._config.call_timeout, self.what)
        except CommunicationError as exc:
            raise exc.concerning(self.what, spec.name) from exc.__cause__
        self._request(HANDLE_KOS_STREAM_END, spec, (token,))
        if length is not None and len(data) != length:
            message = f"the stream ended after {len(data)} of {length} bytes"
            raise ConnectionLost(message, target=self.what, method=spec.name)
        return data

    def _request(
        self, handler: int, spec: MethodSpec, args: tuple[Any, ...], handle: int | None = None
    ) -> Any:
        """One request and its result: ``args`` of a call of ``spec`` on the object
        ``handle`` names, or, without ``handle``, of any other request.
        """
        conn = self._conn
        timeout = self._config.call_timeout
        try:
            reply = None
            if conn is None:
                conn, reply = self._open(
                    lambda peer: _begin(peer, handler, spec, args, handle=handle, timeout=timeout)
                )
            if reply is not None:
                status, payload = reply()
            elif handle is None:
                status, payload = conn.request(handler, args, timeout)
            else:
                status, payload = conn.call(handler, handle, spec.name, args, timeout)
        except (NoReply, EOFError, OSError, CommunicationError) as exc:
            self._translate(exc, spec, conn)
        return self._result(spec, status, payload)

    def invoke(self, handle: int, spec: MethodSpec, args: tuple[Any, ...]) -> Any:
        """Call ``spec`` on the object ``handle`` names; rebuild the result or exception."""
        if handle and self._dropped:
            raise ConnectionLost(
                "this object was held on a connection dropped after a call timed out; get it again",
                target=self.what,
                method=spec.name,
            )
        return self._request(HANDLE_KOS_CALL, spec, args, handle)

    def begin(self, handle: int, spec: MethodSpec, args: tuple[Any, ...]) -> Callable[[], Any]:
        """Send a call without waiting; the returned function waits for its result.

        Several calls in flight on one connection overlap their round trips (used to
        stream a large read in pieces).
        """
        with self._translated(spec) as conn:
            timeout = self._config.call_timeout
            pending = conn.begin(HANDLE_KOS_CALL, handle, spec.name, args, timeout)

        def result() -> Any:
            with self._translated(spec, conn):
                status, payload = pending()
            return self._result(spec, status, payload)

        return result

    @contextlib.contextmanager
    def _translated(self, spec: MethodSpec, conn: ClientPeer | None = None) -> Iterator[ClientPeer]:
        """The connection (opened if need be); what breaks on it raised as kos's errors."""
        try:
            conn = conn or self._conn or self.connect()
            yield conn
        except (NoReply, EOFError, OSError, CommunicationError) as exc:
            self._translate(exc, spec, conn)

    def _translate(self, exc: Exception, spec: MethodSpec, conn: ClientPeer | None) -> NoReturn:
        """Raise what broke on ``conn`` during a call of ``spec`` as kos's error."""
        if isinstance(exc, NoReply):
            if conn is not None:
                self._drop(conn)
            raise CallTimeout(
                f"no answer within {self._config.call_timeout:g} s",
                target=self.what,
                method=spec.name,
            ) from None
        if isinstance(exc, CommunicationError):
            raise exc.concerning(self.what, spec.name) from exc.__cause__
        raise ConnectionLost(
            f"the serving process is gone ({exc})", target=self.what, method=spec.name
        ) from None

    def _result(self, spec: MethodSpec, status: int, payload: Any) -> Any:
        try:
            if status == OK:
                if spec.plain_result:
                    return payload
                return from_wire(payload, spec.returns, self._make_ref)
            kind, detail = payload
            exc_class = spec.exception(kind) if status == DECLARED else None
            failure = exc_class(*detail) if exc_class is not None else None
        except (TypeError, ValueError, UsageError) as exc:
            raise ProtocolMismatch(
                f"a reply this client cannot decode ({exc})", target=self.what, method=spec.name
            ) from None
        if failure is not None:
            try:
                raise failure
            finally:  # the traceback holds this frame: keep the frame from holding it
                del failure
        if status == DECLARED:
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
            conn.post(HANDLE_KOS_RELEASE, (handle,))

    def _make_ref(self, wire: Any, interface: type[Interface]) -> Any:
        if wire is None:
            return None
        kind, value = wire
        if kind == "s":
            return object_of_sbh(value, interface)
        return make_proxy(interface, self, int(value))

    def _drop(self, conn: ClientPeer) -> None:
        """Close ``conn`` after a call on it timed out: a late reply must not be taken for
        the next call's, and the server sees the disconnect. The next call reconnects.
        """
        with self._lock:
            if self._conn is conn:
                self._conn = None
                self._dropped = True
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close the connection (the server side sees a disconnect)."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _begin(
    peer: ClientPeer,
    handler: int,
    spec: MethodSpec,
    args: tuple[Any, ...],
    *,
    handle: int | None,
    timeout: float,
) -> Callable[[], Any]:
    """Send what :meth:`ClientConnection._request` sends, without waiting for the reply."""
    if handle is None:
        return peer.begin_request(handler, args, timeout)
    return peer.begin(handler, handle, spec.name, args, timeout)


class RemoteObject:
    """Base of generated client proxies. Attributes are prefixed ``_kos_`` so they
    never shadow interface methods (``FileAPI.File`` has ``open`` and ``close``).
    """

    _kos_proxy_of: type[Interface] | None = None
    _kos_link: ClientConnection
    _kos_handle: int
    _kos_sbh: str | None

    def __init__(self, link: ClientConnection, handle: int = 0, sbh: str | None = None) -> None:
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
        if kwargs or not spec.takes_as_is(args):
            bound = spec.bind(args, kwargs)
            pairs = zip(bound, checks, strict=True)
            args = tuple([check_value(v, tp, what) for v, (tp, what) in pairs])
        return self._kos_link.invoke(self._kos_handle, spec, args)

    method.__name__ = spec.name
    method.__doc__ = spec.doc
    return method


def make_proxy(
    interface: type[Interface], link: ClientConnection, handle: int = 0, sbh: str | None = None
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
    address, token = wire.parse_sbh(sbh)
    link = ClientConnection(
        address, token, f"{cast(type[Interface], iface).wire_name} at {address}"
    )
    return make_proxy(cast(type[Interface], iface), link, 0, sbh)


def sbh_of(obj: object) -> str | None:
    """The SBH a proxy was made from, or ``None`` for local objects and by-reference proxies."""
    if isinstance(obj, RemoteObject) and obj._kos_handle == 0:
        return obj._kos_sbh
    return None


def connection_of(obj: object) -> ClientConnection | None:
    """The link a proxy talks through, or ``None`` for local objects."""
    return obj._kos_link if isinstance(obj, RemoteObject) else None
