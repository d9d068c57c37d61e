"""``kos watch``: print a running kernel's bind and unbind events as they happen."""

from __future__ import annotations

import os
import sys

import click

from kos_core.cli.common import kernel_option
from kos_core.cli.errors import reports_errors


@click.command()
@kernel_option
@click.argument("path", default="")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@reports_errors
def watch(kernel: str | None, path: str, as_json: bool) -> None:
    """Print each service bound or unbound at or under PATH (default: everywhere), one
    line per event, until Ctrl-C.

    A line is 'bind PATH INTERFACE' or 'unbind PATH INTERFACE'; 'lost' says this
    watcher fell so far behind that the kernel dropped events.
    """
    from kos_core._client import connect

    def interrupted(signum: int, frame: object) -> None:
        # A wait inside a kernel call does not end on KeyboardInterrupt: leave at once
        # (the kernel forgets a closed connection; it holds nothing for a watcher).
        sys.stdout.flush()
        os._exit(0)

    import json
    import signal

    with connect(kernel) as kos:
        events = kos.watch(path)
        signal.signal(signal.SIGINT, interrupted)
        try:
            click.echo(f"kos: watching {path or '/'} (Ctrl-C to stop)", err=True)
            for event in events:
                if as_json:
                    line = json.dumps(
                        {
                            "seq": event.seq,
                            "event": event.kind,
                            "path": event.path,
                            "type": event.typename,
                        }
                    )
                elif event.kind == "lost":
                    line = "lost (events were dropped: this watcher fell behind)"
                else:
                    line = f"{event.kind} {event.path} {event.typename}"
                click.echo(line)
        finally:
            events.close()
