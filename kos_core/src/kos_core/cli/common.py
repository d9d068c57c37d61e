"""What the ``kos`` commands share: the ``-n/--kernel`` and ``--config`` options, and
how a table is printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

_F = TypeVar("_F", bound=Callable[..., Any])

kernel_option = click.option(
    "-n",
    "--kernel",
    "kernel",
    metavar="NAME",
    help="Kernel name (default: $KOS_KERNEL, else the short host name).",
)


class PathType(click.Path):
    """``click.Path`` whose values are :class:`pathlib.Path`; pathlib is imported only
    when such an option is given (``kos --help`` and most commands never load it).
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from pathlib import Path

        return Path(os.fsdecode(super().convert(value, param, ctx)))


config_option = click.option(
    "--config",
    "config_dir",
    type=PathType(),
    metavar="DIR",
    help="Directory of the plugin setup files "
    "(default: $KOS_CONFIG, else $XDG_CONFIG_HOME/kos, else ~/.config/kos).",
)


def help_width(max_width: int = 80) -> int:
    """The width click gives help text: the terminal's (``$COLUMNS`` first, 80 when
    standard output is no terminal) up to ``max_width``, less 2, at least 50.

    The terminal is asked as :func:`shutil.get_terminal_size` asks it, without
    importing :mod:`shutil` (with the compression modules it imports) as click would.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
            columns = 80
    return max(min(columns, max_width) - 2, 50)


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print ``rows`` under ``header`` in aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def echo_json(data: object) -> None:
    """Print ``data`` as indented JSON (json is imported here: ``--json`` is rare)."""
    import json

    click.echo(json.dumps(data, indent=2))


def duration(seconds: float) -> str:
    """``seconds`` as ``3s``, ``2m05s`` or ``1h02m``; ``-`` for none."""
    if seconds <= 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def wait_options(until: str) -> Callable[[_F], _F]:
    """``--wait/--no-wait`` (on by default: return once ``until``) and ``--timeout S``."""

    def decorate(func: _F) -> _F:
        func = click.option(
            "--timeout",
            type=click.FloatRange(min=0),
            default=30.0,
            show_default=True,
            metavar="S",
            help="How long --wait waits.",
        )(func)
        return click.option(
            "--wait/--no-wait", default=True, show_default=True, help=f"Return once {until}."
        )(func)

    return decorate
