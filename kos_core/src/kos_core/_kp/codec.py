"""A KP's state in transit: its instance attributes as plain data, never pickle.

Plain data is ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, and lists and
dicts of plain data (dict keys: plain data too, but not lists or dicts). It is written
as JSON: ``bytes`` as ``{"$b": base64}``, a dict as ``{"$d": [[key, value], ...]}``,
so the receiver rebuilds exactly what was sent and runs nothing while doing it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kos_core.errors import MigrationError

_MAX_DEPTH = 100
#: the largest encoded state that may travel (bytes travel as base64: 3 in 4)
MAX_STATE = 16 * 1024 * 1024


def _encode(value: Any, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise MigrationError(f"{where} is nested more than {_MAX_DEPTH} deep")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is bytes:
        return {"$b": base64.b64encode(value).decode("ascii")}
    if type(value) is list:
        return [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if type(value) is dict:
        items = []
        for key, item in value.items():
            if type(key) in (list, dict):
                raise MigrationError(f"{where} has a key that is a {type(key).__name__}")
            items.append(
                [
                    _encode(key, f"{where} key", depth + 1),
                    _encode(item, f"{where}[{key!r}]", depth + 1),
                ]
            )
        return {"$d": items}
    raise MigrationError(
        f"{where} is a {type(value).__name__}, not plain data"
        " (str, bytes, numbers, bool, None, lists, dicts)"
    )


def encode_state(attributes: dict[str, Any]) -> bytes:
    """The wire form of a KP's instance attributes; :class:`MigrationError` names the
    first one that is not plain data, or says the whole is larger than :data:`MAX_STATE`.
    """
    data = json.dumps(
        {name: _encode(value, f"self.{name}", 0) for name, value in attributes.items()},
        separators=(",", ":"),
    ).encode("ascii")
    check_size(data)
    return data


def check_size(data: bytes) -> None:
    """Raise :class:`MigrationError` if encoded state ``data`` may not travel."""
    if len(data) > MAX_STATE:
        raise MigrationError(
            f"the KP's state is {len(data)} bytes encoded; at most {MAX_STATE} travel"
        )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"], validate=True)
        if set(value) == {"$d"}:
            return {_decode(k): _decode(v) for k, v in value["$d"]}
        raise MigrationError("malformed state: a dict that is neither bytes nor a dict")
    return value


def decode_state(data: bytes) -> dict[str, Any]:
    """The attributes :func:`encode_state` wrote; :class:`MigrationError` if malformed."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise MigrationError("malformed state: not an object")
        return {str(name): _decode(value) for name, value in raw.items()}
    except (ValueError, TypeError) as exc:
        raise MigrationError(f"malformed state: {exc}") from None
