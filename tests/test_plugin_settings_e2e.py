"""Settings plugins declare (``PluginSpec.settings``): checked by the kernel at file:line,
unknown keys warned about, typed values in the plugin, and ``kos plugins --settings`` /
``kos plugins --config`` showing what the setup files say and where.

The http plugin declares settings; bitbucket declares that it reads none.
"""

from __future__ import annotations

import json
from pathlib import Path

from kos_core.testing import KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error

WITH_HTTP = {"KOS_LOAD_PLUGINS": "bitbucket,http"}
# Nothing boots: the kernel still reads (and checks) every section.
NO_BOOT = "[DEFAULTS]\nrun-at-boot: no\n\n"  # lines 1-3


def test_run_refuses_a_bad_declared_value_at_its_file_and_line(kos_env: KosEnv, cli: Cli) -> None:
    kos_env.write_setup(NO_BOOT + "[http]\ntimeout: 10\n")
    local = kos_env.write_setup("[http]\n# slower here\ntimeout: soon\n", "plugins.local")
    result = cli("run", extra_env=WITH_HTTP, timeout=30)
    assert result.err_lines == [
        f'kos: error: {local}:3: bad value for timeout: "soon" (use a finite number)'
    ]
    assert result.returncode == 2
    # kos plugins reads the same files and says the same
    assert_one_line_error(cli("plugins", extra_env=WITH_HTTP), 2, f"{local}:3:", "timeout")


def test_a_bad_value_from_defaults_names_the_plugin_that_reads_it(
    kos_env: KosEnv, cli: Cli
) -> None:
    path = kos_env.write_setup("[DEFAULTS]\nrun-at-boot: no\nmax-redirects: -2\n")
    assert_one_line_error(
        cli("run", extra_env=WITH_HTTP, timeout=30),
        2,
        f'{path}:3: bad value for max-redirects: "-2" (must not be negative)'
        " in [DEFAULTS], which plugin http reads",
    )


def test_a_section_run_from_a_file_is_not_checked_against_the_installed_plugin(
    kos_env: KosEnv, cli: Cli, tmp_path: Path
) -> None:
    (kos_env.config_dir / "other.py").write_text("print('not http')\n")
    kos_env.write_setup(NO_BOOT + "[http]\nfile: other.py\ntimeout: soon\n")
    result = cli("plugins", "--config", extra_env=WITH_HTTP)
    assert result.returncode == 0, result
    assert "timeout = soon" in result.stdout
    listed = cli("plugins", "--settings", "http", extra_env=WITH_HTTP)
    assert listed.returncode == 0, listed
    script = kos_env.config_dir / "other.py"
    assert f"  its section runs {script} (file), not this plugin" in listed.stdout


def test_unknown_keys_are_warned_about_once_with_a_hint(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    path = kos_env.write_setup(
        "[DEFAULTS]\nrun-at-boot: no\ndatadir: /srv\n\n"  # [DEFAULTS] keys are shared: no warning
        "[http]\ntimout: 5\nrestart: never\nservices: http\nexport: no\n\n"  # lines 5-9
        "[bitbucket]\ncapacity: 10\nargs: --capacity 10\n"  # lines 11-13
    )
    warning = (
        f"{path}:6: unknown key \"timout\" in [http] (did you mean 'timeout'?):"
        " neither kos nor plugin http reads it (see: kos plugins --settings http)"
    )
    kernel = start_kernel(environ=WITH_HTTP)
    log = kernel.log()
    assert log.count("unknown key") == 2, log
    assert log.count(warning) == 1, log
    assert f'{path}:12: unknown key "capacity" in [bitbucket]:' in log

    listed = cli("plugins", extra_env=WITH_HTTP)
    assert listed.returncode == 0, listed
    assert [line for line in listed.err_lines if "unknown key" in line] == [
        f"kos: warning: {warning}",
        f'kos: warning: {path}:12: unknown key "capacity" in [bitbucket]:'
        " neither kos nor plugin bitbucket reads it (see: kos plugins --settings bitbucket)",
    ]


def test_reload_refuses_a_bad_declared_value_and_changes_nothing(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    kernel = start_kernel(setup=NO_BOOT + "[http]\ntimeout: 5\n", environ=WITH_HTTP)
    path = kos_env.write_setup(NO_BOOT + "[http]\ntimeout: 5\nmax-size: huge\n")
    result = cli("reload")
    assert_one_line_error(result, 2, f'{path}:6: bad value for max-size: "huge"', "nothing")
    assert "settings changed" not in kernel.log()


def test_settings_lists_each_declared_setting_with_its_value_and_where(
    kos_env: KosEnv, cli: Cli
) -> None:
    kos_env.write_setup(NO_BOOT + "[http]\ntimeout: 10\nchild-start: exec\n")
    local = kos_env.write_setup("[http]\ntimeout: 2.5\n", "plugins.local")
    result = cli("plugins", "--settings", "http", extra_env=WITH_HTTP)
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[http] fetch http")
    assert lines[1].split() == ["NAME", "TYPE", "DEFAULT", "VALUE", "SET", "AT", "DESCRIPTION"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["timeout"][:5] == ["timeout", "float", "30.0", "2.5", f"{local}:2"]
    assert rows["max-redirects"][:5] == ["max-redirects", "int", "5", "5", "default"]
    assert rows["child-start"][:4] == ["child-start", "text", "fork", "exec"]
    assert rows["allow-hosts"][:4] == ["allow-hosts", "words", '""', '""']
    assert len(rows) == 10

    every = cli("plugins", "--settings", extra_env=WITH_HTTP)
    assert "[bitbucket] named byte strings" in every.stdout
    assert "  reads no settings of its own" in every.stdout
    assert "[http] fetch http" in every.stdout

    data = json.loads(cli("plugins", "--settings", "http", "--json", extra_env=WITH_HTTP).stdout)
    timeout = next(s for s in data["plugins"]["http"] if s["name"] == "timeout")
    assert timeout["value"] == 2.5 and timeout["default"] == 30.0
    assert timeout["where"] == f"{local}:2"


def test_settings_of_an_unknown_plugin_is_a_usage_error(kos_env: KosEnv, cli: Cli) -> None:
    result = cli("plugins", "--settings", "htp", extra_env=WITH_HTTP)
    assert_one_line_error(result, 2, "no installed plugin 'htp'", "did you mean 'http'?")


def test_config_prints_the_merged_setup_with_where_each_value_comes_from(
    kos_env: KosEnv, cli: Cli
) -> None:
    path = kos_env.write_setup(
        "[DEFAULTS]\nrun-at-boot: no\n\n[bitbucket]\nargs: --capacity 10\n  --x\n"
    )
    local = kos_env.write_setup("[bitbucket]\nrun-at-boot: yes\n", "plugins.local")
    other = kos_env.write_setup("[bitbucket]\nargs: -c 5\n", "plugins.elsewhere")
    assert other.exists()  # another kernel's layer: not read
    result = cli("plugins", "--config")
    assert result.returncode == 0, result
    shown = [_text_and_where(line) for line in result.stdout.splitlines()]
    assert shown == [
        (
            "",
            f"{kos_env.config_dir}: plugins, plugins.local"
            " (each file overrides the one before, key by key)",
        ),
        ("[DEFAULTS]", ""),
        ("run-at-boot = no", f"{path}:2"),
        ("", ""),
        ("[bitbucket]", f"{path}:4"),
        ("run-at-boot = yes", f"{local}:2"),
        ("args = --capacity 10", f"{path}:5"),
        ("--x", ""),
    ]

    data = json.loads(cli("plugins", "--config", "--json").stdout)
    keys = data["sections"]["bitbucket"]["keys"]
    assert keys["run-at-boot"] == {
        "value": "yes",
        "file": str(local),
        "line": 2,
        "section": "bitbucket",
    }
    assert data["files"] == [str(path), str(local)]


def _text_and_where(line: str) -> tuple[str, str]:
    """A line of ``kos plugins --config``: its text, and the ``# where`` after it."""
    text, _, where = line.partition("#")
    return text.strip(), where.strip()


def test_config_shows_defaults_merged_into_a_section(kos_env: KosEnv, cli: Cli) -> None:
    path = kos_env.write_setup("[DEFAULTS]\ndatadir: /srv\n\n[bitbucket]\nargs: %(datadir)s\n")
    result = cli("plugins", "--config")
    assert result.returncode == 0, result
    shown = [_text_and_where(line) for line in result.stdout.splitlines()]
    section = shown[shown.index(("[bitbucket]", f"{path}:4")) + 1 :]
    assert section == [("args = /srv", f"{path}:5"), ("datadir = /srv", f"{path}:2 [DEFAULTS]")]


def test_config_of_another_directory_without_files(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    result = cli("plugins", "--config", str(empty))
    assert result.returncode == 0, result
    assert result.stdout == f"# no setup files in {empty}: every installed plugin boots\n"


def test_config_and_settings_together_is_a_usage_error(cli: Cli) -> None:
    assert_one_line_error(cli("plugins", "--config", "--settings"), 2, "not both")


TYPED_SCRIPT = """
import json, sys
from pathlib import Path
from kos_core import pluginlib
from kos_core.hookspecs import Setting

DECLARED = (
    Setting("count", int, 3),
    Setting("ratio", float, 0.5),
    Setting("loud", bool, False),
    Setting("tags", tuple, ()),
    Setting("label", str, "none"),
)
kos, ns = pluginlib.register("typed")
values = pluginlib.settings(DECLARED)
Path({out!r}).write_text(json.dumps(dict(values)))
"""


def test_a_plugin_gets_its_settings_typed_with_defaults_applied(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    out = tmp_path / "values.json"
    (kos_env.config_dir / "typed.py").write_text(TYPED_SCRIPT.format(out=str(out)))
    start_kernel(
        setup=NO_BOOT
        + "[typed]\nfile: typed.py\nrun-at-boot: yes\n"
        + "restart: never\ncount: 7\nloud: on\ntags: a, b c\n"
    )
    wait_for(lambda: out.exists() and out.read_text().endswith("}"), 20, "the plugin's values")
    assert json.loads(out.read_text()) == {
        "count": 7,
        "ratio": 0.5,
        "loud": True,
        "tags": ["a", "b", "c"],
        "label": "none",
    }
