"""Interfaces are checked where a mistake is made: a method without full type hints is
refused at class definition, and a declared interface result of ``None`` is a
server-side ``TypeError`` like any other mismatch.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from coretest_util import TOKEN, connection_of, echo_server
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import RemoteError
from kos_core.interface import Interface, _parameter_names
from toyapi import Counter, CounterImpl


def test_a_method_without_hints_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError) as caught:

        class Frobber(Interface, wire_name="ToyAPI.Frobber"):
            def Frob(self, x, y: int):  # type: ignore[no-untyped-def]
                """No hint on x, none on the result."""

    message = str(caught.value)
    assert message.startswith("interface Frobber: method Frob() needs a type hint for")
    assert "argument 'x'" in message and "the result" in message
    assert "'y'" not in message


def _stubs() -> list[Any]:
    def plain(self, a, b=1):  # type: ignore[no-untyped-def]
        local = a  # a local after the parameters in the code object
        return local

    def starred(self, a, /, b, *args, c, d=2, **kw):  # type: ignore[no-untyped-def]
        local = b
        return local

    def keyword_only(self, *, k):  # type: ignore[no-untyped-def]
        pass

    def nothing(self):  # type: ignore[no-untyped-def]
        pass

    return [plain, starred, keyword_only, nothing]


@pytest.mark.parametrize("func", _stubs(), ids=lambda f: f.__name__)
def test_parameter_names_are_the_signatures(func: Any) -> None:
    assert _parameter_names(func) == tuple(inspect.signature(func).parameters)


def test_a_method_with_full_hints_is_accepted() -> None:
    class Fine(Interface, wire_name="ToyAPI.Fine"):
        def Go(self, x: int) -> None:
            """Fully hinted."""

    assert list(Fine.methods()) == ["Go"]


class Opener(Interface, wire_name="ToyAPI.Opener"):
    def Open(self) -> Counter:
        """A counter, by reference; never None."""

    def Maybe(self) -> Counter | None:
        """A counter, or None."""

    def Many(self) -> list[Counter]:
        """Counters."""


class NoneOpener:
    def Open(self) -> Any:
        return None

    def Maybe(self) -> Any:
        return None

    def Many(self) -> Any:
        return [CounterImpl(), None]


def test_a_declared_interface_result_of_None_is_a_TypeError() -> None:
    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(NoneOpener(), Opener) if wire.tokens_equal(token, TOKEN) else None

    with echo_server(authorize=authorize) as served:
        proxy: Any = _rpc.object_of_sbh(served.sbh, Opener)
        try:
            with pytest.raises(RemoteError) as caught:
                proxy.Open()
            assert caught.value.kind == "TypeError"
            assert "result of Open() must be ToyAPI.Counter, not None" in str(caught.value)
            assert proxy.Maybe() is None  # declared "| None": fine
            with pytest.raises(RemoteError, match=r"must be ToyAPI\.Counter, not None"):
                proxy.Many()
        finally:
            connection_of(proxy).close()
