"""Declared plugin settings without a kernel: declaring them, reading a value, and the
setup files checked against them (the kernel and the CLI run the same code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kos_core import pluginlib
from kos_core._kernel.plugin_settings import KOS_KEYS, spec_problem
from kos_core._kernel.setup_files import load_setup
from kos_core.errors import SetupFileError
from kos_core.hookspecs import PluginSpec, Setting

LEVEL = Setting("level", int, 2, "how loud", minimum=0, maximum=9)
MODE = Setting("mode", str, "fast", "how", choices=("fast", "slow"))
SHARE = Setting("share", float, 0.5, "a part")
LOUD = Setting("loud", bool, False)
TAGS = Setting("tags", tuple, ("a",))
DECLARED = (LEVEL, MODE, SHARE, LOUD, TAGS)


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        (LEVEL, " 7 ", 7),
        (MODE, "slow", "slow"),
        (SHARE, "1e-3", 0.001),
        (LOUD, "On", True),
        (LOUD, "0", False),
        (TAGS, "x, y  z", ("x", "y", "z")),
        (TAGS, "", ()),
    ],
)
def test_a_value_is_converted_to_the_declared_type(
    setting: Setting[Any], text: str, value: object
) -> None:
    assert setting.convert(text) == value


@pytest.mark.parametrize(
    ("setting", "text", "reason"),
    [
        (LEVEL, "2.5", "use a whole number"),
        (LEVEL, "-1", "must not be negative"),
        (LEVEL, "10", "must be at most 9"),
        (MODE, "medium", "use one of: fast, slow"),
        (SHARE, "inf", "use a finite number"),
        (SHARE, "half", "use a finite number"),
        (LOUD, "maybe", "use 1/0, yes/no, true/false or on/off"),
    ],
)
def test_a_bad_value_says_what_to_write(setting: Setting[Any], text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        setting.convert(text)
    assert str(caught.value) == f'bad value for {setting.name}: "{text}" ({reason})'


def test_a_check_refuses_a_value_with_its_own_message() -> None:
    def even(value: int) -> None:
        if value % 2:
            raise ValueError("use an even number")

    def broken(value: int) -> None:
        if value == 4:
            raise KeyError("oops")

    with pytest.raises(ValueError, match=r'^bad value for n: "3" \(use an even number\)$'):
        Setting("n", int, 2, check=even).convert("3")
    with pytest.raises(ValueError, match=r"\(KeyError: 'oops'\)$"):
        Setting("n", int, 2, check=broken).convert("4")


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (lambda: Setting("bad name", int, 1), ValueError, "bad setting name"),
        (lambda: Setting("n", list, []), TypeError, "is not one of"),
        (lambda: Setting("n", int, "1"), TypeError, "the default '1' is not int"),
        (lambda: Setting("n", int, True), TypeError, "is not int"),
        (lambda: Setting("n", float, float("nan")), ValueError, "not finite"),
        (lambda: Setting("n", int, 5, maximum=3), ValueError, "must be at most 3"),
        (lambda: Setting("n", str, "x", minimum=0), TypeError, "for numbers"),
        (lambda: Setting("n", str, "c", choices=("a", "b")), ValueError, "use one of: a, b"),
        (lambda: PluginSpec("p", "m", settings=(LEVEL, LEVEL)), ValueError, "declared twice"),
    ],
)
def test_a_wrong_declaration_fails_where_it_is_made(
    make: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        make()


def test_an_int_default_of_a_float_setting_is_a_float() -> None:
    setting = Setting("n", float, 3)
    assert setting.default == 3.0 and isinstance(setting.default, float)


def test_a_setting_may_not_take_a_key_kos_reads() -> None:
    assert "restart" in KOS_KEYS and "run-at-boot" in KOS_KEYS and "export" in KOS_KEYS
    spec = PluginSpec("p", "m", settings=(Setting("restart", str, "x"),))
    assert spec_problem(spec) == (
        "its setting 'restart' is a key kos reads itself; give it another name"
    )
    assert spec_problem(PluginSpec("p", "m", settings=DECLARED)) is None


def test_pluginlib_settings_types_values_and_applies_defaults() -> None:
    values = pluginlib.settings(DECLARED, {"level": "4", "tags": "b c", "other": "kept apart"})
    assert dict(values) == {
        "level": 4,
        "mode": "fast",
        "share": 0.5,
        "loud": False,
        "tags": ("b", "c"),
    }
    assert values[LEVEL] == 4 and values["mode"] == "fast"
    with pytest.raises(ValueError, match=r'^bad value for level: "x"'):
        pluginlib.settings(DECLARED, {"level": "x"})


def _setup(tmp_path: Path, text: str) -> Any:
    (tmp_path / "plugins").write_text(text)
    return load_setup(tmp_path, "k", {"p", "q"}, {"p": DECLARED, "q": None})


def test_the_setup_files_are_checked_against_the_declared_settings(tmp_path: Path) -> None:
    path = tmp_path / "plugins"
    with pytest.raises(SetupFileError) as caught:
        _setup(tmp_path, "[p]\nlevel: 3\nmode: medium\n")
    assert str(caught.value) == f'{path}:3: bad value for mode: "medium" (use one of: fast, slow)'
    # a plugin that declares nothing is not checked, nor warned about
    setup = _setup(tmp_path, "[q]\nlevel: loud\n")
    assert setup.warnings == ()


def test_defaults_alone_are_checked_for_a_plugin_without_a_section(tmp_path: Path) -> None:
    with pytest.raises(SetupFileError) as caught:
        _setup(tmp_path, "[DEFAULTS]\nshare: most\n")
    assert str(caught.value) == (
        f'{tmp_path / "plugins"}:2: bad value for share: "most" (use a finite number)'
        " in [DEFAULTS], which plugin p reads"
    )


def test_unknown_keys_of_a_declaring_plugin_are_warnings_in_reading_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plugins"
    setup = _setup(tmp_path, "[DEFAULTS]\nx: 1\n[p]\nlevl: 3\nrestart: never\nzzz: 1\n")
    assert setup.warnings == (
        f"{path}:4: unknown key \"levl\" in [p] (did you mean 'level'?):"
        " neither kos nor plugin p reads it (see: kos plugins --settings p)",
        f'{path}:6: unknown key "zzz" in [p]:'
        " neither kos nor plugin p reads it (see: kos plugins --settings p)",
    )
    origins = setup.sections["p"].origins
    assert (str(origins["levl"]), origins["levl"].section) == (f"{path}:4", "p")
    assert (str(origins["x"]), origins["x"].section) == (f"{path}:2", "DEFAULTS")
