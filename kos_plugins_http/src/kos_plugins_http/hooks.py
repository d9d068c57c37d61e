"""How kos discovers the http plugin, and the ``kos http`` command it adds."""

from __future__ import annotations

import sys

import click

from kos_core.hookspecs import PluginSpec, hookimpl

from .settings import SETTINGS


@hookimpl
def kos_plugin_spec() -> PluginSpec:
    """The http plugin runs ``kos_plugins_http.plugin``."""
    return PluginSpec(
        name="http",
        main="kos_plugins_http.plugin",
        description="fetch http, https and ftp URLs; one requester process per client",
        services=("http",),
        settings=SETTINGS,
    )


@click.group(name="http")
def http_group() -> None:
    """Fetch URLs through a running kernel's http plugin."""


@http_group.command(name="get")
@click.option("-n", "--kernel", metavar="NAME", help="Kernel name.")
@click.option("-i", "--include", is_flag=True, help="Print the response headers first.")
@click.argument("url")
def http_get(kernel: str | None, include: bool, url: str) -> None:
    """Fetch URL with a private requester and write the body to stdout."""
    import kos_core

    from .api import Factory

    with kos_core.connect(kernel) as kos:  # kos reports its errors (one line, exit 1)
        requester = kos.lookup("http", Factory).GetHTTPRequester()
        try:
            headers, body = requester.GetWithInfo(url)
            if include:
                for key, value in headers:
                    click.echo(f"{key}: {value}")
                click.echo()
            data = body.read()
            out = data if isinstance(data, bytes) else data.encode()
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        finally:
            requester.Close()


@hookimpl
def kos_register_commands(cli: click.Group) -> None:
    """Add ``kos http get URL``."""
    cli.add_command(http_group)
