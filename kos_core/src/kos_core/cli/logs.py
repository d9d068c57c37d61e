"""``kos logs``: a plugin's captured output, or the kernel's own log, read from the state
directory (a kernel need not be running).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kos_core.cli.common import kernel_option
from kos_core.cli.errors import reports_errors
from kos_core.errors import KosError, UsageError

if TYPE_CHECKING:
    from pathlib import Path


@click.command()
@kernel_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until Ctrl-C.")
@click.option(
    "--lines",
    "-l",
    "count",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="How many of the last lines to print first.",
)
@click.option("--kernel-log", is_flag=True, help="The kernel's own log instead of a plugin's.")
@click.argument("name", required=False)
@reports_errors
def logs(kernel: str | None, follow: bool, count: int, kernel_log: bool, name: str | None) -> None:
    """Print the captured output (stdout and stderr) of plugin NAME (kp/ID: of a KP), or with
    --kernel-log the kernel's own log. Every line starts with its time; a marker line
    starts each kernel run. Works whether or not the kernel is running.
    """
    from kos_core._kernel.logs import KERNEL_LOG, follow_file, last_lines, logs_dir
    from kos_core._os import paths

    if kernel_log == (name is not None):
        raise UsageError("give a plugin NAME or --kernel-log (see: kos logs --help)")
    kernel_name = paths.kernel_name(kernel)
    directory = logs_dir(paths.state_dir(kernel_name))
    path = directory / (KERNEL_LOG if name is None else _log_file(name))
    if not path.exists():
        raise KosError(_nothing_yet(name, kernel_name, directory, path))
    for line in last_lines(path, count):
        click.echo(line)
    if follow:
        import signal

        # Ctrl-C ends it, also when started with SIGINT ignored (a non-interactive shell's
        # background job), as kos watch does
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for line in follow_file(path):
                click.echo(line)
        except KeyboardInterrupt:
            return


def _log_file(name: str) -> str:
    """The file name of the log of plugin ``name``, or of KP ``kp/ID``."""
    from kos_core._os import paths

    if name.startswith("kp/"):
        return f"kp-{paths.check_name(name[3:], 'KP')}.log"
    return f"{paths.check_name(name, 'plugin')}.log"


def _nothing_yet(name: str | None, kernel: str, directory: Path, path: Path) -> str:
    if name is None:
        return f"kernel {kernel!r} has no log yet ({path}); it is written by kos run"
    known = sorted(p.stem for p in directory.glob("*.log") if p.name != "kernel.log")
    from kos_core._hints import did_you_mean

    hint = did_you_mean(name, known) if known else ""
    return f"plugin {name!r} has written no output yet ({path}){hint}"
