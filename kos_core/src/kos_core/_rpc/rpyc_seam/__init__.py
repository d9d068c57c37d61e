"""Everything kos takes from rpyc, behind one narrow seam: the only package importing it
(this module and :mod:`~kos_core._rpc.rpyc_seam.codec`, the messages as bytes).

:class:`RpcPeer` is an rpyc connection that carries only kos messages. The rest of kos
makes one with ``RpcPeer.client`` or ``RpcPeer.serving`` and uses ``request``, ``begin``,
``post``, ``serve_all``, ``close``, ``hang_up`` and ``closed``; :class:`NoReply`,
:class:`EOFError` and :class:`OSError` are all it raises. It answers rpyc's ping and close
and the kos requests it is given, accepts replies only to its own requests and only of
plain values; any other message (an exception message, a value boxed by reference, an
unknown request) ends the connection before rpyc handles it, so rpyc's exception and
netref machinery (which caches a class per name it is sent) is never reached. Frames are
not compressed, and a serving channel never holds more of a request than it accepts.

Calls take a lean path where they can: ``request`` on a connection no other thread is
reading sends its request and reads the frames itself, blocking on the socket (no
``poll``, no result object) until its reply is in, and hands any other thread's reply
to it as rpyc would; a connection another thread is reading falls back to rpyc's
``async_request``. ``serve_all`` reads a serving connection's frames the same way on
its own thread. The bytes on the wire are rpyc's either way.

At each override and private name: what it relies on in rpyc 6.0.2 (the pyproject allows
``>=6.0,<7``); ``kos_core/tests/test_rpyc_seam.py`` fails if any of that changes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from rpyc.core import consts
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.protocol import Connection
from rpyc.lib import Timeout

from kos_core._rpc.frames import OVERSIZED, Frames
from kos_core._rpc.rpyc_seam.codec import REPLY as _REPLY
from kos_core._rpc.rpyc_seam.codec import REQUEST as _REQUEST
from kos_core._rpc.rpyc_seam.codec import Refused as _Refused
from kos_core._rpc.rpyc_seam.codec import load_message, peek_call, pieces
from kos_core._rpc.rpyc_seam.codec import unboxed as _unboxed

__all__ = ["RPYC_HANDLERS", "NoReply", "RpcPeer", "Served", "peek_call"]

log = logging.getLogger("kos.rpc")

_MAX_WORKERS = 4
_MAX_QUEUED = 64  # calls of one concurrent connection waiting for a worker
#: request handler ids rpyc itself defines (kos's own must not be among them)
RPYC_HANDLERS = frozenset(v for k, v in vars(consts).items() if k.startswith("HANDLE_"))


class NoReply(Exception):
    """No reply to a request arrived within its timeout."""


class Served(Protocol):
    """What a serving connection asks of the object it serves (a ``ServerSession``)."""

    concurrent: bool  # serve requests on worker threads
    ending: bool  # hang up once the reply being sent is out
    max_request: int  # the longest request frame held in memory...

    def cap_for(self, handle: Any, method: Any) -> int:
        """...unless this allows a longer one for calling ``method`` of ``handle``."""

    def too_large(self, handle: Any, method: Any, size: int) -> Any:
        """The reply to a call of ``size`` bytes that was not held in memory."""

    def disconnected(self) -> None:
        """The connection has ended."""


def _config(call_timeout: float) -> dict[str, Any]:
    # rpyc 6.0: Connection's configuration keys (rpyc.core.protocol.DEFAULT_CONFIG).
    closed = ("allow_pickle", "allow_public_attrs", "allow_all_attrs", "allow_setattr")
    quiet = ("include_local_traceback", "include_local_version", "log_exceptions")
    exceptions = ("allow_delattr", "import_custom_exceptions", "instantiate_custom_exceptions")
    return dict.fromkeys(closed + quiet + exceptions, False) | {
        "close_catchall": True,
        "logger": None,
        "bind_threads": False,  # RpcPeer._dispatch does the unbound hand-over only
        "sync_request_timeout": call_timeout,  # how long close() waits for its reply
    }


class _Channel(Frames):
    """kos's frames as rpyc's Connection uses a channel.

    rpyc 6.0: the connection calls ``send(payload)``, ``recv()`` (one payload),
    ``poll(timeout)`` with an ``rpyc.lib.Timeout`` (or seconds), ``close()``, ``fileno()``;
    the frame layout is rpyc's ``Channel.FRAME_HEADER`` and ``FLUSHER`` (uncompressed).
    """

    def poll(self, timeout: Any) -> bool:
        return super().poll(Timeout(timeout).timeleft())


def _reply_of(data: bytes | memoryview) -> tuple[Any, Any]:
    """``(seq, boxed value)`` of a reply message."""
    try:
        seq, boxed = load_message(data)
    except Exception:
        raise _Refused("an unreadable reply") from None
    return seq, boxed


class _Root:
    """The "service" rpyc is given: only told when the connection ends."""

    def __init__(self, disconnected: Callable[[], None]) -> None:
        self.disconnected = disconnected

    def on_disconnect(self, conn: Any) -> None:
        """Pass on the end (rpyc 6.0: ``Connection._cleanup`` calls this of its root)."""
        self.disconnected()


def _nothing() -> None:
    """A client's connection has nothing to do when it ends."""


class RpcPeer(Connection):  # type: ignore[misc]
    """An rpyc connection that carries only kos messages (see the module's docstring)."""

    _workers: ThreadPoolExecutor | None = None
    _unsendable: Any = None
    _call = -1

    def __init__(
        self,
        channel: _Channel,
        call_timeout: float,
        served: Served | None = None,
        requests: Mapping[int, Callable[..., Any]] | None = None,
    ) -> None:
        root = _Root(served.disconnected if served else _nothing)
        super().__init__(root, channel, _config(call_timeout))
        self._served = served
        # rpyc 6.0: _handle_ping(data) echoes, _handle_close() cleans the connection up.
        self._answers: dict[int, Callable[..., Any]] = {
            consts.HANDLE_PING: self._handle_ping,
            consts.HANDLE_CLOSE: self._handle_close,
            **(requests or {}),
        }
        self._concurrent = served is not None and served.concurrent is True
        self._queued = threading.BoundedSemaphore(_MAX_QUEUED)

    @classmethod
    def client(cls, sock: socket.socket, call_timeout: float) -> RpcPeer:
        """A client's connection over ``sock`` (past the kos handshake)."""
        channel = _Channel(sock)
        channel.patience = call_timeout  # a read stalled this long mid-frame gives up
        return cls(channel, call_timeout)

    @classmethod
    def serving(
        cls,
        sock: socket.socket,
        served: Served,
        requests: Mapping[int, Callable[..., Any]],
        call_timeout: float,
        *,
        call: int,
        unsendable: Any,
    ) -> RpcPeer:
        """A connection over ``sock`` that answers ``requests`` (handler id → function of
        the request's arguments, returning the reply, or ``unsendable`` in its place if
        that is not a plain value) for ``served``; ``call`` is the handler whose requests
        ``served.cap_for`` may allow to be longer.
        """
        if not RPYC_HANDLERS.isdisjoint(requests):
            raise ValueError("kos requests must not reuse rpyc's handler ids")

        def allow(prefix: bytes, length: int) -> bool:
            peeked = peek_call(prefix, call)
            return peeked is not None and length <= served.cap_for(*peeked[2:])

        peer = cls(_Channel(sock, served.max_request, allow), call_timeout, served, requests)
        peer._call, peer._unsendable = call, unsendable
        return peer

    # -- the seam ------------------------------------------------------------------------

    def request(self, handler: int, args: tuple[Any, ...], timeout: float) -> Any:
        """Send one request and wait for its reply; raises :class:`NoReply` after
        ``timeout`` seconds, :class:`EOFError` or :class:`OSError` if the connection breaks.
        """
        if not self._recvlock.acquire(blocking=False):  # another thread reads: rpyc's way
            return self.begin(handler, args, timeout)()
        try:
            return self._call_alone(handler, args, timeout)
        finally:
            with contextlib.suppress(RuntimeError):  # unless _cleanup released it
                self._recvlock.release()
            if self._request_callbacks:  # a thread waiting for its reply may read now
                with self._recv_event:  # rpyc 6.0: such threads wait on this
                    self._recv_event.notify_all()

    def _call_alone(self, handler: int, args: tuple[Any, ...], timeout: float) -> Any:
        """``request``, reading the socket on this thread (which holds ``_recvlock``)."""
        if self._closed:
            raise EOFError("connection closed")
        deadline = time.monotonic() + timeout
        # rpyc 6.0: what async_request sends (_get_seq_id, _box), without its callback.
        seq = self._get_seq_id()
        try:  # plain values (what kos sends) go in a LABEL_VALUE box, as _box puts them
            message = pieces(consts.MSG_REQUEST, seq, (handler, (consts.LABEL_VALUE, args)))
        except TypeError:  # anything else as rpyc boxes it (which a kos peer refuses)
            message = pieces(consts.MSG_REQUEST, seq, (handler, self._box(args)))
        self._transmit(message)
        while True:
            try:
                data = self._channel.recv(deadline)
            except TimeoutError:
                raise NoReply(f"no reply within {timeout:g} s") from None
            except EOFError:
                self.close()
                raise
            try:
                if data[:1] == _REPLY:
                    got, boxed = _reply_of(data)
                    if got == seq:
                        return _unboxed(boxed)
                self._recvlock.acquire()  # _dispatch releases it once, as in serve()
                self._dispatch(data)
            except _Refused as exc:
                log.info("closed a connection: %s", exc)
                self._cleanup(_anyway=False)
                raise
            with self._recv_event:
                self._recv_event.notify_all()

    def serve_all(self) -> None:
        """Serve this connection's messages until it ends (on this thread, blocking)."""
        try:
            while not self._closed:
                data = self._channel.recv()
                self._recvlock.acquire()  # rpyc 6.0: _dispatch is entered holding it
                self._dispatch(data)
        except _Refused as exc:
            log.info("closed a connection: %s", exc)
            self._cleanup(_anyway=False)
        except EOFError:
            pass
        except OSError:
            if not self._closed:
                raise
        finally:
            self.close()

    def begin(self, handler: int, args: tuple[Any, ...], timeout: float) -> Callable[[], Any]:
        """Send one request; the returned function waits for its reply (as :meth:`request`).

        Several requests in flight on one connection overlap their round trips.
        """
        pending = self.async_request(handler, *args, timeout=timeout)

        def reply() -> Any:
            try:
                return pending.value
            except AsyncResultTimeout:  # rpyc 6.0: the builtin TimeoutError
                raise NoReply(f"no reply within {timeout:g} s") from None

        return reply

    def post(self, handler: int, args: tuple[Any, ...]) -> None:
        """Send one request whose reply nobody waits for."""
        # rpyc 6.0: _async_request(handler, args) registers a callback that drops the
        # reply; no result object keeps the connection alive waiting for it.
        self._async_request(handler, args)

    def hang_up(self) -> None:
        """Close the socket now (the thread serving the connection sees it end)."""
        self._channel.close()  # rpyc 6.0: the Channel given to __init__

    # -- rpyc's hooks --------------------------------------------------------------------

    def serve(self, timeout: Any = 1, wait_for_lock: bool = True, waiting: Any = None) -> bool:
        """Serve one message (rpyc's ``serve``); a refused one ends the connection."""
        try:
            served: bool = super().serve(timeout, wait_for_lock, waiting or (lambda: True))
        except _Refused as exc:
            log.info("closed a connection: %s", exc)
            self._cleanup(_anyway=False)
            raise
        return served

    def _dispatch(self, data: bytes | memoryview) -> None:
        # rpyc 6.0 (unbound threads): serve() calls this holding _recvlock once, and
        # notifies _recv_event after it returns; rpyc's own _dispatch releases the lock
        # before serving a request and after handing a reply to its callback (so the
        # thread it wakes finds its result set). This does the same, and reads a request
        # before it lets go (``data`` is a view of the channel's buffer, which the next
        # reader fills).
        kind = bytes(data[:1])
        try:
            if kind == _REPLY:
                callback, value = self._reply(data)
                callback(False, value)
                return
            if kind == _REQUEST:
                seq, handler, args = self._request(data)
            elif kind == OVERSIZED and self._served is not None:
                data = bytes(data)
            else:
                raise _Refused(f"an unsolicited rpyc message of type {kind.hex()}")
        finally:
            self._recvlock.release()
        if kind == OVERSIZED:
            self._refuse_oversized(data)
        elif not self._concurrent:
            self._serve_request(seq, handler, args)
        else:
            # The call runs on a worker thread; at most _MAX_QUEUED wait for one.
            while not self._queued.acquire(timeout=1.0):
                if self.closed:
                    raise EOFError("connection closed")
            if self._workers is None:
                self._workers = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="kos-call")
            self._workers.submit(self._serve_queued, seq, handler, args)

    def _send(self, msg: int, seq: int, args: Any) -> None:
        # rpyc 6.0: _send(msg, seq, args) frames and sends one message, thread-safely.
        self._transmit(pieces(msg, seq, args))

    def _transmit(self, message: list[bytes]) -> None:
        """Send one message's pieces (see :func:`~.codec.pieces`) in one frame.

        As rpyc 6.0's ``_send``: a thread that finds the send lock taken queues its
        message for the holder to send (a finalizer may post a release while its own
        thread is sending).
        """
        self._send_queue.append(message)
        while self._send_queue:
            if not self._sendlock.acquire(False):
                return
            try:
                if self._send_queue:
                    self._channel.send_pieces(self._send_queue.pop(0))
            finally:
                self._sendlock.release()

    def _request(self, data: bytes | memoryview) -> tuple[int, Callable[..., Any], tuple[Any, ...]]:
        try:
            seq, (handler, boxed) = load_message(data)
        except Exception:
            raise _Refused("an unreadable request") from None
        answer = self._answers.get(handler) if type(handler) is int else None
        if answer is None:
            raise _Refused(f"rpyc request {handler!r}, which kos does not serve")
        args = _unboxed(boxed)
        if type(seq) is not int or type(args) is not tuple:
            raise _Refused("a malformed request")
        return seq, answer, args

    def _reply(self, data: bytes | memoryview) -> tuple[Callable[[bool, Any], None], Any]:
        seq, boxed = _reply_of(data)
        value = _unboxed(boxed)
        # rpyc 6.0: _request_callbacks maps a request's seq to callback(is_exc, value).
        callback = self._request_callbacks.pop(seq, None) if type(seq) is int else None
        if callback is None:
            raise _Refused("a reply to no request of ours")
        return callback, value

    def _serve_request(self, seq: int, answer: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = answer(*args)
        except EOFError:
            raise
        except Exception as exc:  # arguments a kos peer never sends
            raise _Refused(f"a malformed request ({type(exc).__name__})") from None
        try:
            message = pieces(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, result))
        except TypeError:  # not a plain value
            message = pieces(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, self._unsendable))
        self._transmit(message)
        if self._served is not None and self._served.ending is True:
            self.hang_up()  # the reply is sent; a servant asked for this (Close(), say)

    def _serve_queued(self, seq: int, answer: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._serve_request(seq, answer, args)
        except Exception as exc:  # the reading thread sees the connection end
            log.info("closed a connection: %s", exc)
            self.hang_up()
        finally:
            self._queued.release()

    def _refuse_oversized(self, data: bytes | memoryview) -> None:
        size = int.from_bytes(data[1:9], "big")
        call = peek_call(data[9:], self._call)
        if call is None or self._served is None:
            raise _Refused(f"an unreadable request of {size} bytes")
        seq, _handler, handle, method = call
        reply = self._served.too_large(handle, method, size)
        self._send(consts.MSG_REPLY, seq, (consts.LABEL_VALUE, reply))

    @classmethod
    def _request_handlers(cls) -> dict[int, Callable[..., Any]]:
        # rpyc 6.0: __init__ keeps this table as _HANDLERS for its own _dispatch (which
        # this class replaces) and _cleanup deletes it; rpyc's other handlers stay out.
        return {consts.HANDLE_PING: cls._handle_ping, consts.HANDLE_CLOSE: cls._handle_close}

    def _cleanup(self, _anyway: bool = True) -> None:
        # rpyc 6.0: called once the connection ends (_anyway=False: unless already closed).
        super()._cleanup(_anyway)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
