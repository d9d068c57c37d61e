"""The kos protocol over the connection layer (:mod:`kos_core._rpc.rpyc_seam`): request
ids, reply statuses, configuration, and what a serving connection answers.

Every call is one round trip: ``(handle, method, args)`` out, ``(status, payload)``
back. Reply statuses: ``0`` result, ``1`` a declared exception ``(wire_name, args)``,
``2`` an undeclared failure ``(kind, message)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from kos_core._os import environment

if TYPE_CHECKING:
    from kos_core._rpc.session import ServerSession

HANDLE_KOS_CALL = 64
HANDLE_KOS_RELEASE = 65
HANDLE_KOS_STREAM = 66
HANDLE_KOS_STREAM_END = 67
OK, DECLARED, FAULT = 0, 1, 2
#: The largest request a service accepts unless it says otherwise (``kos_max_request``).
DEFAULT_MAX_REQUEST = environment.max_request()
#: the reply sent in place of one that is not a plain value
UNSENDABLE = (FAULT, ("TypeError", "the reply is not a plain value"))


class RpcConfig(NamedTuple):
    """Tuning of kos connections (a named tuple: every client makes this class, and a
    dataclass takes longer to make).
    """

    call_timeout: float = environment.call_timeout()
    connect_timeout: float = 5.0


DEFAULT_CONFIG = RpcConfig()


def session_requests(session: ServerSession, config: RpcConfig) -> dict[int, Callable[..., Any]]:
    """What a connection serving ``session`` answers: request id → function of the
    request's arguments that returns the reply.
    """

    def call(handle: int, method: str, args: tuple[Any, ...]) -> Any:
        _current.session = session
        try:
            return session.dispatch(handle, method, args)
        finally:
            _current.session = None

    def stream_end(token: str) -> Any:
        return session.end_stream(token, config.call_timeout)

    return {
        HANDLE_KOS_CALL: call,
        HANDLE_KOS_RELEASE: session.release,
        HANDLE_KOS_STREAM: session.open_stream,
        HANDLE_KOS_STREAM_END: stream_end,
    }


_current = threading.local()


def current_session() -> ServerSession | None:
    """The session whose call the current thread is serving, if any."""
    return cast("ServerSession | None", getattr(_current, "session", None))
