"""Interface declarations, value checks and shell-word conversion (kos_core.interface)."""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos_core.errors import InterfaceNotFound, KosError, UsageError
from kos_core.interface import (
    Interface,
    MethodSpec,
    Param,
    check_value,
    contains_interface,
    find_interface,
    from_wire,
    from_word,
    is_interface,
    raises,
    type_name,
)
from toyapi import Counter, Echo, Oops

EMPTY = inspect.Parameter.empty


def no_refs(value: Any, interface: type[Interface]) -> Any:
    raise AssertionError("no references expected")


# -- declarations -----------------------------------------------------------------


def test_methods_are_collected_with_params_defaults_returns_raises_and_docs() -> None:
    methods = Echo.methods()
    assert set(methods) >= {"Str", "Bytes", "Words", "Pair", "Add", "Open", "Fail", "Crash"}
    assert all(not name.startswith("_") for name in methods)

    add = methods["Add"]
    assert add.params == (Param("a", int), Param("b", int, 1))
    assert add.returns is int
    assert add.required == 1
    assert add.raises == ()
    assert add.doc == "Return ``a + b``."
    assert add.signature() == "Add(a: int, b: int = 1) -> int"

    assert methods["Words"].params == (Param("words", list[str]),)
    assert methods["Words"].returns == list[str]
    assert methods["Pair"].returns == tuple[int, str]
    assert methods["Nothing"].returns is type(None)
    assert methods["Nothing"].params == ()
    assert methods["Open"].returns is Counter
    assert methods["Open"].signature() == "Open() -> ToyAPI.Counter"
    assert methods["Fail"].raises == (Oops,)
    assert methods["Fail"].exception("ToyAPI.Oops") is Oops
    assert methods["Fail"].exception("ToyAPI.Other") is None
    assert methods["Maybe"].params[0].default is None
    assert methods["Maybe"].required == 0
    assert Echo.methods() is methods  # cached


def test_interfaces_inherit_methods() -> None:
    class Base(Interface, wire_name="ToyInheritAPI.Base"):
        def One(self) -> int:
            """One."""
            raise NotImplementedError

    class Derived(Base, wire_name="ToyInheritAPI.Derived"):
        def Two(self, x: str) -> str:
            """Two."""
            raise NotImplementedError

    assert set(Base.methods()) == {"One"}
    assert set(Derived.methods()) == {"One", "Two"}
    assert find_interface("ToyInheritAPI.Derived") is Derived
    assert Derived.wire_name == "ToyInheritAPI.Derived"
    assert Base.wire_name == "ToyInheritAPI.Base"


@pytest.mark.parametrize("wire_name", ["", "NoDot"])
def test_an_interface_needs_a_dotted_wire_name(wire_name: str) -> None:
    with pytest.raises(TypeError, match="wire_name"):

        class Bad(Interface, wire_name=wire_name):
            pass


def test_bind_arranges_arguments() -> None:
    add = Echo.methods()["Add"]
    assert add.bind((1, 2), {}) == (1, 2)
    assert add.bind((1,), {}) == (1, 1)
    assert add.bind((), {"a": 5}) == (5, 1)
    assert add.bind((), {"b": 7, "a": 5}) == (5, 7)
    with pytest.raises(TypeError, match="missing argument 'a'"):
        add.bind((), {})
    with pytest.raises(TypeError, match="takes 2 arguments but 3"):
        add.bind((1, 2, 3), {})
    with pytest.raises(TypeError, match="unexpected"):
        add.bind((1,), {"c": 3})


def test_raises_accepts_only_kos_errors_with_a_wire_name() -> None:
    def func() -> None:
        pass

    assert raises(Oops)(func) is func
    assert func.__kos_raises__ == (Oops,)  # type: ignore[attr-defined]
    for bad in (ValueError, KosError, Exception, "ToyAPI.Oops", Oops()):
        with pytest.raises(TypeError, match="not a KosError subclass"):
            raises(bad)  # type: ignore[arg-type]


def test_find_interface() -> None:
    assert find_interface("ToyAPI.Echo") is Echo
    kernel = find_interface("KernelAPI.Kernel")  # through kos-core's kos.interfaces entry point
    assert kernel.wire_name == "KernelAPI.Kernel"
    assert is_interface(kernel)


@pytest.mark.parametrize(
    "wire_name", ["NoSuchAPI.Thing", "ToyAPI.NoSuchType", "KernelAPI.NoSuchType", "x", ""]
)
def test_find_interface_of_an_unknown_name(wire_name: str) -> None:
    with pytest.raises(InterfaceNotFound):
        find_interface(wire_name)


def test_is_interface_and_type_names() -> None:
    assert is_interface(Echo)
    assert not is_interface(Interface)
    assert not is_interface(str)
    assert not is_interface(Echo.methods())
    assert type_name(type(None)) == "None"
    assert type_name(str) == "str"
    assert type_name(Counter) == "ToyAPI.Counter"
    assert type_name(list[str]) == "list[str]"
    assert contains_interface(Counter)
    assert contains_interface(list[tuple[str, Counter]])
    assert contains_interface(Counter | None)
    assert not contains_interface(tuple[int, ...])
    assert not contains_interface(list[str])


# -- check_value -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tp", "expected"),
    [
        ("x", str, "x"),
        ("", str, ""),
        (b"x", bytes, b"x"),
        (bytearray(b"xy"), bytes, b"xy"),
        (memoryview(b"xyz"), bytes, b"xyz"),
        (3, int, 3),
        (-(2**70), int, -(2**70)),
        (2, float, 2.0),
        (2.5, float, 2.5),
        (True, bool, True),
        (False, bool, False),
        (None, type(None), None),
        (None, None, None),
        (["a", "b"], list[str], ("a", "b")),
        (("a", "b"), list[str], ("a", "b")),
        ([], list[str], ()),
        ((1, "a"), tuple[int, str], (1, "a")),
        ([1, "a"], tuple[int, str], (1, "a")),
        ([1, 2, 3], tuple[int, ...], (1, 2, 3)),
        ([["a", "b"], ["c"]], list[list[str]], (("a", "b"), ("c",))),
        ([("k", "v")], list[tuple[str, str]], (("k", "v"),)),
        (((1, 2), "x"), tuple[tuple[int, int], str], ((1, 2), "x")),
        ([bytearray(b"a")], list[bytes], (b"a",)),
        (None, Optional[str], None),  # noqa: UP045 (the old spelling must work too)
        ("s", Optional[str], "s"),  # noqa: UP045
        (None, str | None, None),
        ("s", str | None, "s"),
        (["a"], list[str] | None, ("a",)),
        (5, int | str, 5),
        ("5", int | str, "5"),
        (object, Any, object),
    ],
)
def test_check_value_accepts(value: Any, tp: Any, expected: Any) -> None:
    result = check_value(value, tp, "arg")
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "tp"),
    [
        (b"x", str),
        (1, str),
        (None, str),
        ("x", bytes),
        ([1], bytes),
        (True, int),
        (False, int),
        (1.0, int),
        ("1", int),
        (True, float),
        ("1.5", float),
        (1, bool),
        (0, bool),
        (None, bool),
        (0, type(None)),
        ("", type(None)),
        ("ab", list[str]),
        ({"a"}, list[str]),
        (["a", 1], list[str]),
        ([True], list[int]),
        ((1,), tuple[int, str]),
        ((1, "a", "b"), tuple[int, str]),
        (("a", 1), tuple[int, str]),
        ([["a", 1]], list[list[str]]),
        (1, Optional[str]),  # noqa: UP045
        (True, int | None),
        (b"x", int | str),
        ({"a": 1}, dict[str, int]),
    ],
)
def test_check_value_refuses(value: Any, tp: Any) -> None:
    with pytest.raises(TypeError, match="the-arg"):
        check_value(value, tp, "the-arg")


def test_check_value_names_the_failing_item() -> None:
    with pytest.raises(TypeError, match=r"words\[2\] must be str, not int"):
        check_value(["a", "b", 3], list[str], "words")
    with pytest.raises(TypeError, match=r"pair must have 2 items, not 3"):
        check_value((1, "a", "b"), tuple[int, str], "pair")


def test_check_value_passes_interface_values_through() -> None:
    marker = object()
    assert check_value(marker, Counter, "c") is marker


# -- from_wire ----------------------------------------------------------------------------


def test_from_wire_rebuilds_lists_and_references() -> None:
    made: list[tuple[Any, type[Interface]]] = []

    def make_ref(value: Any, interface: type[Interface]) -> Any:
        made.append((value, interface))
        return f"ref{value}"

    assert from_wire(("a", "b"), list[str], make_ref) == ["a", "b"]
    assert from_wire((("a",), ("b",)), list[list[str]], make_ref) == [["a"], ["b"]]
    assert from_wire((1, ("a",)), tuple[int, list[str]], make_ref) == (1, ["a"])
    assert from_wire((1, 2), tuple[int, ...], make_ref) == (1, 2)
    assert from_wire(None, list[str] | None, make_ref) is None
    assert from_wire(("a",), list[str] | None, make_ref) == ["a"]
    assert from_wire(7, Counter, make_ref) == "ref7"
    assert from_wire((("k", 1), ("l", 2)), list[tuple[str, Counter]], make_ref) == [
        ("k", "ref1"),
        ("l", "ref2"),
    ]
    assert made[0] == (7, Counter)
    assert from_wire(b"x", bytes, make_ref) == b"x"


# -- from_word --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "tp", "expected"),
    [
        ("hello", str, "hello"),
        ("", str, ""),
        ("hello", bytes, b"hello"),
        ("h\u00e9", bytes, "h\u00e9".encode()),
        ("anything", Any, "anything"),
        ("42", int, 42),
        ("-7", int, -7),
        ("2.5", float, 2.5),
        ("3", float, 3.0),
        ("yes", bool, True),
        ("TRUE", bool, True),
        ("on", bool, True),
        ("1", bool, True),
        ("no", bool, False),
        ("False", bool, False),
        ("off", bool, False),
        ("0", bool, False),
        ("5", Optional[int], 5),  # noqa: UP045
        ("5", int | None, 5),
        ("a,b,c", list[str], ["a", "b", "c"]),
        ("", list[str], []),
        ("1,2", list[int], [1, 2]),
        ("x,y", list[bytes], [b"x", b"y"]),
    ],
)
def test_from_word_converts(word: str, tp: Any, expected: Any) -> None:
    result = from_word(word, tp, "arg")
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("word", "tp", "message"),
    [
        ("maybe", bool, "not a boolean"),
        ("", bool, "not a boolean"),
        ("x", int, "is not int"),
        ("1.5", int, "is not int"),
        ("", int, "is not int"),
        ("abc", float, "is not float"),
        ("1,x", list[int], "is not int"),
        ("1,a", tuple[int, str], "cannot be given on the command line"),
        ("c", Counter, "cannot be given on the command line"),
        ("1", int | str, "cannot be given on the command line"),
    ],
)
def test_from_word_errors(word: str, tp: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        from_word(word, tp, "the-arg")
    assert str(info.value).startswith("the-arg: ")


# -- properties ---------------------------------------------------------------------------


def round_trip(value: Any, tp: Any) -> Any:
    return from_wire(check_value(value, tp, "v"), tp, no_refs)


@given(st.lists(st.text()))
def test_list_of_str_round_trips(value: list[str]) -> None:
    wire = check_value(value, list[str], "v")
    assert type(wire) is tuple
    back = from_wire(wire, list[str], no_refs)
    assert back == value
    assert type(back) is list


@given(st.tuples(st.integers(), st.text()))
def test_tuple_of_int_and_str_round_trips(value: tuple[int, str]) -> None:
    back = round_trip(value, tuple[int, str])
    assert back == value
    assert type(back) is tuple


@given(st.binary())
def test_bytes_round_trip(value: bytes) -> None:
    assert round_trip(value, bytes) == value
    assert round_trip(bytearray(value), bytes) == value


@given(st.lists(st.tuples(st.text(), st.lists(st.binary()))))
def test_nested_values_round_trip(value: list[tuple[str, list[bytes]]]) -> None:
    tp = list[tuple[str, list[bytes]]]
    assert round_trip(value, tp) == value


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary()))
def test_check_value_accepts_exactly_the_declared_scalars(value: Any) -> None:
    # what each declared type accepts, and the wire form it gives (bool is no int)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    expected: dict[Any, tuple[bool, Any]] = {
        str: (isinstance(value, str), value),
        bytes: (isinstance(value, bytes), value),
        int: (is_int, value),
        float: (is_int or isinstance(value, float), float(value) if is_int else value),
        bool: (isinstance(value, bool), value),
        type(None): (value is None, None),
        list[str]: (False, None),
        str | None: (value is None or isinstance(value, str), value),
    }
    for tp, (accepted, wire_form) in expected.items():
        if accepted:
            result = check_value(value, tp, "v")
            assert type(result) is type(wire_form), (tp, value, result)
            assert result == wire_form or (math.isnan(result) and math.isnan(wire_form))
        else:
            with pytest.raises(TypeError, match=r"^v must be "):
                check_value(value, tp, "v")


def test_method_spec_is_hashable_and_frozen() -> None:
    spec = MethodSpec("X", (), int, (), "")
    with pytest.raises(AttributeError):
        spec.name = "Y"  # type: ignore[misc]
    assert typing.get_type_hints(Echo.Words)["return"] == list[str]


def test_a_mistyped_interface_name_says_what_the_module_declares() -> None:
    find_interface("ToyAPI.Echo")
    with pytest.raises(InterfaceNotFound) as caught:
        find_interface("ToyAPI.Ecoh")
    message = str(caught.value)
    assert "ToyAPI declares no 'Ecoh' (did you mean 'Echo'?)" in message
    assert "no installed distribution" not in message
    with pytest.raises(InterfaceNotFound, match=r"declares 'KernelAP' \(did you mean 'KernelAPI'"):
        find_interface("KernelAP.Kernel")
