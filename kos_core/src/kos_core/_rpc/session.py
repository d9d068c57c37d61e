"""The server side of one kos connection: the objects its client may call, by handle."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from kos_core._rpc.client import sbh_of
from kos_core._rpc.connection import DECLARED, DEFAULT_MAX_REQUEST, FAULT, OK
from kos_core._rpc.redact import public_message, value_name
from kos_core._rpc.streams import StreamTable
from kos_core.errors import KosError
from kos_core.interface import (
    Interface,
    MethodSpec,
    check_value,
    convert,
    from_wire,
    is_interface,
)

log = logging.getLogger("kos.rpc")

#: objects one connection may hold by reference at once (besides the one it opened)
MAX_REFERENCES = 10_000


class ServerSession:
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
        larger = getattr(root, "kos_larger_requests", None)
        #: methods of the root object that accept larger requests: name → bytes
        self.larger_requests: dict[str, int] = dict(larger) if isinstance(larger, dict) else {}
        #: where large reads of this connection's files are sent from (set by the server)
        self.streams: StreamTable | None = None
        #: ``(pid, uid, gid)`` of the client on a Unix socket (``SO_PEERCRED``), ``None``
        #: on TCP; set by the server before the first call is served
        self.peer: tuple[int, int, int] | None = None

    def cap_for(self, handle: Any, method: Any) -> int:
        """The largest request accepted for calling ``method`` of object ``handle``."""
        if handle == 0 and type(method) is str:
            return max(self.max_request, self.larger_requests.get(method, 0))
        return self.max_request

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
        return FAULT, ("RequestTooLarge", f"{message} ({self.cap_for(handle, method)} bytes)")

    def end_after_reply(self) -> None:
        """Close this connection once the call being served has been answered."""
        self.ending = True

    def disconnected(self) -> None:
        """The connection has ended: drop references, run the close hook."""
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
            return FAULT, ("TypeError", public_message(str(exc)))
        try:
            result = getattr(obj, method)(*call_args)
        except (Exception, SystemExit) as exc:  # SystemExit must not travel as itself
            return self._failure(interface, spec, exc)
        try:
            if spec.returns_refs:
                return OK, self._encode_refs(result, spec.returns, spec.result_what)
            return OK, check_value(result, spec.returns, spec.result_what)
        except _Refused as refused:
            return refused.reply
        except TypeError as exc:
            log.error("%s.%s returned a bad value: %s", interface.wire_name, method, exc)
            return FAULT, ("TypeError", public_message(str(exc)))

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
        names, inline or as a stream (see :mod:`kos_core._rpc.streams`); ``None`` if the
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

    def _encode_refs(self, value: Any, tp: Any, what: str) -> Any:
        return convert(value, tp, lambda v, t: self._encode_leaf(v, t, what), lists=tuple)

    def _encode_leaf(self, value: Any, tp: Any, what: str) -> Any:
        if not is_interface(tp):
            return check_value(value, tp, what)
        if value is None:  # None passes only where the type says "| None" (convert)
            raise TypeError(f"{what} must be {tp.wire_name}, not None")
        sbh = sbh_of(value)
        if sbh is not None:
            return ("s", sbh)
        if len(self._objects) > MAX_REFERENCES:
            raise _Refused(
                "TooManyReferences",
                f"this connection holds {MAX_REFERENCES} objects by reference; release some",
            )
        handle = next(self._next)
        self._objects[handle] = (value, tp)
        return ("h", handle)


class _Refused(Exception):
    """A request names no object or method this session serves, or would hold more
    objects than it may.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.reply = (FAULT, (kind, message))


def _check_args(spec: MethodSpec, args: Any) -> tuple[Any, ...]:
    if type(args) is not tuple:
        raise TypeError("arguments must be a tuple")
    if spec.takes_as_is(args):
        return args
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
        return tuple(public_message(a) if isinstance(a, str) else a for a in exc.args)
    return (public_message(str(exc)),)


def check_implements(obj: object, iface: type[Interface]) -> None:
    """Raise ``TypeError`` naming the methods of ``iface`` that ``obj`` lacks."""
    missing = [m for m in iface.methods() if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(
            f"{type(obj).__name__} does not implement {iface.wire_name}: missing {missing}"
        )
