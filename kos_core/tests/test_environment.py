"""Numbers read from the environment: a bad one is a UsageError naming it."""

from __future__ import annotations

import pytest

from kos_core._os import environment
from kos_core.errors import UsageError


def test_unset_or_empty_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOS_TEST_NUMBER", raising=False)
    assert environment.number("KOS_TEST_NUMBER", 7.5, "seconds", low=0, high=10) == 7.5
    monkeypatch.setenv("KOS_TEST_NUMBER", "  ")
    assert environment.number("KOS_TEST_NUMBER", 7.5, "seconds", low=0, high=10) == 7.5


@pytest.mark.parametrize(("text", "value"), [("3", 3.0), (" 0.25 ", 0.25), ("1e1", 10.0)])
def test_a_number_in_range_is_read(
    monkeypatch: pytest.MonkeyPatch, text: str, value: float
) -> None:
    monkeypatch.setenv("KOS_TEST_NUMBER", text)
    assert environment.number("KOS_TEST_NUMBER", 1.0, "seconds", low=0, high=10) == value


@pytest.mark.parametrize("text", ["soon", "nan", "inf", "-inf", "-0.5", "10.5", "1,5"])
def test_anything_else_names_the_variable(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("KOS_TEST_NUMBER", text)
    with pytest.raises(UsageError) as caught:
        environment.number("KOS_TEST_NUMBER", 1.0, "seconds", low=0.001, high=10)
    assert str(caught.value) == (
        f"KOS_TEST_NUMBER must be a number of seconds from 0.001 to 10, not {text!r}"
    )


@pytest.mark.parametrize(
    "variable",
    ["KOS_CALL_TIMEOUT", "KOS_MAX_REQUEST", "KOS_SPAWN_TIMEOUT", "KOS_CHILD_CLIENT_TIMEOUT"],
)
def test_check_finds_each_bad_variable(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    environment.check()  # the environment the tests run in is good
    monkeypatch.setenv(variable, "never")
    with pytest.raises(UsageError, match=variable):
        environment.check()
