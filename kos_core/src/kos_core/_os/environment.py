"""Numbers read from the environment (``KOS_CALL_TIMEOUT`` and the like), checked.

A value that is not a number in its range is a :class:`~kos_core.errors.UsageError`
naming the variable, what it counts and what it was, never a bare ``ValueError``.
``kos run`` checks every one of them before it starts (:func:`check`): a bad one would
otherwise stop each plugin process as it starts.
"""

from __future__ import annotations

import math
import os

from kos_core.errors import UsageError


def number(name: str, default: float, meaning: str, *, low: float, high: float) -> float:
    """``$name`` as a number from ``low`` to ``high`` (``default`` if unset or empty);
    ``meaning`` says what it counts ("seconds", say) in the error for a bad value.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # nan, inf and garbage fail this too
        span = f"from {_plain(low)} to {_plain(high)}"
        raise UsageError(f"{name} must be a number of {meaning} {span}, not {text!r}")
    return value


def call_timeout() -> float:
    """``KOS_CALL_TIMEOUT``: seconds a client waits for an answer (30)."""
    return number("KOS_CALL_TIMEOUT", 30.0, "seconds", low=0.001, high=86400 * 365)


def max_request() -> int:
    """``KOS_MAX_REQUEST``: bytes of the largest request a service accepts (64 MiB)."""
    return int(number("KOS_MAX_REQUEST", 64 * 1024 * 1024, "bytes", low=0, high=2**62))


def spawn_timeout() -> float:
    """``KOS_SPAWN_TIMEOUT``: seconds a factory waits for a new child's address (10)."""
    return number("KOS_SPAWN_TIMEOUT", 10.0, "seconds", low=0.001, high=3600)


def child_client_timeout() -> float:
    """``KOS_CHILD_CLIENT_TIMEOUT``: seconds a child waits for its client (5)."""
    return number("KOS_CHILD_CLIENT_TIMEOUT", 5.0, "seconds", low=0.001, high=3600)


def check() -> None:
    """Raise :class:`UsageError` for the first of these variables set to a bad value."""
    for read in (call_timeout, max_request, spawn_timeout, child_client_timeout):
        read()


def _plain(value: float) -> str:
    """``value`` without an exponent or trailing zeros: 0.001, 31536000."""
    return format(value, "f").rstrip("0").rstrip(".")
