"""Errors that help: one-line usage errors, "did you mean", stopped versus unknown, help
text without markup.
"""

from __future__ import annotations

import click
import pytest

from kos_core.cli import cli as kos_cli
from kos_core.testing import KernelProcess
from kos_helpers import Cli, assert_one_line_error


def test_usage_errors_are_one_line_naming_the_help(cli: Cli) -> None:
    assert_one_line_error(cli("plugin", "start"), 2, "missing argument 'NAME'", "kos plugin start")
    assert_one_line_error(cli("ls", "--bogus"), 2, "no such option", "--bogus", "kos ls --help")


def test_a_mistyped_command_gets_did_you_mean(cli: Cli) -> None:
    assert_one_line_error(cli("plugn"), 2, "no command 'plugn'", "did you mean 'plugin'?")
    assert_one_line_error(cli("plugin", "strat", "x"), 2, "did you mean 'start'?")
    line = assert_one_line_error(cli("zzzzzz"), 2, "no command 'zzzzzz'")
    assert "did you mean" not in line


def _commands(group: click.Group, path: list[str]) -> list[list[str]]:
    found = [path]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _commands(command, [*path, name])
        else:
            found.append([*path, name])
    return found


@pytest.mark.all_plugins
@pytest.mark.parametrize("path", _commands(kos_cli, []), ids=" ".join)
def test_help_has_no_markup(cli: Cli, path: list[str]) -> None:
    result = cli(*path, "--help")
    assert result.returncode == 0, str(result)
    assert "Usage:" in result.stdout
    for markup in ("``", ":class:", ":func:", ":meth:"):
        assert markup not in result.stdout, result.stdout


def test_a_mistyped_service_gets_did_you_mean(bb_kernel: KernelProcess, cli: Cli) -> None:
    assert_one_line_error(
        cli("call", "bitbuckt", "Get", "x"), 1, "bitbuckt is not bound", "did you mean 'bitbucket'?"
    )


def test_a_stopped_plugins_service_says_stopped_and_how_to_start_it(
    bb_kernel: KernelProcess, cli: Cli
) -> None:
    assert cli("plugin", "stop", "bitbucket").returncode == 0
    line = assert_one_line_error(
        cli("call", "bitbucket", "Get", "x"), 1, "plugin bitbucket is stopped"
    )
    assert line.endswith("(kos plugin start bitbucket)"), line
    assert_one_line_error(cli("ls", "plugins/bitbucket"), 1, "plugin bitbucket is stopped")
