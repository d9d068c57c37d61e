"""rpyc's messages as bytes: brine in and out, for :class:`~kos_core._rpc.rpyc_seam.RpcPeer`.

A message is ``I1(kind) + brine.dump((seq, body))``, exactly as rpyc 6.0's
``Connection._send`` makes it. :func:`pieces` makes those bytes without copying a large
``bytes`` value into them (it is one piece of its own, sent as it is), and
:func:`load_message` reads a message without slicing its frame: a large value is
copied once, out of the frame. ``kos_core/tests/test_rpyc_seam.py`` holds both to
brine's own ``dump`` and ``load``.
"""

from __future__ import annotations

import io
from typing import Any

from rpyc.core import brine, consts

REQUEST = brine.I1.pack(consts.MSG_REQUEST)
REPLY = brine.I1.pack(consts.MSG_REPLY)
#: ``bytes`` values at least this long go out as pieces of their own
LARGE = 64 * 1024
_MAX_BOX_DEPTH = 32
_TUPLE_TAGS = (
    brine.TAG_EMPTY_TUPLE,
    brine.TAG_TUP1,
    brine.TAG_TUP2,
    brine.TAG_TUP3,
    brine.TAG_TUP4,
)


class Refused(EOFError):
    """A message no kos peer sends: its connection ends before rpyc handles it."""


def pieces(kind: int, seq: int, body: Any) -> list[bytes]:
    """The bytes of one message, in pieces whose concatenation is rpyc's.

    Raises :class:`TypeError` (as ``brine.dump`` does) for what brine cannot dump.
    """
    out: list[bytes] = [brine.I1.pack(kind), brine.TAG_TUP2]
    _dump(seq, out)
    _dump(body, out)
    joined: list[bytes] = []
    run: list[bytes] = []
    for piece in out:
        if len(piece) >= LARGE:
            if run:
                joined.append(b"".join(run))
                run = []
            joined.append(piece)
        else:
            run.append(piece)
    if run:
        joined.append(b"".join(run))
    return joined


def _dump(value: Any, out: list[bytes]) -> None:
    # brine (rpyc 6.0): a tuple is its tag (by length) and its items; bytes of 256 or
    # more are TAG_STR_L4, their length (I4) and themselves.
    kind = type(value)
    if kind is tuple:
        count = len(value)
        if count < len(_TUPLE_TAGS):
            out.append(_TUPLE_TAGS[count])
        elif count < 256:
            out.append(brine.TAG_TUP_L1 + brine.I1.pack(count))
        else:
            out.append(brine.TAG_TUP_L4 + brine.I4.pack(count))
        for item in value:
            _dump(item, out)
    elif kind is bytes and len(value) >= LARGE:
        out.append(brine.TAG_STR_L4 + brine.I4.pack(len(value)))
        out.append(value)
    else:
        out.append(brine.dump(value))


def load_message(data: bytes) -> Any:
    """The brine value after the kind byte of a message (anything after it is ignored)."""
    # rpyc 6.0: brine's private ``_load(stream)`` decodes one value from a file-like
    # object; BytesIO shares a bytes object's buffer until written to.
    stream = io.BytesIO(data)
    stream.seek(1)
    return brine._load(stream)


def peek_call(prefix: bytes, call: int) -> tuple[int, int, Any, Any] | None:
    """``(seq, handler, handle, method)`` from the start of a request frame, if readable
    (``handle`` and ``method`` are ``None`` unless ``handler`` is ``call``).
    """
    # A request is I1(MSG_REQUEST) + brine of (seq, (handler, box)), and a kos call's
    # box (LABEL_VALUE, (handle, method, args)).
    stream = io.BytesIO(prefix)
    try:
        if stream.read(1) != REQUEST or stream.read(1) != brine.TAG_TUP2:
            return None
        seq = brine._load(stream)
        if stream.read(1) != brine.TAG_TUP2:
            return None
        handler = brine._load(stream)
        if handler != call or stream.read(1) != brine.TAG_TUP2:
            return int(seq), int(handler), None, None
        brine._load(stream)  # the boxing label
        if stream.read(1) != brine.TAG_TUP3:
            return int(seq), int(handler), None, None
        return int(seq), int(handler), brine._load(stream), brine._load(stream)
    except Exception:
        return None


def unboxed(boxed: Any, depth: int = 0) -> Any:
    """The value in an rpyc box of plain values (a netref's box, or anything else,
    refuses the message).
    """
    # rpyc 6.0: Connection._box makes (LABEL_VALUE, v) of what brine dumps and
    # (LABEL_TUPLE, boxes) of other tuples; anything else is boxed by reference.
    if type(boxed) is tuple and len(boxed) == 2:
        label, value = boxed
        if label == consts.LABEL_VALUE:  # brine made it: plain values only
            return value
        if label == consts.LABEL_TUPLE and type(value) is tuple and depth < _MAX_BOX_DEPTH:
            return tuple(unboxed(item, depth + 1) for item in value)
        if label in (consts.LABEL_LOCAL_REF, consts.LABEL_REMOTE_REF):
            raise Refused("a value boxed by reference")
    raise Refused("a malformed box")
