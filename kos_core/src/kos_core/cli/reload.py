"""``kos reload``: make a running kernel read its setup files again and apply them."""

from __future__ import annotations

import click

from kos_core.cli.common import kernel_option, wait_options
from kos_core.cli.errors import reports_errors


@click.command()
@kernel_option
@wait_options("the plugins started or restarted run with their services bound")
@reports_errors
def reload(kernel: str | None, wait: bool, timeout: float) -> None:
    """Read the setup files again and apply them to a running kernel.

    Exactly the plugins whose settings changed are started, stopped or restarted; a
    new section with a file key becomes a plugin, a removed one is stopped. A bad
    file changes nothing (exit 2, with its file:line). SIGHUP to the kernel does the
    same.
    """
    from kos_core._client import connect

    with connect(kernel) as kos:
        directory, files, changes = kos.reload(wait=wait, timeout=timeout)
    click.echo(f"read {directory}: {', '.join(files) or 'no setup files'}")
    for name, what in changes:
        click.echo(f"{name}: {what}")
    if not changes:
        click.echo("no plugin's settings changed")
