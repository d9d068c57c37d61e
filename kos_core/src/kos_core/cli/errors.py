"""How every ``kos`` command reports errors: one line on stderr and the exit code.

Exit codes: 0 ok, 1 runtime failure, 2 usage error (bad arguments, bad setup file).
click's own usage errors (a missing argument, an unknown command or option) are
reported the same way, with "did you mean" for a mistyped command.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from kos_core._hints import did_you_mean
from kos_core.errors import InterfaceError, KosError, SetupFileError, UsageError

_F = TypeVar("_F", bound=Callable[..., Any])
#: marks a function :func:`reports_errors` already wraps
_REPORTS = "_kos_reports_errors"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"kos: error: {message}", err=True)
    sys.exit(code)


def reports_errors(func: _F) -> _F:
    """Turn kos errors into one line on stderr and the documented exit code."""
    if getattr(func, _REPORTS, False):
        return func

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (UsageError, SetupFileError) as exc:
            _fail(str(exc), 2)
        except InterfaceError as exc:
            _fail(f"{exc.wire_name}: {exc}", 1)
        except KosError as exc:
            _fail(str(exc), 1)
        except BrokenPipeError:
            sys.exit(1)

    setattr(wrapper, _REPORTS, True)
    return wrapper  # type: ignore[return-value]


def report_errors_of(command: click.Command) -> None:
    """Give ``command`` (a plugin's), and each subcommand of it, kos's error reporting,
    as :func:`reports_errors` gives kos's own commands.
    """
    if command.callback is not None:
        command.callback = reports_errors(command.callback)
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            report_errors_of(subcommand)


class HintingGroup(click.Group):
    """A command group whose unknown commands get "did you mean" and one line."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            hint = did_you_mean(name, self.list_commands(ctx))
            raise click.UsageError(f"no command {name!r}{hint}", ctx)
        return super().resolve_command(ctx, args)


def run_command_line(group: click.Group) -> NoReturn:
    """Run the ``kos`` command line; click's usage errors become one line and exit 2."""
    try:
        result = group.main(prog_name="kos", standalone_mode=False)
    except (UsageError, SetupFileError) as exc:  # raised before a command ran (a bad
        _fail(str(exc), 2)  # environment variable read as its module loaded, say)
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "kos"
        message = exc.format_message().rstrip(".")
        _fail(f"{message[:1].lower()}{message[1:]} (see: {path} --help)", exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        click.echo("kos: aborted", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
