"""``kos plugins`` and ``kos status``: what is installed, and how a kernel's plugins,
KPs and world are doing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kos_core.cli.common import PathType, duration, echo_json, kernel_option, print_table
from kos_core.cli.errors import reports_errors
from kos_core.cli.kp import kp_records, print_kps
from kos_core.errors import KosError, UsageError

if TYPE_CHECKING:
    from pathlib import Path


@click.command()
@kernel_option
@click.option(
    "--config-dir",
    "config_dir",
    type=PathType(),
    metavar="DIR",
    help="Directory of the plugin setup files "
    "(default: $KOS_CONFIG, else $XDG_CONFIG_HOME/kos, else ~/.config/kos).",
)
@click.option(
    "--config",
    "show_config",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[DIR]",
    help="Print the merged setup instead: every section of the setup files (plugins,"
    " plugins.local, plugins.KERNEL; [DEFAULTS] merged into each), key = value with the"
    " file:line it comes from. DIR: the directory to read (like --config-dir).",
)
@click.option(
    "--settings",
    "settings_of",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Print each plugin's declared settings instead (or plugin NAME's): name, type,"
    " default, the value the setup files give it and where it is set, description.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def plugins(
    kernel: str | None,
    config_dir: Path | None,
    show_config: str | None,
    settings_of: str | None,
    as_json: bool,
) -> None:
    """List installed plugins, and their state if a kernel is running.

    With --settings or --config, print what the plugins declare or what the setup
    files say, read from the files (no kernel is needed). A key of a plugin's
    section that neither kos nor the plugin reads is a warning on stderr.
    """
    from kos_core._kernel.discovery import discover
    from kos_core._kernel.setup_files import default_config_dir, load_setup
    from kos_core._os import paths
    from kos_core.cli.setup_view import print_config, print_settings

    if show_config is not None and settings_of is not None:
        raise UsageError("give --config or --settings, not both")
    if show_config:
        from pathlib import Path

        config_dir = Path(show_config)
    name = paths.kernel_name(kernel)
    found = discover()
    setup = load_setup(config_dir or default_config_dir(), name, found.known, found.declared)
    for warning in setup.warnings:
        click.echo(f"kos: warning: {warning}", err=True)
    if show_config is not None:
        print_config(found, setup, as_json)
        return
    if settings_of is not None:
        print_settings(found, setup, settings_of, as_json)
        return
    live: dict[str, tuple[str, int]] = {}
    try:
        from kos_core._client import connect

        with connect(name) as kos:
            live = {row[0]: (row[1], row[2]) for row in kos.plugins()}
        running = True
    except KosError:
        running = False
    rows: list[dict[str, Any]] = []
    for plugin in found.plugins.values():
        settings = setup.settings_for(plugin.name, plugin.spec.run_at_boot)
        state, pid = live.get(plugin.name, ("stopped" if running else "-", 0))
        rows.append(
            _plugin_row(
                plugin.name,
                state,
                pid,
                distribution=plugin.distribution,
                version=plugin.version,
                run_at_boot=settings.run_at_boot,
                description=plugin.spec.description,
            )
        )
    for other, (state, pid) in sorted(live.items()):
        if other not in found.plugins:
            boot = other in setup.sections and setup.settings_for(other, False).run_at_boot
            rows.append(_plugin_row(other, state, pid, run_at_boot=boot))
    for broken in found.broken:
        rows.append(
            _plugin_row(
                broken.name,
                "broken",
                0,
                distribution=broken.distribution,
                description=broken.error,
            )
        )
    if as_json:
        echo_json({"kernel": name, "running": running, "plugins": rows})
        return
    print_table(
        ["NAME", "DISTRIBUTION", "VERSION", "BOOT", "STATE", "PID"],
        [
            [
                r["name"],
                r["distribution"],
                r["version"],
                "yes" if r["run_at_boot"] else "no",
                r["state"],
                str(r["pid"] or "-"),
            ]
            for r in rows
        ],
    )
    if not running:
        click.echo(f"(no kernel named {name!r} is running)", err=True)
    for broken in found.broken:
        click.echo(f"kos: warning: plugin {broken.name} is broken: {broken.error}", err=True)


def _plugin_row(
    name: str,
    state: str,
    pid: int,
    *,
    distribution: str = "-",
    version: str = "-",
    run_at_boot: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """One plugin of ``kos plugins``, as its JSON has it (``pid`` 0: none)."""
    return {
        "name": name,
        "distribution": distribution,
        "version": version,
        "run_at_boot": run_at_boot,
        "state": state,
        "pid": pid or None,
        "description": description,
    }


@click.command()
@kernel_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--world", "world", is_flag=True, help="Show every kernel of the world instead.")
@reports_errors
def status(kernel: str | None, as_json: bool, world: bool) -> None:
    """Show each plugin of a running kernel: state, pid, uptime, restarts, services,
    last exit; then its KPs, if it runs or ran any.

    \b
    States: starting, running, stopping, stopped, backoff (waiting to restart),
    exited (ended; not restarted), fatal (kept failing), unhealthy (not answering).
    """
    from kos_core._client import connect

    if world:
        _world_status(kernel, as_json)
        return
    with connect(kernel) as kos:
        rows = kos.plugins()
        kps = kp_records(kos)
    records: list[dict[str, Any]] = [
        {
            "name": name,
            "state": state,
            "pid": pid or None,
            "uptime": round(uptime, 1),
            "restarts": restarts,
            "services": list(services),
            "last_exit": last_exit,
        }
        for name, state, pid, services, uptime, last_exit, restarts in rows
    ]
    if as_json:
        echo_json({"kernel": kos.name, "plugins": records, "kps": kps})
        return
    print_table(
        ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "SERVICES", "LAST EXIT"],
        [
            [
                r["name"],
                r["state"],
                str(r["pid"] or "-"),
                duration(r["uptime"]),
                str(r["restarts"]),
                ",".join(r["services"]) or "-",
                r["last_exit"] or "-",
            ]
            for r in records
        ],
    )
    if kps:
        click.echo("")
        print_kps(kps)


def _world_status(kernel: str | None, as_json: bool) -> None:
    from kos_core._client import connect

    with connect(kernel) as kos:
        rows = kos.kernel.World()
    records = [
        {"kernel": n, "host": h, "address": a, "uptime": round(u, 1), "services": list(s)}
        for n, h, a, u, s in rows
    ]
    if as_json:
        echo_json({"kernel": kos.name, "world": records})
        return
    print_table(
        ["KERNEL", "HOST", "ADDRESS", "UPTIME", "EXPORTS"],
        [
            [
                r["kernel"],
                r["host"],
                r["address"],
                duration(r["uptime"]),
                ",".join(r["services"]) or "-",
            ]
            for r in records
        ],
    )
