"""What error messages may say on the wire: no heap addresses, no reprs of objects.

A reply's message is read by a peer, which may be anyone holding a token. A repr such as
``<built-in method get of dict object at 0x7f3a…>`` tells it where the server's heap
lies and names its internals; :func:`public_message` removes both from any text, and
:func:`value_name` names what a peer sent without calling its ``repr`` (which, for a
reference, would even run the peer's code).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["public_message", "value_name"]

_OBJECT_REPR = re.compile(r"<([^<>]*?) at 0x[0-9a-fA-F]+>")
_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)(?= object\b)")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_SHORT = 40


def public_message(text: str) -> str:
    """``text`` without heap addresses: ``<pkg.mod.Thing object at 0x7f…>`` becomes
    ``<Thing object>``, and any other long hexadecimal address becomes ``0x…``.
    """
    text = _OBJECT_REPR.sub(lambda m: "<" + _QUALIFIED.sub(r"\1", m[1]) + ">", text)
    return _ADDRESS.sub("0x…", text)


def value_name(value: Any) -> str:
    """How an error message names a value a peer sent: plain scalars by a short repr,
    anything else by its type's name.
    """
    kind = type(value)
    if kind in (int, float, bool, type(None)):
        return repr(value)
    if kind in (str, bytes):
        if len(value) <= _SHORT:
            return repr(value)
        return f"{value[:_SHORT]!r}… ({len(value)} long)"
    name = kind.__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"
