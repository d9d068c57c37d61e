"""A client's new socket to a served object: connected, then past the kos handshake, or,
to a server whose SBH allows it (``?pipeline=1``, a factory child's), with only the
opening line sent and the first request right behind it: one round trip instead of two.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

from kos_core._net import wire
from kos_core._rpc.client_peer import ClientPeer
from kos_core.errors import AuthenticationFailed, CommunicationError, ServiceUnavailable

#: sends the first request on a new connection; returns the function that waits for its reply
First = Callable[[ClientPeer], Callable[[], Any]]


def open_socket(
    address: wire.Address,
    token: str,
    timeout: float,
    what: str,
    *,
    stream: bool = False,
    pipelined: bool = False,
) -> socket.socket:
    """A new socket to ``address``, past the handshake with ``token`` (for a stream's
    bytes, with ``stream``); with ``pipelined``, only the opening line is sent: the caller
    reads the answer (:func:`pipeline`). Failures are kos's errors, ``what`` their target.
    """
    try:
        sock = address.connect(timeout)
    except AuthenticationFailed as exc:  # a certificate of another kernel
        raise exc.concerning(what) from None
    except OSError as exc:
        if wire.certificate_refused(exc):
            raise AuthenticationFailed(
                f"the server at {address} presented a certificate that no"
                f" authority this client trusts has signed ({exc.verify_message})",
                target=what,
            ) from None
        raise ServiceUnavailable(
            f"cannot connect to {address}: {exc.strerror or exc}", target=what
        ) from exc
    with handshaking(sock, what):
        if pipelined:
            wire.send_opening(sock, token)
        else:
            wire.client_handshake(sock, token, stream=stream)
            sock.settimeout(None)
    return sock


def pipeline(conn: ClientPeer, sock: socket.socket, first: First, what: str) -> Callable[[], Any]:
    """Send the first request on ``conn`` (over ``sock``, whose opening line is out), then
    read the server's answer to the line (a refusal raises); return the function that
    waits for the request's reply.
    """
    answer = sock.dup()  # a failed send closes ``sock``; a refusal is still read here
    unsent: OSError | EOFError | None = None
    try:
        try:
            reply = first(conn)
        except (OSError, EOFError) as exc:  # a server that refused may have hung up
            unsent = exc
        with handshaking(answer, what):
            wire.read_answer(answer, leave_rest=True)
    finally:
        answer.close()
    if unsent is not None:
        raise unsent
    sock.settimeout(None)
    return reply


@contextlib.contextmanager
def handshaking(sock: socket.socket, what: str) -> Iterator[None]:
    """What breaks during the handshake on ``sock`` closes it and is raised as kos's
    error (``what`` its target).
    """
    try:
        yield
    except OSError as exc:
        sock.close()
        raise ServiceUnavailable(f"handshake failed: {exc}", target=what) from exc
    except CommunicationError as exc:
        sock.close()
        raise exc.concerning(what) from exc.__cause__
    except BaseException:
        sock.close()
        raise
