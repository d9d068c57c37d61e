"""A setting a plugin declares (:class:`Setting`, part of its
:class:`~kos_core.hookspecs.PluginSpec`), and the values it gets (:class:`SettingValues`).

The same code turns the text of a setup file into a value for the kernel (which checks
every declared setting when it reads the files) and for the plugin
(:func:`kos_core.pluginlib.settings`), so both read a value alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, TypeVar, overload

__all__ = ["Setting", "SettingValues", "setting_values"]

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BOOLEANS = {"1": True, "yes": True, "true": True, "on": True}
_BOOLEANS.update({"0": False, "no": False, "false": False, "off": False})
#: what each type is called in ``kos plugins --settings``, and what a bad value should be
_KINDS: dict[type, tuple[str, str]] = {
    str: ("text", "text"),
    int: ("int", "a whole number"),
    float: ("float", "a finite number"),
    bool: ("bool", "1/0, yes/no, true/false or on/off"),
    tuple: ("words", "words separated by spaces or commas"),
}


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One key a plugin reads from its section of the setup files.

    ``name``: the key (1-64 letters, digits, ``_``, ``-`` or ``.``). ``type``: ``str``,
    ``int``, ``float`` (finite: ``nan`` and ``inf`` are refused), ``bool`` (``1/0``,
    ``yes/no``, ``true/false``, ``on/off``) or ``tuple`` (words separated by spaces or
    commas, as a tuple of strings). ``default``: the value when neither the section
    nor ``[DEFAULTS]`` sets the key. ``description``: one line for
    ``kos plugins --settings``.

    Keyword-only limits, checked with the type: ``choices`` (the values allowed),
    ``minimum`` and ``maximum`` (for numbers, inclusive), and ``check``: a function
    given the converted value that raises ``ValueError`` (its message says what is
    wrong) to refuse it. ``check`` runs in the kernel too: keep it quick and
    self-contained, in a module as light as the hooks module.
    """

    name: str
    type: type[T]
    default: T
    description: str = ""
    _: KW_ONLY
    choices: tuple[T, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[T], object] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"bad setting name {self.name!r}: use 1-64 letters, digits, "
                '"_", "-" or ".", starting with a letter or digit'
            )
        if self.type not in _KINDS:
            raise TypeError(
                f"setting {self.name!r}: type {self.type!r} is not one of "
                "str, int, float, bool, tuple"
            )
        number = self.type in (int, float)
        if not number and (self.minimum is not None or self.maximum is not None):
            raise TypeError(f"setting {self.name!r}: minimum and maximum are for numbers")
        if self.type in (bool, tuple) and self.choices:
            raise TypeError(f"setting {self.name!r}: choices are for text and numbers")
        object.__setattr__(self, "default", self._typed(self.default, "default"))
        object.__setattr__(self, "choices", tuple(self._typed(c, "choice") for c in self.choices))
        try:
            self._limit(self.default)
        except ValueError as exc:
            raise ValueError(
                f"setting {self.name!r}: the default {self.show(self.default)!r} is refused ({exc})"
            ) from None

    @property
    def kind(self) -> str:
        """What the type is called for operators: text, int, float, bool or words."""
        return _KINDS[self.type][0]

    def convert(self, text: str) -> T:
        """The value that setup-file ``text`` stands for.

        Raises ``ValueError`` with the message kos shows:
        ``bad value for NAME: "TEXT" (what to write instead)``.
        """
        raw = text.strip()
        try:
            value: T = self._parse(raw)
            self._limit(value)
        except ValueError as exc:
            import json  # to quote a bad value: reading good ones never loads it

            reason = str(exc) or f"use {_KINDS[self.type][1]}"
            raise ValueError(
                f"bad value for {self.name}: {json.dumps(raw, ensure_ascii=False)} ({reason})"
            ) from None
        return value

    def show(self, value: object) -> str:
        """``value`` written as it would be in a setup file."""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, tuple):
            return " ".join(str(word) for word in value)
        return str(value)

    def _parse(self, raw: str) -> Any:
        if self.type is str:
            return raw
        if self.type is tuple:
            return tuple(w for w in raw.replace(",", " ").split() if w)
        if self.type is bool:
            flag = _BOOLEANS.get(raw.lower())
            if flag is None:
                raise ValueError("")
            return flag
        kind: Callable[[str], float] = self.type  # type: ignore[assignment]
        try:
            number = kind(raw)
        except ValueError:
            raise ValueError("") from None  # the reason for the type says what to write
        if self.type is float and not math.isfinite(number):
            raise ValueError("use a finite number")
        return number

    def _limit(self, value: Any) -> None:
        """Raise ``ValueError`` (saying why) unless ``value`` is within the limits."""
        if self.choices and value not in self.choices:
            raise ValueError(f"use one of: {', '.join(self.show(c) for c in self.choices)}")
        if self.minimum is not None and value < self.minimum:
            if self.minimum == 0:
                raise ValueError("must not be negative")
            raise ValueError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}")
        if self.check is not None:
            try:
                self.check(value)
            except ValueError:
                raise
            except Exception as exc:  # the plugin's check failed: say so, as a bad value
                raise ValueError(f"{type(exc).__name__}: {exc}") from None

    def _typed(self, value: object, what: str) -> Any:
        """``value`` as this setting's type (an int stands for a float), or TypeError."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is float and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"setting {self.name!r}: the {what} {value!r} is not finite")
        ok = isinstance(value, self.type) and (self.type is bool or not isinstance(value, bool))
        if self.type is tuple and ok:
            ok = all(isinstance(word, str) for word in value)  # type: ignore[attr-defined]
        if not ok:
            raise TypeError(f"setting {self.name!r}: the {what} {value!r} is not {self.kind}")
        return value


class SettingValues(Mapping[str, Any]):
    """The values of a plugin's declared settings, by name, defaults applied.

    Index it with the :class:`Setting` itself for a typed value (``values[TIMEOUT]``
    is a ``float`` to mypy when ``TIMEOUT`` is a ``Setting[float]``), or with the name.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    @overload
    def __getitem__(self, key: Setting[T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Setting[Any] | str) -> Any:
        return self._values[key.name if isinstance(key, Setting) else key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SettingValues({self._values!r})"


def setting_values(declared: Sequence[Setting[Any]], options: Mapping[str, str]) -> SettingValues:
    """The value of each declared setting: converted from ``options`` (a section's keys)
    if it sets it, else the default. Raises ``ValueError`` for the first bad value.
    """
    values = {}
    for setting in declared:
        raw = options.get(setting.name)
        values[setting.name] = setting.default if raw is None else setting.convert(raw)
    return SettingValues(values)
