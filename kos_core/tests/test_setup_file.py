"""Tests for plugin setup files (kos_core._kernel.setup_files)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos_core._kernel.setup_files import (
    PluginSettings,
    SetupConfig,
    default_config_dir,
    load_setup,
    setup_file_paths,
)
from kos_core.errors import SetupFileError

KERNEL = "kern"
INSTALLED = ("bitbucket", "files", "clock")


def write(config_dir: Path, name: str, *lines: str) -> Path:
    """Write a setup file made of ``lines`` (line N of the file is ``lines[N-1]``)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def load(config_dir: Path, known: tuple[str, ...] = INSTALLED) -> SetupConfig:
    return load_setup(config_dir, KERNEL, known)


def load_error(config_dir: Path, known: tuple[str, ...] = INSTALLED) -> SetupFileError:
    with pytest.raises(SetupFileError) as info:
        load(config_dir, known)
    return info.value


def assert_error_at(error: SetupFileError, path: Path, line: int | None, message: str) -> None:
    where = f"{path}:{line}" if line is not None else str(path)
    assert str(error).startswith(f"{where}: "), str(error)
    assert error.path == str(path)
    assert error.line == line
    assert message in error.message, error.message


# -- where the files are ------------------------------------------------------


def test_setup_file_paths_lists_the_three_layers(tmp_path: Path) -> None:
    assert setup_file_paths(tmp_path, "k1") == [
        tmp_path / "plugins",
        tmp_path / "plugins.local",
        tmp_path / "plugins.k1",
    ]


def test_default_config_dir_prefers_kos_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KOS_CONFIG", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_config_dir() == tmp_path / "explicit"


def test_default_config_dir_uses_xdg_config_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KOS_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_config_dir() == tmp_path / "xdg" / "kos"


def test_default_config_dir_falls_back_to_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KOS_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_config_dir() == tmp_path / "home" / ".config" / "kos"


def test_missing_config_dir_is_an_empty_config(tmp_path: Path) -> None:
    config = load(tmp_path / "nowhere")
    assert config.files == ()
    assert dict(config.sections) == {}


def test_empty_config_dir_is_an_empty_config(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.files == ()
    assert dict(config.sections) == {}
    assert config.settings_for("bitbucket") == PluginSettings(
        name="bitbucket",
        run_at_boot=True,
        args=(),
        file=None,
        options={},
        where="built-in default",
    )


def test_config_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    not_dir = tmp_path / "conf"
    not_dir.write_text("[bitbucket]\n")
    assert_error_at(load_error(not_dir), not_dir, None, "not a directory")


def test_setup_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "plugins.local").mkdir()
    assert_error_at(load_error(tmp_path), tmp_path / "plugins.local", None, "is a directory")


# -- layers -------------------------------------------------------------------


def test_each_layer_overrides_the_previous_one(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "plugins",
        "[bitbucket]",
        "run-at-boot: 1",
        "args: --capacity 1",
        "colour: red",
        "",
        "[files]",
        "args: --root /srv",
    )
    local = write(
        tmp_path,
        "plugins.local",
        "[bitbucket]",
        "args: --capacity 2",
        "size: big",
    )
    kernel = write(
        tmp_path,
        f"plugins.{KERNEL}",
        "[bitbucket]",
        "run-at-boot: 0",
        "",
        "[clock]",
        "args: --tick 5",
    )
    write(tmp_path, "plugins.otherkernel", "[bitbucket]", "args: --never")

    config = load(tmp_path)

    assert config.files == (base, local, kernel)
    assert list(config.sections) == ["bitbucket", "files", "clock"]
    bitbucket = config.sections["bitbucket"]
    assert bitbucket.run_at_boot is False  # plugins.<kernel> wins
    assert bitbucket.args == ("--capacity", "2")  # plugins.local wins
    assert dict(bitbucket.options) == {
        "run-at-boot": "0",
        "args": "--capacity 2",
        "colour": "red",
        "size": "big",
    }
    assert bitbucket.where == f"{base}:1"
    assert config.sections["files"].args == ("--root", "/srv")
    assert config.sections["clock"].args == ("--tick", "5")
    assert config.sections["clock"].where == f"{kernel}:4"


def test_missing_layers_are_skipped(tmp_path: Path) -> None:
    kernel = write(tmp_path, f"plugins.{KERNEL}", "[clock]", "run-at-boot: off")
    config = load(tmp_path)
    assert config.files == (kernel,)
    assert config.sections["clock"].run_at_boot is False


def test_the_same_section_and_key_in_different_layers_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "args: a", "[DEFAULTS]", "x: 1")
    write(tmp_path, "plugins.local", "[clock]", "args: b", "[DEFAULTS]", "x: 2")
    clock = load(tmp_path).sections["clock"]
    assert clock.args == ("b",)
    assert clock.options["x"] == "2"


# -- values -------------------------------------------------------------------


def test_defaults_apply_to_every_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        "plugins",
        "[DEFAULTS]",
        "args: --verbose",
        "log: /var/log/kos",
        "",
        "[bitbucket]",
        "args: --capacity 204800",
        "",
        "[clock]",
    )
    config = load(tmp_path)
    assert config.sections["bitbucket"].args == ("--capacity", "204800")
    assert config.sections["bitbucket"].options["log"] == "/var/log/kos"
    assert config.sections["clock"].args == ("--verbose",)
    assert config.sections["clock"].options["log"] == "/var/log/kos"
    assert "DEFAULTS" not in config.sections


def test_interpolation_within_a_section_and_across_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        "plugins",
        "[DEFAULTS]",
        "host: localhost",
        "url: http://%(host)s:%(port)s/",
        "port: 80",
        "",
        "[bitbucket]",
        "port: 8080",
        "args: --url %(url)s --discount 10%%",
    )
    bitbucket = load(tmp_path).sections["bitbucket"]
    assert bitbucket.options["url"] == "http://localhost:8080/"
    assert bitbucket.args == ("--url", "http://localhost:8080/", "--discount", "10%")


def test_interpolation_sees_later_layers(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[DEFAULTS]", "port: 1", "[clock]", "args: -p %(port)s")
    write(tmp_path, "plugins.local", "[DEFAULTS]", "port: 2")
    assert load(tmp_path).sections["clock"].args == ("-p", "2")


def test_keys_are_case_sensitive(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "Args: --loud", "args: --quiet", "Run-At-Boot: maybe")
    clock = load(tmp_path).sections["clock"]
    assert clock.args == ("--quiet",)
    assert clock.run_at_boot is True
    assert clock.options["Args"] == "--loud"
    assert clock.options["Run-At-Boot"] == "maybe"


def test_interpolation_names_are_case_sensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins", "[clock]", "Port: 1", "args: %(port)s")
    assert_error_at(load_error(tmp_path), path, 3, 'no key "port"')


def test_continuation_lines_in_args(tmp_path: Path) -> None:
    write(
        tmp_path,
        "plugins",
        "[bitbucket]",
        "args: --capacity 204800",
        "    --name 'big bucket'",
        "# a comment inside the value is dropped",
        "",
        "    --verbose",
        "run-at-boot: yes",
    )
    bitbucket = load(tmp_path).sections["bitbucket"]
    assert bitbucket.args == ("--capacity", "204800", "--name", "big bucket", "--verbose")
    assert bitbucket.run_at_boot is True


def test_comments_and_blank_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        "plugins",
        "# setup for this machine",
        "",
        "   # an indented comment",
        "[clock]  ",
        "# args: --never",
        "note: 1 # not a comment: inline comments are part of the value",
    )
    clock = load(tmp_path).sections["clock"]
    assert clock.args == ()
    assert clock.options["note"] == "1 # not a comment: inline comments are part of the value"


def test_equals_sign_is_also_a_delimiter(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "args = --tick 1", "url: http://x/?a=b")
    clock = load(tmp_path).sections["clock"]
    assert clock.args == ("--tick", "1")
    assert clock.options["url"] == "http://x/?a=b"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True), ("yes", True), ("TRUE", True), ("On", True),
        ("0", False), ("no", False), ("False", False), ("OFF", False),
    ],
)  # fmt: skip
def test_run_at_boot_values(tmp_path: Path, value: str, expected: bool) -> None:
    write(tmp_path, "plugins", "[clock]", f"run-at-boot: {value}")
    assert load(tmp_path).sections["clock"].run_at_boot is expected


def test_section_without_run_at_boot_runs_at_boot(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]")
    assert load(tmp_path).sections["clock"].run_at_boot is True


def test_unknown_keys_are_passed_to_the_plugin(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "timezone: UTC", "with spaces: ok")
    options = load(tmp_path).sections["clock"].options
    assert options == {"timezone": "UTC", "with spaces": "ok"}


def test_file_is_resolved_against_the_setup_file_directory(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(
        config_dir,
        "plugins",
        "[backup]",
        "file: scripts/backup.py",
        "args: --daily",
        "[abs]",
        f"file: {tmp_path / 'elsewhere.py'}",
    )
    config = load(config_dir)
    backup = config.sections["backup"]
    assert backup.file == config_dir / "scripts" / "backup.py"
    assert backup.args == ("--daily",)
    assert config.sections["abs"].file == tmp_path / "elsewhere.py"


def test_relative_config_dir_gives_an_absolute_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "conf", "plugins", "[backup]", "file: backup.py")
    backup = load(Path("conf")).sections["backup"]
    assert backup.file == tmp_path / "conf" / "backup.py"


def test_file_may_use_home_and_interpolation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path, "plugins", "[DEFAULTS]", "bin: ~/bin", "[backup]", "file: %(bin)s/backup")
    assert load(tmp_path).sections["backup"].file == tmp_path / "home" / "bin" / "backup"


# -- settings_for -------------------------------------------------------------


def test_settings_for_a_plugin_with_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins", "# hi", "[clock]", "run-at-boot: 0", "args: -v")
    config = load(tmp_path)
    clock = config.settings_for("clock", default_run_at_boot=True)
    assert clock is config.sections["clock"]
    assert clock.run_at_boot is False
    assert clock.where == f"{path}:2"


def test_settings_for_a_plugin_without_a_section_uses_defaults(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[DEFAULTS]", "args: --quiet", "[clock]")
    config = load(tmp_path)
    files = config.settings_for("files")
    assert files == PluginSettings(
        name="files",
        run_at_boot=True,
        args=("--quiet",),
        file=None,
        options={"args": "--quiet"},
        where="built-in default",
    )
    assert config.settings_for("files", default_run_at_boot=False).run_at_boot is False


def test_settings_for_takes_run_at_boot_from_defaults(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[DEFAULTS]", "run-at-boot: no", "[clock]", "run-at-boot: yes")
    config = load(tmp_path)
    assert config.settings_for("files", default_run_at_boot=True).run_at_boot is False
    assert config.settings_for("clock").run_at_boot is True


def test_settings_for_a_section_without_run_at_boot_uses_the_default(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "args: -v")
    config = load(tmp_path)
    assert config.sections["clock"].run_at_boot is True
    quiet = config.settings_for("clock", default_run_at_boot=False)
    assert quiet.run_at_boot is False
    assert quiet.args == ("-v",)
    assert config.settings_for("clock", default_run_at_boot=True).run_at_boot is True


def test_settings_for_a_section_with_run_at_boot_from_defaults(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[DEFAULTS]", "run-at-boot: 1", "[clock]", "args: -v")
    config = load(tmp_path)
    assert config.settings_for("clock", default_run_at_boot=False).run_at_boot is True
    assert config.settings_for("files", default_run_at_boot=False).run_at_boot is True


def test_settings_for_with_no_files(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.settings_for("clock").run_at_boot is True
    assert config.settings_for("clock", default_run_at_boot=False).run_at_boot is False
    assert config.settings_for("clock").where == "built-in default"


def test_defaults_that_need_a_section_key_are_checked_when_a_plugin_has_no_section(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path, "plugins", "[DEFAULTS]", "args: --port %(port)s", "[bitbucket]", "port: 1"
    )
    # "files" and "clock" are installed and have no section: [DEFAULTS] alone must work.
    assert_error_at(
        load_error(tmp_path), path, 2, 'bad interpolation in "args": no key "port" in [DEFAULTS]'
    )
    # With a section for every installed plugin it is fine...
    config = load(tmp_path, known=("bitbucket",))
    assert config.sections["bitbucket"].args == ("--port", "1")
    # ...until a plugin without a section is asked for.
    with pytest.raises(SetupFileError) as info:
        config.settings_for("other")
    assert_error_at(info.value, path, 2, 'no key "port"')


# -- errors ---------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        ["# header comes later", "args: --x", "[clock]"],
        2,
        "text before the first [section] header",
        id="line-before-header",
    ),
    pytest.param(
        ["[clock]", "args: -v", "[bitbucket", "args: -q"],
        3,
        'section header is missing "]"',
        id="header-missing-bracket",
    ),
    pytest.param(
        ["[clock]", "[]"],
        2,
        "section header has no name",
        id="header-without-name",
    ),
    pytest.param(
        ["[clock] # the clock"],
        1,
        'text after "]" in section header',
        id="text-after-header",
    ),
    pytest.param(
        ["[clock]", "args: -v", "just some words"],
        3,
        'line is not "key: value"',
        id="not-key-value",
    ),
    pytest.param(
        ["[clock]", ": orphan value"],
        2,
        'line is not "key: value"',
        id="empty-key",
    ),
    pytest.param(
        ["[clock]", "args: -v", "", "[clock]", "args: -q"],
        4,
        "section [clock] appears twice in this file (first at line 1)",
        id="duplicate-section",
    ),
    pytest.param(
        ["[DEFAULTS]", "a: 1", "[DEFAULTS]", "b: 2"],
        3,
        "section [DEFAULTS] appears twice in this file",
        id="duplicate-defaults",
    ),
    pytest.param(
        ["[bitbucket]", "args: -v", "run-at-boot: 1", "args: -q"],
        4,
        'key "args" appears twice in [bitbucket]',
        id="duplicate-key",
    ),
    pytest.param(
        ["[bitbucket]", "run-at-boot: 1", "args: --port %(port)s"],
        3,
        'bad interpolation in "args": no key "port" in [bitbucket] or [DEFAULTS]',
        id="interpolation-missing",
    ),
    pytest.param(
        ["[DEFAULTS]", "url: http://%(host)s/", "[bitbucket]", "run-at-boot: 1"],
        2,
        'bad interpolation in "url": no key "host" in [bitbucket] or [DEFAULTS]',
        id="interpolation-missing-from-defaults",
    ),
    pytest.param(
        ["[bitbucket]", "args: --discount 10%"],
        2,
        'bad interpolation in "args": "%" must be followed by "(" or "%"',
        id="interpolation-lone-percent",
    ),
    pytest.param(
        ["[bitbucket]", "args: --port %(port"],
        2,
        'bad interpolation in "args": unfinished reference "%(port"',
        id="interpolation-unfinished",
    ),
    pytest.param(
        ["[bitbucket]", "x: 1", "a: %(b)s", "b: %(a)s"],
        3,
        'bad interpolation in "a": "a" refers back to itself (a -> b -> a)',
        id="interpolation-loop",
    ),
    pytest.param(
        ["[bitbucket]", "args: %(a)s", "a: --size %(size)s"],
        3,
        'bad interpolation in "a": no key "size" in [bitbucket] or [DEFAULTS]',
        id="interpolation-nested-missing",
    ),
    pytest.param(
        ["[bitbucket]", "args: %(k0)s"] + [f"k{i}: %(k{i + 1})s" for i in range(12)] + ["k12: 1"],
        2,
        'bad interpolation in "args": references nested more than 10 deep',
        id="interpolation-too-deep",
    ),
    pytest.param(
        ["[bitbucket]", "args: -v", "run-at-boot: maybe"],
        3,
        'bad value for run-at-boot: "maybe" (use 1/0, yes/no, true/false or on/off)',
        id="bad-run-at-boot",
    ),
    pytest.param(
        ["[bitbucket]", "run-at-boot:"],
        2,
        'bad value for run-at-boot: ""',
        id="empty-run-at-boot",
    ),
    pytest.param(
        ["# defaults", "[DEFAULTS]", "run-at-boot: sometimes", "[bitbucket]", "args: -v"],
        3,
        'bad value for run-at-boot: "sometimes"',
        id="bad-run-at-boot-in-defaults",
    ),
    pytest.param(
        ["[bitbucket]", "args: --name 'unterminated"],
        2,
        "bad value for args: no closing quotation",
        id="bad-args-quoting",
    ),
    pytest.param(
        ["[clock]", "[bitbucket]", "[nmae]", "args: -v"],
        3,
        'unknown plugin "nmae": not installed (installed: bitbucket, clock, files); '
        'give it a "file:" key to run a script',
        id="unknown-plugin",
    ),
    pytest.param(
        ["[clock]", "[bit bucket]"],
        2,
        'bad section name "bit bucket"',
        id="bad-section-name",
    ),
    pytest.param(
        ["[clock]", "[-clock]"],
        2,
        'bad section name "-clock"',
        id="section-name-starting-with-dash",
    ),
    pytest.param(
        ["[backup]", "args: -v", "file:"],
        3,
        "empty value for file",
        id="empty-file",
    ),
    pytest.param(
        ["[bitbucket]", "run-at-boot: nope", "args: %(x)s"],
        2,
        "bad value for run-at-boot",
        id="first-problem-wins",
    ),
]


@pytest.mark.parametrize(("lines", "line", "message"), ERROR_CASES)
def test_errors_name_file_and_line(
    tmp_path: Path, lines: list[str], line: int, message: str
) -> None:
    path = write(tmp_path, "plugins", *lines)
    assert_error_at(load_error(tmp_path), path, line, message)


def test_error_in_a_later_layer_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[bitbucket]", "args: -v")
    write(tmp_path, "plugins.local", "# nothing here")
    kernel = write(tmp_path, f"plugins.{KERNEL}", "", "[bitbucket]", "run-at-boot: maybe")
    assert_error_at(load_error(tmp_path), kernel, 3, "bad value for run-at-boot")


def test_errors_are_reported_layers_in_order(tmp_path: Path) -> None:
    base = write(tmp_path, "plugins", "[clock]", "", "", "args: %(nothing)s")
    write(tmp_path, "plugins.local", "[clock]", "run-at-boot: maybe")
    assert_error_at(load_error(tmp_path), base, 4, 'no key "nothing"')


def test_syntax_error_in_an_earlier_layer_comes_first(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "run-at-boot: maybe")
    local = write(tmp_path, "plugins.local", "[clock", "args: -v")
    assert_error_at(load_error(tmp_path), local, 1, 'missing "]"')


def test_later_layer_can_fix_a_bad_value(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "run-at-boot: maybe", "args: %(gone)s")
    write(tmp_path, "plugins.local", "[clock]", "run-at-boot: 1", "args: -v")
    assert load(tmp_path).sections["clock"].args == ("-v",)


def test_interpolation_error_is_reported_where_the_bad_value_was_set(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "port: 1", "args: -p %(port)s")
    local = write(tmp_path, "plugins.local", "[DEFAULTS]", "x: 1", "[clock]", "args: %(por)s")
    assert_error_at(load_error(tmp_path), local, 4, 'no key "por" in [clock] or [DEFAULTS]')


def test_bad_defaults_run_at_boot_from_a_later_layer(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[clock]", "args: -v")
    local = write(tmp_path, "plugins.local", "[DEFAULTS]", "run-at-boot: perhaps")
    assert_error_at(load_error(tmp_path), local, 2, 'bad value for run-at-boot: "perhaps"')


def test_unknown_plugin_with_a_file_key_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "plugins", "[nightly-backup]", "file: /opt/backup.sh")
    config = load(tmp_path)
    assert config.sections["nightly-backup"].file == Path("/opt/backup.sh")


def test_unknown_plugin_with_nothing_installed(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins", "[clock]")
    assert_error_at(load_error(tmp_path, known=()), path, 1, "(installed: none)")


def test_invalid_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plugins"
    path.write_bytes(b"[clock]\r\nargs: -v\r\nnote: caf\xe9\r\n")
    assert_error_at(load_error(tmp_path), path, 3, "not valid UTF-8")


def test_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "plugins").write_bytes(b"\xef\xbb\xbf[clock]\nargs: -v\n")
    assert load(tmp_path).sections["clock"].args == ("-v",)


# -- no surprise exceptions -------------------------------------------------------

PLAUSIBLE_LINES = st.one_of(
    st.sampled_from(
        [
            "",
            "# comment",
            "  # indented comment",
            "[DEFAULTS]",
            "[bitbucket]",
            "[clock]",
            "[nmae]",
            "[bad name]",
            "[unclosed",
            "[]",
            "args: --capacity 204800",
            "args: 'open quote",
            "  --continued",
            "\t--tabbed",
            "run-at-boot: 1",
            "run-at-boot: maybe",
            "file: script.py",
            "file:",
            "port: 80",
            "url: http://%(host)s:%(port)s/",
            "a: %(b)s",
            "b: %(a)s",
            "pct: 10%",
            "pct: 10%%",
            "ref: %(port",
            "Args = x",
            ": no key",
            "no delimiter",
        ]
    ),
    st.text(alphabet="[]:=%()s#abc -\t\r'\"\\", max_size=20),
)
SETUP_TEXT = st.one_of(st.none(), st.lists(PLAUSIBLE_LINES, max_size=12).map("\n".join))


@settings(max_examples=300, deadline=None, database=None)
@given(
    texts=st.tuples(SETUP_TEXT, SETUP_TEXT, SETUP_TEXT),
    known=st.sets(st.sampled_from(["bitbucket", "clock", "nmae"])),
    ask=st.sampled_from(["bitbucket", "clock", "nobody"]),
)
def test_loading_never_fails_with_another_exception(
    texts: tuple[str | None, str | None, str | None], known: set[str], ask: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        for path, text in zip(setup_file_paths(config_dir, KERNEL), texts, strict=True):
            if text is not None:
                path.write_text(text, encoding="utf-8")
        try:
            config = load_setup(config_dir, KERNEL, known)
        except SetupFileError as exc:
            assert exc.line is None or exc.line >= 1
            assert str(exc).startswith(exc.path)
            return
        assert isinstance(config, SetupConfig)
        assert config.files == tuple(p for p in setup_file_paths(config_dir, KERNEL) if p.exists())
        try:
            settings_ = config.settings_for(ask)
        except SetupFileError:
            # Only [DEFAULTS] alone can fail, and load_setup checks it if it is needed.
            assert ask not in config.sections
            assert set(known) <= set(config.sections)
        else:
            assert settings_.name == ask
