"""``kos plugins --settings`` and ``kos plugins --config``: what plugins declare, and
what the setup files say, each value with the file and line it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from kos_core._hints import did_you_mean
from kos_core._kernel.discovery import Discovery, InstalledPlugin
from kos_core._kernel.setup_config import Origin, PluginSettings, SetupConfig
from kos_core.cli.common import print_table
from kos_core.errors import UsageError

__all__ = ["print_config", "print_settings"]

_DEFAULTS = "DEFAULTS"


def print_settings(found: Discovery, setup: SetupConfig, only: str, as_json: bool) -> None:
    """Each installed plugin's declared settings (``only``: that plugin's), with the
    value the setup files give it and where that was set.
    """
    plugins = sorted(found.plugins.values(), key=lambda p: p.name)
    if only:
        if only not in found.plugins:
            installed = ", ".join(p.name for p in plugins) or "none"
            hint = did_you_mean(only, found.plugins)
            raise UsageError(f"no installed plugin {only!r}{hint} (installed: {installed})")
        plugins = [found.plugins[only]]
    given = {p.name: setup.settings_for(p.name, p.spec.run_at_boot) for p in plugins}
    scripts = {name: settings.file for name, settings in given.items() if settings.file}
    report = {p.name: _declared(p, given[p.name]) for p in plugins if p.name not in scripts}
    if as_json:
        click.echo(json.dumps({"directory": str(setup.directory), "plugins": report}, indent=2))
        return
    for number, plugin in enumerate(plugins):
        if number:
            click.echo("")
        click.echo(f"[{plugin.name}] {plugin.spec.description}".rstrip())
        rows = report.get(plugin.name)
        if plugin.name in scripts:
            click.echo(f"  its section runs {scripts[plugin.name]} (file), not this plugin")
        elif rows is None:
            click.echo(
                "  declares no settings: kos checks none of its keys, and the plugin"
                " reads them as text (pluginlib.options())"
            )
        elif not rows:
            click.echo("  reads no settings of its own")
        else:
            print_table(
                ["  NAME", "TYPE", "DEFAULT", "VALUE", "SET AT", "DESCRIPTION"],
                [
                    [
                        f"  {r['name']}",
                        r["type"],
                        _text(r["default_text"]),
                        _text(r["value_text"]),
                        r["where"],
                        r["description"],
                    ]
                    for r in rows
                ],
            )


def _declared(plugin: InstalledPlugin, settings: PluginSettings) -> list[dict[str, Any]] | None:
    """One row per declared setting of ``plugin`` (``None``: it declares nothing)."""
    if plugin.spec.settings is None:
        return None
    rows = []
    for setting in plugin.spec.settings:
        raw = settings.options.get(setting.name)
        value = setting.default if raw is None else setting.convert(raw)
        origin = settings.origins.get(setting.name)
        rows.append(
            {
                "name": setting.name,
                "type": setting.kind,
                "default": _jsonable(setting.default),
                "default_text": setting.show(setting.default),
                "value": _jsonable(value),
                "value_text": setting.show(value),
                "where": "default" if origin is None else _where(origin),
                "description": setting.description,
            }
        )
    return rows


def print_config(found: Discovery, setup: SetupConfig, as_json: bool) -> None:
    """Every section of the setup files, merged (``[DEFAULTS]`` into each plugin's
    section, later files over earlier ones), each key with the file and line it comes from.
    """
    sections: dict[str, dict[str, Any]] = {}
    defaults = setup.defaults()
    if defaults is not None and defaults[0]:
        sections[_DEFAULTS] = {"where": None, "keys": _keys(*defaults)}
    for name, settings in setup.sections.items():
        sections[name] = {
            "where": settings.where,
            "keys": _keys(settings.options, settings.origins),
        }
    no_section = sorted(set(found.plugins) - set(setup.sections))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "directory": str(setup.directory),
                    "files": [str(path) for path in setup.files],
                    "sections": sections,
                    "without_section": no_section,
                },
                indent=2,
            )
        )
        return
    if not setup.files:
        click.echo(f"# no setup files in {setup.directory}: every installed plugin boots")
        return
    names = ", ".join(path.name for path in setup.files)
    click.echo(f"# {setup.directory}: {names} (each file overrides the one before, key by key)")
    if defaults is None:
        click.echo("# [DEFAULTS] refers to keys only sections define: see each section")
    lines: list[tuple[str, str]] = []
    for name, section in sections.items():
        lines.append(("", ""))
        lines.append((f"[{name}]", section["where"] or ""))
        for key, entry in section["keys"].items():
            first, *more = entry["value"].split("\n")
            where = f"{entry['file']}:{entry['line']}"
            if entry["section"] != name:
                where += " [DEFAULTS]"
            lines.append((f"{key} = {first}".rstrip(), where))
            lines.extend((f"    {line}".rstrip(), "") for line in more)
    width = max(len(text) for text, _ in lines)
    for text, where in lines[1:]:
        click.echo(f"{text.ljust(width)}  # {where}" if where else text)
    if no_section:
        click.echo(
            f"\n# installed, without a section ([DEFAULTS] applies): {', '.join(no_section)}"
        )


def _keys(options: Mapping[str, str], origins: Mapping[str, Origin]) -> dict[str, Any]:
    """Each key with its value and origin: the section's own keys, then ``[DEFAULTS]``'s."""
    order = sorted(options, key=lambda key: origins[key].section == _DEFAULTS)
    return {
        key: {
            "value": value,
            "file": str(origins[key].path),
            "line": origins[key].line,
            "section": origins[key].section,
        }
        for key, value in ((key, options[key]) for key in order)
    }


def _where(origin: Origin) -> str:
    return f"{origin} [DEFAULTS]" if origin.section == _DEFAULTS else str(origin)


def _text(value: str) -> str:
    """A value in a table: an empty one is shown as ``""``."""
    return value or '""'


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
