"""rpyc's messages as bytes: brine in and out, without importing rpyc for what kos sends.

A message is ``I1(kind) + brine.dump((seq, body))``, exactly as rpyc 6.0's
``Connection._send`` makes it. :func:`pieces` makes those bytes without copying a large
``bytes`` value into them (it is one piece of its own, sent as it is), and
:func:`load_message` reads a message without slicing its frame: a large value is
copied once, out of the frame. The tags and message kinds below are brine's and rpyc's
(rpyc 6.0); values kos never sends are left to brine itself, imported only then, so a
client that only calls never imports rpyc. ``kos_core/tests/test_rpyc_seam.py`` holds the
constants and both functions to rpyc's own.
"""

from __future__ import annotations

import io
import struct
from typing import Any

# rpyc 6.0: rpyc.core.consts
MSG_REQUEST, MSG_REPLY = 1, 2
LABEL_VALUE, LABEL_TUPLE, LABEL_LOCAL_REF, LABEL_REMOTE_REF = 1, 2, 3, 4
HANDLE_PING, HANDLE_CLOSE = 1, 2

# rpyc 6.0: rpyc.core.brine
I1, I4, F8 = struct.Struct("!B"), struct.Struct("!L"), struct.Struct("!d")
TAG_NONE, TAG_EMPTY_STR, TAG_EMPTY_TUPLE, TAG_TRUE, TAG_FALSE = (
    b"\x00",
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
)
TAG_UNICODE = b"\x08"
TAG_STR1, TAG_STR2, TAG_STR3, TAG_STR4, TAG_STR_L1, TAG_STR_L4 = (
    bytes([t]) for t in range(0x0A, 0x10)
)
TAG_TUP1, TAG_TUP2, TAG_TUP3, TAG_TUP4, TAG_TUP_L1, TAG_TUP_L4 = (
    bytes([t]) for t in range(0x10, 0x16)
)
TAG_INT_L1, TAG_INT_L4, TAG_FLOAT = b"\x16", b"\x17", b"\x18"
#: small ints: one byte each, their value + 0x50
IMM_INTS = {i: bytes([i + 0x50]) for i in range(-0x30, 0xA0)}

REQUEST = I1.pack(MSG_REQUEST)
REPLY = I1.pack(MSG_REPLY)
#: ``bytes`` values at least this long go out as pieces of their own
LARGE = 64 * 1024
_MAX_BOX_DEPTH = 32
_TUPLE_TAGS = (TAG_EMPTY_TUPLE, TAG_TUP1, TAG_TUP2, TAG_TUP3, TAG_TUP4)
_STR_TAGS = (TAG_EMPTY_STR, TAG_STR1, TAG_STR2, TAG_STR3, TAG_STR4)
_IMM_ZERO = 0x50
_IMM_FIRST, _IMM_LAST = min(IMM_INTS) + _IMM_ZERO, max(IMM_INTS) + _IMM_ZERO
_TUP1, _TUP2, _TUP3 = TAG_TUP1[0], TAG_TUP2[0], TAG_TUP3[0]
_TUP_L1, _TUP_L4 = TAG_TUP_L1[0], TAG_TUP_L4[0]
_INT_L1 = TAG_INT_L1[0]
_STR1, _STR4, _STR_L1, _STR_L4 = (t[0] for t in (TAG_STR1, TAG_STR4, TAG_STR_L1, TAG_STR_L4))
_UNICODE = TAG_UNICODE[0]
_SIZED = {_STR_L1: 1, _STR_L4: 4, _INT_L1: 1, TAG_INT_L4[0]: 4}
_STRINGS = (_STR_L1, _STR_L4)
_FLOAT = TAG_FLOAT[0]
_SINGLETONS: dict[int, Any] = {
    TAG_NONE[0]: None,
    TAG_EMPTY_STR[0]: b"",
    TAG_EMPTY_TUPLE[0]: (),
    TAG_TRUE[0]: True,
    TAG_FALSE[0]: False,
}


_REQUEST_HEAD = REQUEST + TAG_TUP2
_REPLY_HEAD = REPLY + TAG_TUP2
_VALUE_BOX = TAG_TUP2 + IMM_INTS[LABEL_VALUE]  # (LABEL_VALUE, ...): a box of plain values
_VALUE_LABEL = IMM_INTS[LABEL_VALUE][0]
_INT_L1_HEADS = [TAG_INT_L1 + I1.pack(n) for n in range(256)]
_STR_L1_HEADS = [TAG_STR_L1 + I1.pack(n) for n in range(256)]
_CALL_HEADS: dict[tuple[int, int, str], bytes] = {}
_MAX_CALL_HEADS = 4096


class Refused(EOFError):
    """A message no kos peer sends: its connection ends before rpyc handles it."""


def pieces(kind: int, seq: int, body: Any) -> list[bytes]:
    """The bytes of one message, in pieces whose concatenation is rpyc's.

    Raises :class:`TypeError` (as ``brine.dump`` does) for what brine cannot dump.
    """
    out: list[bytes] = [I1.pack(kind), TAG_TUP2]
    large: list[int] = []  # where in ``out`` a large value is
    _dump(seq, out, large)
    _dump(body, out, large)
    return _joined(out, large)


def call_pieces(seq: int, handler: int, handle: int, method: str, args: Any) -> list[bytes]:
    """``pieces(MSG_REQUEST, seq, (handler, (LABEL_VALUE, (handle, method, args))))``, the
    bytes before ``args`` but for ``seq`` made once per ``(handler, handle, method)``.
    """
    key = (handler, handle, method)
    head = _CALL_HEADS.get(key)
    if head is None:
        parts = [TAG_TUP2, *_dumped(handler), _VALUE_BOX, TAG_TUP3]
        head = b"".join([*parts, *_dumped(handle), *_dumped(method)])
        if len(_CALL_HEADS) < _MAX_CALL_HEADS:
            _CALL_HEADS[key] = head
    return _message(_REQUEST_HEAD, seq, head, args)


def reply_pieces(seq: int, value: Any) -> list[bytes]:
    """``pieces(MSG_REPLY, seq, (LABEL_VALUE, value))``: a reply of a plain value."""
    return _message(_REPLY_HEAD, seq, _VALUE_BOX, value)


def _message(head: bytes, seq: int, middle: bytes, value: Any) -> list[bytes]:
    """The pieces of ``head``, ``seq``, ``middle`` (made already) and ``value``."""
    out: list[bytes] = [head, _int_bytes(seq), middle]
    large: list[int] = []
    _dump(value, out, large)
    return _joined(out, large)


def _dumped(value: Any) -> list[bytes]:
    out: list[bytes] = []
    _dump(value, out, [])
    return out


def _joined(out: list[bytes], large: list[int]) -> list[bytes]:
    """``out`` as few pieces: joined, but for the large values at the indexes ``large``."""
    if not large:
        return [b"".join(out)]
    joined: list[bytes] = []
    start = 0
    for at in large:
        if at > start:
            joined.append(b"".join(out[start:at]))
        joined.append(out[at])
        start = at + 1
    if start < len(out):
        joined.append(b"".join(out[start:]))
    return joined


def _dump(value: Any, out: list[bytes], large: list[int]) -> None:
    # brine (rpyc 6.0), for the types kos sends most; the rest is brine.dump's.
    kind = type(value)
    if kind is tuple:
        count = len(value)
        if count < len(_TUPLE_TAGS):
            out.append(_TUPLE_TAGS[count])
        elif count < 256:
            out.append(TAG_TUP_L1 + I1.pack(count))
        else:
            out.append(TAG_TUP_L4 + I4.pack(count))
        for item in value:
            if type(item) is int and item in IMM_INTS:  # the commonest leaf, inline
                out.append(IMM_INTS[item])
            else:
                _dump(item, out, large)
    elif kind is bytes:
        _dump_bytes(value, out, large)
    elif kind is str:
        out.append(TAG_UNICODE)
        _dump_bytes(value.encode("utf8"), out, large)
    elif kind is int:
        out.append(_int_bytes(value))
    elif value is None:
        out.append(TAG_NONE)
    else:
        from rpyc.core import brine  # rpyc 6.0: what kos does not send itself

        out.append(brine.dump(value))


def _int_bytes(value: int) -> bytes:
    """An int as brine writes it: one byte if small, else its digits after their count."""
    if value in IMM_INTS:
        return IMM_INTS[value]
    digits = str(value).encode("ascii")
    count = len(digits)
    if count < 256:
        return _INT_L1_HEADS[count] + digits
    return TAG_INT_L4 + I4.pack(count) + digits


def _dump_bytes(value: bytes, out: list[bytes], large: list[int]) -> None:
    # brine: up to 4 bytes a tag each, then TAG_STR_L1 + I1 length, then TAG_STR_L4 + I4.
    size = len(value)
    if size < len(_STR_TAGS):
        out.append(_STR_TAGS[size] + value)
    elif size < 256:
        out.append(_STR_L1_HEADS[size] + value)
    elif size < LARGE:
        out.append(TAG_STR_L4 + I4.pack(size) + value)
    else:  # a piece of its own: not copied
        out.append(TAG_STR_L4 + I4.pack(size))
        large.append(len(out))
        out.append(value)


def load_message(data: bytes | memoryview) -> Any:
    """The brine value after the kind byte of a message (anything after it is ignored).

    Raises an exception of some kind if ``data`` is not brine.
    """
    return _load(data, 1)[0]


def reply_of(data: bytes | memoryview) -> tuple[Any, Any]:
    """``(seq, value)`` of a reply message of a plain value; :class:`Refused` if it is
    unreadable or boxes its value otherwise.
    """
    try:
        if data[1] == _TUP2:  # what a kos peer sends: (seq, (LABEL_VALUE, value))
            seq, at = _seq(data)
            if data[at] == _TUP2 and data[at + 1] == _VALUE_LABEL:
                return seq, _load(data, at + 2)[0]
        seq, boxed = load_message(data)
    except Exception:
        raise Refused("an unreadable reply") from None
    return seq, unboxed(boxed)


class RequestHeads:
    """The head of the last call one connection was sent: the bytes between its seq and
    its arguments, and what they say. A connection's calls mostly repeat a few heads
    (as :func:`call_pieces` makes them), so the next is compared, not decoded again.
    """

    __slots__ = ("handler", "head", "target")

    def __init__(self) -> None:
        self.head = b"\xff"  # no request's: 0xff is no brine tag
        self.handler: Any = None
        self.target: tuple[Any, Any] = (None, None)  # (handle, method)


def request_of(data: bytes | memoryview, heads: RequestHeads | None = None) -> tuple[Any, Any, Any]:
    """``(seq, handler, args)`` of a request message of plain values; :class:`Refused`
    if it is unreadable or boxes its arguments otherwise. A call's head is compared with
    the last one in ``heads`` (and kept there).
    """
    try:
        if data[1] == _TUP2:  # what a kos peer sends: (seq, (handler, (LABEL_VALUE, args)))
            seq, at = _seq(data)
            if heads is not None:
                end = at + len(heads.head)
                if data[at:end] == heads.head:
                    return seq, heads.handler, (*heads.target, _load(data, end)[0])
            if data[at] == _TUP2:
                handler, box = _load(data, at + 1)
                if data[box] == _TUP2 and data[box + 1] == _VALUE_LABEL:
                    if data[box + 2] != _TUP3:
                        return seq, handler, _load(data, box + 2)[0]
                    # a call: (handle, method, args)
                    handle, end = _load(data, box + 3)
                    method, end = _load(data, end)
                    if heads is not None:
                        heads.head, heads.handler = bytes(data[at:end]), handler
                        heads.target = (handle, method)
                    return seq, handler, (handle, method, _load(data, end)[0])
        seq, (handler, boxed) = load_message(data)
    except Exception:
        raise Refused("an unreadable request") from None
    return seq, handler, unboxed(boxed)


def _seq(data: bytes | memoryview) -> tuple[Any, int]:
    """A message's seq (its brine from offset 2) and the offset after it."""
    if data[2] == _INT_L1:  # seqs past the small ints: decimal digits after their count
        end = 4 + data[3]
        return int(bytes(data[4:end])), end
    return _load(data, 2)


def _load(data: bytes | memoryview, at: int) -> tuple[Any, int]:
    # brine's tags (rpyc 6.0), read by offset: no stream, and a value is copied out of
    # ``data`` once (``bytes`` of a bytes slice is that slice). Tags kos never sends are
    # brine's own ``_load``'s.
    tag = data[at]
    at += 1
    if _IMM_FIRST <= tag <= _IMM_LAST:
        return tag - _IMM_ZERO, at
    if tag == _TUP2:  # the commonest tag; small ints in it are read inline
        byte = data[at]
        if _IMM_FIRST <= byte <= _IMM_LAST:
            first, at = byte - _IMM_ZERO, at + 1
        else:
            first, at = _load(data, at)
        byte = data[at]
        if _IMM_FIRST <= byte <= _IMM_LAST:
            second, at = byte - _IMM_ZERO, at + 1
        else:
            second, at = _load(data, at)
        return (first, second), at
    if _STR1 <= tag <= _STR4:
        end = at + tag - _STR1 + 1
        return bytes(data[at:end]), end
    if tag == _STR_L1:  # bytes of 5 to 255
        end = at + 1 + data[at]
        return bytes(data[at + 1 : end]), end
    if tag == _UNICODE:  # its UTF-8 as bytes; a short one decoded straight from ``data``
        inner = data[at]
        if _STR1 <= inner <= _STR4:
            end = at + inner - _STR1 + 2
            return str(data[at + 1 : end], "utf-8"), end
        if inner == _STR_L1:
            end = at + 2 + data[at + 1]
            return str(data[at + 2 : end], "utf-8"), end
        raw, at = _load(data, at)
        return raw.decode("utf-8"), at
    if _TUP1 <= tag <= _TUP_L4:
        if tag == _TUP_L1:
            count, at = data[at], at + 1
        elif tag == _TUP_L4:
            count, at = int.from_bytes(data[at : at + 4], "big"), at + 4
        else:
            count = tag - _TUP1 + 1
        items = []
        for _ in range(count):
            item, at = _load(data, at)
            items.append(item)
        return tuple(items), at
    if tag in _SIZED:  # a length (1 or 4 bytes), then bytes or an int's digits
        width = _SIZED[tag]
        end = at + width + int.from_bytes(data[at : at + width], "big")
        raw = bytes(data[at + width : end])
        return (raw if tag in _STRINGS else int(raw)), end
    if tag == _FLOAT:
        return F8.unpack_from(data, at)[0], at + F8.size
    if tag in _SINGLETONS:
        return _SINGLETONS[tag], at
    # rpyc 6.0: brine's private ``_load(stream)`` decodes one value from a file-like
    # object; BytesIO shares a bytes object's buffer until written to.
    from rpyc.core import brine

    stream = io.BytesIO(data)
    stream.seek(at - 1)
    return brine._load(stream), stream.tell()


def peek_call(prefix: bytes | memoryview, call: int) -> tuple[int, int, Any, Any] | None:
    """``(seq, handler, handle, method)`` from the start of a request frame, if readable
    (``handle`` and ``method`` are ``None`` unless ``handler`` is ``call``).
    """
    # A request is I1(MSG_REQUEST) + brine of (seq, (handler, box)), and a kos call's
    # box (LABEL_VALUE, (handle, method, args)).
    from rpyc.core import brine  # serving side only

    stream = io.BytesIO(prefix)
    try:
        if stream.read(1) != REQUEST or stream.read(1) != TAG_TUP2:
            return None
        seq = brine._load(stream)
        if stream.read(1) != TAG_TUP2:
            return None
        handler = brine._load(stream)
        if handler != call or stream.read(1) != TAG_TUP2:
            return int(seq), int(handler), None, None
        brine._load(stream)  # the boxing label
        if stream.read(1) != TAG_TUP3:
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
        if label == LABEL_VALUE:  # brine made it: plain values only
            return value
        if label == LABEL_TUPLE and type(value) is tuple and depth < _MAX_BOX_DEPTH:
            return tuple(unboxed(item, depth + 1) for item in value)
        if label in (LABEL_LOCAL_REF, LABEL_REMOTE_REF):
            raise Refused("a value boxed by reference")
    raise Refused("a malformed box")
