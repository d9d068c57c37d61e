"""Explaining a failed ``%(name)s`` interpolation in a setup file: which key's value
holds the problem, and what it is.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator, Mapping

from kos_core._kernel.setup_scan import _DEFAULTS, _quote

_REFERENCE = re.compile(r"%\(([^)]+)\)s")


def _scope(section: str) -> str:
    if section == _DEFAULTS:
        return "in [DEFAULTS] (all that a plugin without a section of its own gets)"
    return f"in [{section}] or [DEFAULTS]"


def _diagnose(
    raw: Mapping[str, str], key: str, scope: str, exc: configparser.InterpolationError
) -> tuple[str, str]:
    """Which key's value makes interpolating ``key`` fail, and why.

    Walks the raw values the way ``BasicInterpolation`` does, so it meets the
    same first problem, but keeps track of whose value holds it.
    """
    limit = configparser.MAX_INTERPOLATION_DEPTH

    def walk(chain: list[str]) -> tuple[str, str] | None:
        current = chain[-1]
        if len(chain) > limit:
            for start, name in enumerate(chain):
                if name in chain[start + 1 :]:
                    end = chain.index(name, start + 1)
                    loop = " -> ".join(chain[start : end + 1])
                    return name, f"{_quote(name)} refers back to itself ({loop})"
            return key, f"references nested more than {limit} deep ({' -> '.join(chain)})"
        for ref in _references(raw[current]):
            if isinstance(ref, str):
                return current, ref
            (name,) = ref
            if name not in raw:
                return current, f"no key {_quote(name)} {scope}"
            if "%" in raw[name]:
                found = walk([*chain, name])
                if found is not None:
                    return found
        return None

    found = walk([key])
    return found if found is not None else (key, exc.message.splitlines()[0])


def _references(text: str) -> Iterator[tuple[str] | str]:
    """Yield the keys ``text`` refers to, in order, or a description of its first error."""
    rest = text
    while rest:
        at = rest.find("%")
        if at < 0:
            return
        rest = rest[at:]
        after = rest[1:2]
        if after == "%":
            rest = rest[2:]
        elif after == "(":
            match = _REFERENCE.match(rest)
            if match is None:
                yield f'unfinished reference {_quote(rest)} (write "%(name)s")'
                return
            yield (match.group(1),)
            rest = rest[match.end() :]
        else:
            yield '"%" must be followed by "(" or "%" (write "%%" for a literal "%")'
            return
