"""Interfaces: the one Python declaration of what a kos object offers.

An interface is a class deriving from :class:`Interface` with a ``wire_name`` and
stub methods whose annotations give the argument and result types, and whose
:func:`raises` decorator lists the declared exceptions::

    class BucketFull(InterfaceError):
        wire_name = "BitBucketAPI.BucketFull"

    class BitBucket(Interface, wire_name="BitBucketAPI.BitBucket"):
        @raises(BucketFull)
        def Set(self, name: str, data: bytes) -> None:
            "Store ``data`` under ``name``."

From that one declaration kos derives everything else: the server calls only the
declared methods and checks argument types; the client gets a typed proxy (an
instance of the interface class) that rebuilds declared exceptions by class; and
``kos call`` turns shell words into the declared argument types.

Values that travel: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
``list[T]`` and ``tuple[...]`` of those, and interfaces. An argument or result typed
as an interface travels by reference: the receiver gets a proxy whose calls go
back to the process that holds the object.

Interfaces are found by wire name. A distribution that declares interfaces names
their module under the entry-point group ``kos.interfaces`` (entry point name = the
part of the wire name before the dot), so a client can use them without importing
the distribution first.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from kos_core._interfaces import find_interface, register
from kos_core.errors import KosError, UsageError

__all__ = ["Interface", "MethodSpec", "find_interface", "raises"]

_F = TypeVar("_F", bound=Callable[..., Any])
_SCALARS = (str, bytes, int, float, bool, type(None))
_EXACT = frozenset(_SCALARS)  # a value of exactly such a type is its own wire form


def raises(*exceptions: type[KosError]) -> Callable[[_F], _F]:
    """Declare the interface exceptions a method may raise."""
    for exc in exceptions:
        if not (isinstance(exc, type) and issubclass(exc, KosError) and exc.wire_name):
            raise TypeError(f"{exc!r} is not a KosError subclass with a wire_name")

    def mark(func: _F) -> _F:
        func.__kos_raises__ = exceptions  # type: ignore[attr-defined]
        return func

    return mark


@dataclass(frozen=True)
class Param:
    """One declared parameter."""

    name: str
    type: Any
    default: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class MethodSpec:
    """One declared method: its parameters, result type and declared exceptions."""

    name: str
    params: tuple[Param, ...]
    returns: Any
    raises: tuple[type[KosError], ...]
    doc: str

    @functools.cached_property
    def required(self) -> int:
        """How many leading parameters have no default."""
        return sum(1 for p in self.params if p.default is inspect.Parameter.empty)

    @functools.cached_property
    def arg_checks(self) -> tuple[tuple[Any, str, bool, bool], ...]:
        """Per parameter, worked out once: ``(type, description, by reference, holds lists)``."""
        return tuple(
            (
                p.type,
                f"{self.name}() argument {p.name!r}",
                is_interface(p.type),
                contains_list(p.type),
            )
            for p in self.params
        )

    @functools.cached_property
    def exact_types(self) -> tuple[type, ...] | None:
        """The parameters' types if each is a scalar a value of which is its own wire
        form (``str``, ``bytes``, ``int``, ...), else ``None``.
        """
        types = tuple(p.type for p in self.params)
        return types if all(tp in _EXACT for tp in types) else None

    def takes_as_is(self, args: tuple[Any, ...]) -> bool:
        """True if each of ``args`` is exactly its parameter's scalar type (see
        :attr:`exact_types`): they are their own wire form, with nothing to check.
        """
        return tuple(map(type, args)) == self.exact_types

    @functools.cached_property
    def result_what(self) -> str:
        """How errors about its result name it."""
        return f"result of {self.name}()"

    @functools.cached_property
    def returns_refs(self) -> bool:
        """True if results may hold references (they need encoding per value)."""
        return contains_interface(self.returns)

    @functools.cached_property
    def plain_result(self) -> bool:
        """True if a received result needs no rebuilding (no lists, no references)."""
        return typing.get_origin(self.returns) is None and not is_interface(self.returns)

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Arrange a call's arguments positionally, filling defaults; raise ``TypeError``."""
        if not kwargs and len(args) == len(self.params):
            return tuple(args)
        if len(args) > len(self.params):
            raise TypeError(
                f"{self.name}() takes {len(self.params)} arguments but {len(args)} were given"
            )
        out = list(args)
        for param in self.params[len(args) :]:
            if param.name in kwargs:
                out.append(kwargs.pop(param.name))
            elif param.default is not inspect.Parameter.empty:
                out.append(param.default)
            else:
                raise TypeError(f"{self.name}() missing argument {param.name!r}")
        if kwargs:
            raise TypeError(f"{self.name}() got unexpected arguments {sorted(kwargs)}")
        return tuple(out)

    def exception(self, wire_name: str) -> type[KosError] | None:
        """The declared exception class with this wire name, if any."""
        for exc in self.raises:
            if exc.wire_name == wire_name:
                return exc
        return None

    def signature(self) -> str:
        """A human-readable signature, as shown by ``kos call --help``-style listings."""
        parts = []
        for p in self.params:
            text = f"{p.name}: {type_name(p.type)}"
            if p.default is not inspect.Parameter.empty:
                text += f" = {p.default!r}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)}) -> {type_name(self.returns)}"


class Interface:
    """Base class of interface declarations (the successor of an ISL object type).

    Subclass it with ``wire_name="Module.Type"``; declare methods as stubs.
    Implementations need not inherit from it: ``bind_service`` checks that an
    object has every declared method.
    """

    wire_name: ClassVar[str] = ""
    _kos_methods: ClassVar[dict[str, MethodSpec] | None] = None

    def __init_subclass__(cls, wire_name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "_kos_proxy_of", None) is not None:
            return  # a generated client proxy, not a declaration
        if not wire_name or "." not in wire_name:
            raise TypeError(f"interface {cls.__name__} needs wire_name='Module.Type'")
        _check_hints(cls)
        cls.wire_name = wire_name
        cls._kos_methods = None
        register(wire_name, cls)

    @classmethod
    def methods(cls) -> dict[str, MethodSpec]:
        """The declared methods by name (resolved on first use, then cached)."""
        if cls._kos_methods is None:
            cls._kos_methods = _collect_methods(cls)
        return cls._kos_methods


def _check_hints(cls: type) -> None:
    """Refuse a declared method without a type hint on every argument and its result:
    its calls could never be checked (every call would fail instead).
    """
    for name, func in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(func):
            continue
        annotations = getattr(func, "__annotations__", {})
        missing = [
            f"argument {name!r}" for name in _parameter_names(func)[1:] if name not in annotations
        ]
        if "return" not in annotations:
            missing.append("the result (-> None if it returns nothing)")
        if missing:
            raise TypeError(
                f"interface {cls.__name__}: method {name}() needs a type hint for"
                f" {', '.join(missing)}"
            )


def _parameter_names(func: Any) -> tuple[str, ...]:
    """The names of a function's parameters, in the order its signature lists them
    (read from its code: a class of many methods is checked as it is defined).
    """
    code = func.__code__
    names = code.co_varnames
    positional, keyword_only = code.co_argcount, code.co_kwonlyargcount
    star = positional + keyword_only
    varargs = names[star : star + 1] if code.co_flags & inspect.CO_VARARGS else ()
    varkw_at = star + len(varargs)
    varkw = names[varkw_at : varkw_at + 1] if code.co_flags & inspect.CO_VARKEYWORDS else ()
    return (*names[:positional], *varargs, *names[positional:star], *varkw)


def _collect_methods(cls: type[Interface]) -> dict[str, MethodSpec]:
    specs: dict[str, MethodSpec] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, Interface)) or klass is Interface:
            continue
        for name, func in vars(klass).items():
            if name.startswith("_") or not inspect.isfunction(func):
                continue
            hints = typing.get_type_hints(func)
            sig = inspect.signature(func)
            params = tuple(
                Param(p.name, hints.get(p.name, Any), p.default)
                for p in list(sig.parameters.values())[1:]
            )
            specs[name] = MethodSpec(
                name=name,
                params=params,
                returns=hints.get("return", type(None)),
                raises=getattr(func, "__kos_raises__", ()),
                doc=inspect.getdoc(func) or "",
            )
    return specs


def is_interface(tp: Any) -> bool:
    """True if ``tp`` is an interface class (a declaration or a generated proxy)."""
    return isinstance(tp, type) and issubclass(tp, Interface) and tp is not Interface


def type_name(tp: Any) -> str:
    """A short readable name for a declared type."""
    if tp is type(None) or tp is None:
        return "None"
    if is_interface(tp):
        return str(tp.wire_name)
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def check_value(value: Any, tp: Any, what: str) -> Any:
    """Check ``value`` against declared type ``tp``; return its wire form.

    Lists become tuples; ``bytearray``/``memoryview`` become ``bytes``. Interface-typed
    values are returned unchanged (the caller turns them into references).
    Raises ``TypeError`` naming ``what``.
    """
    if tp is type(value) and tp in _EXACT:  # the commonest case, first
        return value
    if tp is Any or is_interface(tp):
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
    elif tp is bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
    elif tp is str:
        if isinstance(value, str):
            return str.__str__(value)  # a plain str, also for str subclasses (enums...)
    elif tp in _SCALARS:
        if isinstance(value, tp):
            return value
    else:
        return _check_generic(value, tp, what)
    raise TypeError(f"{what} must be {type_name(tp)}, not {type(value).__name__}")


def _check_generic(value: Any, tp: Any, what: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return check_value(value, option, what)
            except TypeError:
                continue
        raise TypeError(f"{what} must be {type_name(tp)}, not {type(value).__name__}")
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return tuple(check_value(v, args[0], f"{what}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise TypeError(f"{what} must have {len(args)} items, not {len(value)}")
        return tuple(
            check_value(v, t, f"{what}[{i}]")
            for i, (v, t) in enumerate(zip(value, args, strict=True))
        )
    raise TypeError(f"{what} must be {type_name(tp)}, not {type(value).__name__}")


def convert(
    value: Any, tp: Any, leaf: Callable[[Any, Any], Any], *, lists: Callable[..., Any]
) -> Any:
    """Rebuild ``value`` along its declared type ``tp``.

    Sequences declared ``list[...]`` become ``lists(items)`` (``list`` on receipt,
    ``tuple`` for the wire), ``tuple[...]`` stay tuples, ``None`` passes where the type
    is optional, and ``leaf(value, type)`` gives every other value (scalars, references).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(value, options[0], leaf, lists=lists)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [convert(v, args[0], leaf, lists=lists) for v in value]
            return lists(items) if origin is list else tuple(items)
        return tuple(convert(v, t, leaf, lists=lists) for v, t in zip(value, args, strict=False))
    return leaf(value, tp)


def from_wire(value: Any, tp: Any, make_ref: Callable[[Any, type[Interface]], Any]) -> Any:
    """Rebuild a received value in its declared shape (tuples back to lists, references to
    proxies through ``make_ref(wire_value, interface)``).
    """

    def leaf(item: Any, item_type: Any) -> Any:
        return make_ref(item, item_type) if is_interface(item_type) else item

    return convert(value, tp, leaf, lists=list)


def contains_list(tp: Any) -> bool:
    """True if values of declared type ``tp`` may hold lists (sent as tuples)."""
    if typing.get_origin(tp) is list:
        return True
    return any(contains_list(a) for a in typing.get_args(tp) if a is not Ellipsis)


def contains_interface(tp: Any) -> bool:
    """True if values of declared type ``tp`` may hold references."""
    if is_interface(tp):
        return True
    return any(contains_interface(a) for a in typing.get_args(tp) if a is not Ellipsis)


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def from_word(word: str, tp: Any, what: str) -> Any:
    """Turn one shell word into a value of declared type ``tp`` (for ``kos call``)."""
    if tp is str or tp is Any:
        return word
    if tp is bytes:
        return word.encode()
    if tp is bool:
        if word.lower() in _TRUE | _FALSE:
            return word.lower() in _TRUE
        raise UsageError(f"{what}: {word!r} is not a boolean (use yes/no, true/false, 1/0)")
    if tp in (int, float):
        try:
            return tp(word)
        except ValueError:
            raise UsageError(f"{what}: {word!r} is not {tp.__name__}") from None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return from_word(word, options[0], what)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [from_word(w, item, what) for w in word.split(",")] if word else []
    raise UsageError(f"{what}: a {type_name(tp)} cannot be given on the command line")
