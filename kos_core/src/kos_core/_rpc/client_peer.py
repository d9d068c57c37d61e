"""The client's end of a kos connection: requests out, their replies back, nothing served.

The messages are rpyc's, byte for byte (the frames of :mod:`~kos_core._rpc.frames`, the
brine of :mod:`~kos_core._rpc.rpyc_seam.codec`); the serving end is an rpyc connection
(:class:`~kos_core._rpc.rpyc_seam.peer.RpcPeer`). A client needs none of rpyc's general
machinery (netrefs, exceptions, attribute access, a service of its own), so it does not
import rpyc, which would cost a new client process more than the rest of its start-up.

Threads share a connection this way: a caller that finds nobody reading reads, blocking
on the socket, until its own reply is in, and hands each other caller's reply to it; a
caller that finds somebody reading waits until its reply is handed over or the reader is
done, and then reads itself. rpyc's ping is answered and its close request ends the
connection; anything else (a reply to no request, an exception message, a value boxed
by reference, another request) ends it too, as a refusal.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kos_core._rpc.frames import Frames
from kos_core._rpc.rpyc_seam.codec import (
    HANDLE_CLOSE,
    HANDLE_PING,
    LABEL_VALUE,
    MSG_REQUEST,
    REPLY,
    REQUEST,
    Refused,
    call_pieces,
    pieces,
    reply_of,
    reply_pieces,
    request_of,
)

__all__ = ["ClientPeer", "NoReply"]

_REPLY_KIND = REPLY[0]
_PENDING = object()  # a request whose reply is awaited and not in yet
_DROPPED = object()  # a request whose reply nobody waits for


class NoReply(Exception):
    """No reply to a request arrived within its timeout."""


class ClientPeer:
    """A client's connection over ``sock`` (past the kos handshake); see the module."""

    def __init__(self, sock: socket.socket, call_timeout: float) -> None:
        self._frames = Frames(sock)
        self._frames.patience = call_timeout  # a read stalled this long mid-frame gives up
        self._seq = itertools.count()
        self._reading = threading.Lock()
        self._handover = threading.Condition()  # reentrant: a finalizer may post meanwhile
        #: seq → _PENDING, the reply handed over, or _DROPPED, for requests not answered yet
        self._awaited: dict[int, Any] = {}

    @property
    def closed(self) -> bool:
        """True once the connection is closed or broken."""
        return self._frames.closed

    def fileno(self) -> int:
        """The socket's file descriptor (to watch for the server's end of it)."""
        return self._frames.fileno()

    def request(self, handler: int, args: tuple[Any, ...], timeout: float) -> Any:
        """Send one request and wait for its reply; raises :class:`NoReply` after
        ``timeout`` seconds, :class:`EOFError` if the connection breaks.
        """
        return self.begin_request(handler, args, timeout)()

    def call(
        self, handler: int, handle: int, method: str, args: tuple[Any, ...], timeout: float
    ) -> Any:
        """``request(handler, (handle, method, args), timeout)``, the request made faster."""
        deadline = time.monotonic() + timeout
        return self._wait(self._start_call(handler, handle, method, args), deadline, timeout)

    def begin_request(
        self, handler: int, args: tuple[Any, ...], timeout: float
    ) -> Callable[[], Any]:
        """Send one request; the returned function waits for its reply (as :meth:`request`).

        Several requests in flight on one connection overlap their round trips.
        """
        deadline = time.monotonic() + timeout
        seq = self._start_request(handler, args, _PENDING)
        return lambda: self._wait(seq, deadline, timeout)

    def begin(
        self, handler: int, handle: int, method: str, args: tuple[Any, ...], timeout: float
    ) -> Callable[[], Any]:
        """Send a :meth:`call`; the returned function waits for its reply."""
        deadline = time.monotonic() + timeout
        seq = self._start_call(handler, handle, method, args)
        return lambda: self._wait(seq, deadline, timeout)

    def post(self, handler: int, args: tuple[Any, ...]) -> None:
        """Send one request whose reply nobody waits for."""
        self._start_request(handler, args, _DROPPED)

    def hang_up(self) -> None:
        """Close the socket now (a thread reading it sees the connection end)."""
        self._frames.close()

    def close(self) -> None:
        """Tell the server (rpyc's close request) and close the socket."""
        if self.closed:
            return
        try:
            self.post(HANDLE_CLOSE, ())
        except (EOFError, OSError):
            pass
        finally:
            self._ended()

    # -- sending -------------------------------------------------------------------------

    def _start_call(self, handler: int, handle: int, method: str, args: tuple[Any, ...]) -> int:
        seq = next(self._seq)
        self._send(seq, call_pieces(seq, handler, handle, method, args), _PENDING)
        return seq

    def _start_request(self, handler: int, args: tuple[Any, ...], marker: object) -> int:
        seq = next(self._seq)
        self._send(seq, pieces(MSG_REQUEST, seq, (handler, (LABEL_VALUE, args))), marker)
        return seq

    def _send(self, seq: int, message: list[bytes], marker: object) -> None:
        """Send request ``seq``, noting ``marker`` for its reply.

        rpyc 6.0's request: ``(seq, (handler, box))``, plain values in a LABEL_VALUE box.
        """
        if self.closed:
            raise EOFError("connection closed")
        self._awaited[seq] = marker
        try:
            self._frames.send_pieces(message)
        except BaseException:
            self._awaited.pop(seq, None)
            raise

    # -- receiving -----------------------------------------------------------------------

    def _wait(self, seq: int, deadline: float, timeout: float) -> Any:
        """The reply to ``seq``: read here, or handed over by the thread reading."""
        while True:
            if self._reading.acquire(blocking=False):
                try:
                    return self._read_until(seq, deadline, timeout)
                finally:
                    self._reading.release()
                    if self._awaited:  # others wait: one of them reads from here on
                        with self._handover:
                            self._handover.notify_all()
            with self._handover:
                while self._awaited.get(seq) is _PENDING and self._reading.locked():
                    if self.closed:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._awaited.pop(seq, None)
                        raise NoReply(f"no reply within {timeout:g} s")
                    self._handover.wait(left)
                value = self._awaited.get(seq, _PENDING)
                if value is not _PENDING:
                    del self._awaited[seq]
                    return value
                if self.closed and self._reading.locked():
                    self._awaited.pop(seq, None)
                    raise EOFError("connection closed")

    def _read_until(self, seq: int, deadline: float, timeout: float) -> Any:
        """Read frames (holding ``_reading``) until the reply to ``seq`` is in."""
        awaited = self._awaited
        while True:
            value = awaited.get(seq, _PENDING)
            if value is not _PENDING:  # handed over before this thread began to read
                del awaited[seq]
                return value
            try:
                data = self._frames.recv(deadline)
            except TimeoutError:
                awaited.pop(seq, None)
                self._ended()
                raise NoReply(f"no reply within {timeout:g} s") from None
            except EOFError:
                awaited.pop(seq, None)
                self._ended()
                raise
            try:
                kind = data[:1]
                if data[0] == _REPLY_KIND:
                    got, value = self._reply(data)
                    if got == seq:
                        del awaited[seq]
                        return value
                    self._hand_over(got, value)
                elif kind == REQUEST:
                    self._answer(data)
                else:
                    raise Refused(f"an unsolicited rpyc message of type {bytes(kind).hex()}")
            except EOFError as exc:  # refused, or rpyc's close
                if isinstance(exc, Refused):
                    _log_refusal(exc)
                awaited.pop(seq, None)
                self._ended()
                raise

    def _reply(self, data: memoryview) -> tuple[int, Any]:
        seq, value = reply_of(data)
        if type(seq) is not int or seq not in self._awaited:
            raise Refused("a reply to no request of ours")
        return seq, value

    def _hand_over(self, seq: int, value: Any) -> None:
        """Give another caller its reply (or forget one nobody waits for)."""
        if self._awaited.get(seq) is _DROPPED:
            del self._awaited[seq]
            return
        with self._handover:
            self._awaited[seq] = value
            self._handover.notify_all()

    def _answer(self, data: memoryview) -> None:
        """Answer rpyc's ping (its echo) and close (the end); nothing else is served."""
        seq, handler, args = request_of(data)
        if handler == HANDLE_CLOSE:
            raise EOFError("the server closed the connection")
        if handler != HANDLE_PING or type(seq) is not int or len(args) != 1:
            raise Refused(f"rpyc request {handler!r}, which a client does not serve")
        self._frames.send_pieces(reply_pieces(seq, *args))

    def _ended(self) -> None:
        """The connection is over: close the socket, wake every caller waiting on it."""
        self._frames.close()
        with self._handover:
            self._handover.notify_all()


def _log_refusal(exc: Refused) -> None:
    import logging  # only now: a client that is never refused never loads logging

    logging.getLogger("kos.rpc").info("closed a connection: %s", exc)
