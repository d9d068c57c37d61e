"""The serving end of a kos connection: an rpyc connection that carries only kos messages.

:class:`RpcPeer` is made with ``RpcPeer.serving``; the rest of kos uses ``serve_all``,
``close``, ``hang_up`` and ``closed``. It answers rpyc's ping and close and the kos
requests it is given, accepts replies only to its own requests (rpyc's close) and only
of plain values; any other message (an exception message, a value boxed by reference, an
unknown request) ends the connection before rpyc handles it, so rpyc's exception and
netref machinery (which caches a class per name it is sent) is never reached. Frames are
not compressed, and a serving channel never holds more of a request than it accepts.
``serve_all`` reads the connection's frames on its own thread, blocking on the socket (no
``poll`` per frame); a concurrent session's calls run on worker threads.

The client's end is :class:`~kos_core._rpc.client_peer.ClientPeer`, which needs none of
rpyc's machinery and does not import it. At each override and private name: what it
relies on in rpyc 6.0.2 (the pyproject allows ``>=6.0,<7``);
``kos_core/tests/test_rpyc_seam.py`` fails if any of that changes.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from rpyc.core import consts
from rpyc.core.protocol import Connection

from kos_core._rpc.frames import OVERSIZED, Frames
from kos_core._rpc.rpyc_seam.codec import Refused as _Refused
from kos_core._rpc.rpyc_seam.codec import (
    RequestHeads,
    peek_call,
    pieces,
    reply_of,
    reply_pieces,
    request_of,
)

__all__ = ["RPYC_HANDLERS", "RpcPeer", "Served"]

log = logging.getLogger("kos.rpc")
_REQUEST, _REPLY, _OVERSIZED = consts.MSG_REQUEST, consts.MSG_REPLY, OVERSIZED[0]

_MAX_WORKERS = 4
_MAX_QUEUED = 64  # calls of one concurrent connection waiting for a worker
#: request handler ids rpyc itself defines (kos's own must not be among them)
RPYC_HANDLERS = frozenset(v for k, v in vars(consts).items() if k.startswith("HANDLE_"))


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
        "bind_threads": False,  # one reader: serve_all
        "sync_request_timeout": call_timeout,  # how long close() waits for its reply
    }


class _Root:
    """The "service" rpyc is given: only told when the connection ends."""

    def __init__(self, disconnected: Callable[[], None]) -> None:
        self.disconnected = disconnected

    def on_disconnect(self, conn: Any) -> None:
        """Pass on the end (rpyc 6.0: ``Connection._cleanup`` calls this of its root)."""
        self.disconnected()


class RpcPeer(Connection):  # type: ignore[misc]
    """An rpyc connection that carries only kos messages (see the module's docstring)."""

    _workers: ThreadPoolExecutor | None = None
    _unsendable: Any = None
    _call = -1

    def __init__(
        self,
        channel: Frames,
        call_timeout: float,
        served: Served,
        requests: Mapping[int, Callable[..., Any]],
    ) -> None:
        super().__init__(_Root(served.disconnected), channel, _config(call_timeout))
        self._served = served
        # rpyc 6.0: _handle_ping(data) echoes, _handle_close() cleans the connection up.
        self._answers: dict[int, Callable[..., Any]] = {
            consts.HANDLE_PING: self._handle_ping,
            consts.HANDLE_CLOSE: self._handle_close,
            **requests,
        }
        self._concurrent = served.concurrent is True
        self._heads = RequestHeads()
        self._queued = threading.BoundedSemaphore(_MAX_QUEUED)

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

        peer = cls(Frames(sock, served.max_request, allow), call_timeout, served, requests)
        peer._call, peer._unsendable = call, unsendable
        return peer

    # -- the seam ------------------------------------------------------------------------

    def serve_all(self) -> None:
        """Serve this connection's messages until it ends (on this thread, blocking)."""
        try:
            while not self._closed:
                self._dispatch(self._channel.recv())
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

    def hang_up(self) -> None:
        """Close the socket now (the thread serving the connection sees it end)."""
        self._channel.close()  # rpyc 6.0: the Channel given to __init__

    # -- rpyc's hooks --------------------------------------------------------------------

    def _dispatch(self, data: bytes | memoryview) -> None:
        # rpyc 6.0: the reader of the connection hands each message to this. Only
        # serve_all reads a serving connection, so no other thread waits for its turn.
        # A request is decoded here, before the next frame is read into the channel's
        # buffer (which ``data`` is a view of).
        kind = data[0]
        if kind == _REPLY:
            callback, value = self._reply(data)
            callback(False, value)
            return
        if kind == _REQUEST:
            seq, handler, args = self._request(data)
        elif kind == _OVERSIZED:
            data = bytes(data)
        else:
            raise _Refused(f"an unsolicited rpyc message of type {kind:02x}")
        if kind == _OVERSIZED:
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
        self._channel.send_pieces(pieces(msg, seq, args))

    def _request(self, data: bytes | memoryview) -> tuple[int, Callable[..., Any], tuple[Any, ...]]:
        seq, handler, args = request_of(data, self._heads)
        answer = self._answers.get(handler) if type(handler) is int else None
        if answer is None:
            raise _Refused(f"rpyc request {handler!r}, which kos does not serve")
        if type(seq) is not int or type(args) is not tuple:
            raise _Refused("a malformed request")
        return seq, answer, args

    def _reply(self, data: bytes | memoryview) -> tuple[Callable[[bool, Any], None], Any]:
        seq, value = reply_of(data)
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
            message = reply_pieces(seq, result)
        except TypeError:  # not a plain value
            message = reply_pieces(seq, self._unsendable)
        self._channel.send_pieces(message)
        if self._served.ending is True:
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
        if call is None:
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
