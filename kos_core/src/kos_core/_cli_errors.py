"""How every ``kos`` command reports errors: one line on stderr and the exit code.

Exit codes: 0 ok, 1 runtime failure, 2 usage error (bad arguments, bad setup file).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .errors import InterfaceError, KosError, SetupFileError, UsageError

_F = TypeVar("_F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(f"kos: error: {message}", err=True)
    sys.exit(code)


def reports_errors(func: _F) -> _F:
    """Turn kos errors into one line on stderr and the documented exit code."""

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

    return wrapper  # type: ignore[return-value]
