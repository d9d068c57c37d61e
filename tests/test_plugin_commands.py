"""Commands a plugin adds to ``kos`` (hook ``kos_register_commands``) report errors as
kos's own do, without the plugin asking: a kos error is one line on stderr, exit 1,
and 2 for a usage error. The plugin here is a distribution installed for the test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from kos_helpers import Cli, Result, assert_one_line_error

HOOKS = '''
import click

from kos_core.errors import NameNotFound, UsageError
from kos_core.hookspecs import PluginSpec, hookimpl


@hookimpl
def kos_plugin_spec():
    return PluginSpec(name="oops", main="kos_plugins_oops.hooks", description="fails on purpose")


@click.group(name="oops")
def oops():
    """Commands that fail."""


@oops.command(name="usage")
def usage():
    raise UsageError("oops needs a better argument")


@oops.command(name="missing")
def missing():
    raise NameNotFound("oops/nothing is not bound")


@oops.command(name="fine")
def fine():
    click.echo("all fine")


@click.command(name="oops-connect")
@click.option("-n", "--kernel")
def oops_connect(kernel):
    import kos_core

    kos_core.connect(kernel).close()


@hookimpl
def kos_register_commands(cli):
    cli.add_command(oops)
    cli.add_command(oops_connect)
'''

PYPROJECT = """
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "kos-plugins-oops"
version = "0.1.0"
requires-python = ">=3.11"

[project.entry-points."kos.plugins"]
oops = "kos_plugins_oops.hooks"

[tool.hatch.build.targets.wheel]
packages = ["kos_plugins_oops"]
"""


@pytest.fixture(scope="module")
def oops_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the ``oops`` plugin distribution is installed."""
    source = tmp_path_factory.mktemp("oops-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "kos_plugins_oops").mkdir()
    (source / "kos_plugins_oops" / "__init__.py").write_text("")
    (source / "kos_plugins_oops" / "hooks.py").write_text(HOOKS)
    site = tmp_path_factory.mktemp("oops-site")
    install = subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"),
            *("--target", str(site), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    return site


@pytest.fixture
def oops_cli(cli: Cli, oops_site: Path) -> Cli:
    """``kos`` with the ``oops`` plugin installed and loaded."""

    def call(
        *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> Result:
        env = {"PYTHONPATH": str(oops_site), "KOS_LOAD_PLUGINS": "oops", **(extra_env or {})}
        return cli(*args, extra_env=env, timeout=timeout)

    return call


def test_a_plugin_command_that_works_still_works(oops_cli: Cli) -> None:
    result = oops_cli("oops", "fine")
    assert result.returncode == 0, str(result)
    assert result.stdout == "all fine\n"


def test_a_usage_error_of_a_plugin_command_is_one_line_and_exit_2(oops_cli: Cli) -> None:
    line = assert_one_line_error(oops_cli("oops", "usage"), 2, "oops needs a better argument")
    assert line == "kos: error: oops needs a better argument"


def test_a_kos_error_of_a_plugin_command_is_one_line_and_exit_1(oops_cli: Cli) -> None:
    line = assert_one_line_error(oops_cli("oops", "missing"), 1)
    assert line == "kos: error: oops/nothing is not bound"


def test_a_plugin_command_without_a_kernel_says_so_in_one_line(oops_cli: Cli) -> None:
    assert_one_line_error(oops_cli("oops-connect"), 1, "no kernel named", "kos run -n")
