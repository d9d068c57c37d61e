"""Toy interfaces (and implementations) for kos-core's own tests.

Only kos-core may be imported here: these tests also run where no plugin
distribution is installed. Hand-started plugin scripts import this module by
putting this folder on their ``PYTHONPATH`` (see :data:`TESTS_DIR`).
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from kos_core.errors import InterfaceError, UsageError
from kos_core.interface import Interface, raises

TESTS_DIR = Path(__file__).resolve().parent


class Oops(InterfaceError):
    """A declared failure of the toy interface."""

    wire_name = "ToyAPI.Oops"


class Counter(Interface, wire_name="ToyAPI.Counter"):
    """A counter, handed out by reference."""

    def Incr(self) -> int:
        """Add one and return the new value."""
        raise NotImplementedError

    def Value(self) -> int:
        """The current value."""
        raise NotImplementedError


class Echo(Interface, wire_name="ToyAPI.Echo"):
    """Returns what it is given, in every type that travels."""

    def Str(self, s: str) -> str:
        """Echo a string."""
        raise NotImplementedError

    def Bytes(self, b: bytes) -> bytes:
        """Echo bytes."""
        raise NotImplementedError

    def Int(self, i: int) -> int:
        """Echo an int."""
        raise NotImplementedError

    def Float(self, f: float) -> float:
        """Echo a float."""
        raise NotImplementedError

    def Bool(self, b: bool) -> bool:
        """Echo a bool."""
        raise NotImplementedError

    def Words(self, words: list[str]) -> list[str]:
        """Echo a list of strings."""
        raise NotImplementedError

    def Pair(self, i: int, s: str) -> tuple[int, str]:
        """Return ``(i, s)``."""
        raise NotImplementedError

    def Rows(self, rows: list[list[str]]) -> list[list[str]]:
        """Echo a list of lists."""
        raise NotImplementedError

    def Maybe(self, s: str | None = None) -> str | None:
        """Echo an optional string."""
        raise NotImplementedError

    def Add(self, a: int, b: int = 1) -> int:
        """Return ``a + b``."""
        raise NotImplementedError

    def Nothing(self) -> None:
        """Return nothing."""
        raise NotImplementedError

    def Open(self) -> Counter:
        """A new counter, returned by reference."""
        raise NotImplementedError

    @raises(Oops)
    def Fail(self, message: str) -> None:
        """Raise the declared :class:`Oops`."""
        raise NotImplementedError

    def Crash(self, message: str) -> None:
        """Raise an undeclared ``ValueError``."""
        raise NotImplementedError

    def Undeclared(self, message: str) -> None:
        """Raise a kos error this method does not declare."""
        raise NotImplementedError

    def Exit(self) -> None:
        """Call ``sys.exit()`` in the implementation."""
        raise NotImplementedError

    def BadResult(self) -> int:
        """Return something that is not an int."""
        raise NotImplementedError

    def Odd(self) -> str:
        """Return a ``str`` subclass instance."""
        raise NotImplementedError


class CounterImpl:
    """The implementation of :class:`Counter`."""

    def __init__(self) -> None:
        self.value = 0

    def Incr(self) -> int:
        self.value += 1
        return self.value

    def Value(self) -> int:
        return self.value


class OddStr(str):
    """A ``str`` subclass: not a plain wire value."""


class EchoImpl:
    """The implementation of :class:`Echo`; records the types it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.counters: list[weakref.ref[CounterImpl]] = []
        self._lock = threading.Lock()

    def _record(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))

    def Str(self, s: str) -> str:
        self._record("Str", s)
        return s

    def Bytes(self, b: bytes) -> bytes:
        self._record("Bytes", b)
        return b

    def Int(self, i: int) -> int:
        self._record("Int", i)
        return i

    def Float(self, f: float) -> float:
        self._record("Float", f)
        return f

    def Bool(self, b: bool) -> bool:
        self._record("Bool", b)
        return b

    def Words(self, words: list[str]) -> list[str]:
        self._record("Words", words)
        return list(words)

    def Pair(self, i: int, s: str) -> tuple[int, str]:
        self._record("Pair", i, s)
        return (i, s)

    def Rows(self, rows: list[list[str]]) -> list[list[str]]:
        self._record("Rows", rows)
        return [list(r) for r in rows]

    def Maybe(self, s: str | None = None) -> str | None:
        self._record("Maybe", s)
        return s

    def Add(self, a: int, b: int = 1) -> int:
        self._record("Add", a, b)
        return a + b

    def Nothing(self) -> None:
        self._record("Nothing")

    def Open(self) -> CounterImpl:
        counter = CounterImpl()
        with self._lock:
            self.counters.append(weakref.ref(counter))
        return counter

    def Fail(self, message: str) -> None:
        raise Oops(message)

    def Crash(self, message: str) -> None:
        raise ValueError(message)

    def Undeclared(self, message: str) -> None:
        raise UsageError(message)

    def Exit(self) -> None:
        raise SystemExit(3)

    def BadResult(self) -> int:
        return "not an int"  # type: ignore[return-value]

    def Odd(self) -> str:
        return OddStr("odd")

    def Secret(self) -> str:
        """Public on the implementation, but not part of the interface."""
        self._record("Secret")
        return "secret"


class HalfEcho:
    """Lacks most of :class:`Echo`'s methods."""

    def Str(self, s: str) -> str:
        return s
