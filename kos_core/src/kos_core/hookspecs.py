"""The hooks through which a plugin distribution tells kos about itself.

A plugin distribution names a module under the entry-point group ``kos.plugins``
(the entry point's name is the plugin's name) and implements these hooks there
with :data:`hookimpl`. Keep that module light: the CLI imports it to list plugins.

Hooks, by phase:

* **discovery** — :func:`kos_plugin_spec`: what the kernel runs for this plugin, and
  the settings it reads from its setup-file section (:class:`Setting`).
* **command line** — :func:`kos_register_commands`: extra ``kos`` subcommands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from kos_core._setting import Setting

if TYPE_CHECKING:
    import click

__all__ = [
    "PluginSpec",
    "Setting",
    "hookimpl",
    "hookspec",
    "kos_plugin_spec",
    "kos_register_commands",
]

hookspec = pluggy.HookspecMarker("kos")
hookimpl = pluggy.HookimplMarker("kos")


@dataclass(frozen=True)
class PluginSpec:
    """What the kernel needs to run a plugin.

    ``name``: the plugin's name (must equal the entry point's name).
    ``main``: the module run as the plugin's process (``python -m main -n KERNEL``);
    it calls :func:`kos_core.pluginlib.register`.
    ``run_at_boot``: whether the kernel starts it when no setup file says otherwise.
    ``description``: one line for ``kos plugins``.
    ``services``: the top-level names the plugin binds. Only it may bind them (they
    are reserved for it even while it is stopped); empty means its own name.
    ``settings``: the keys the plugin reads from its setup-file section, each a
    :class:`Setting`. The kernel checks their values when it reads the setup files
    (a bad one is an error naming the file and line), warns about any other key in
    the plugin's section that neither the plugin nor kos reads, and the plugin gets
    the values, typed and with defaults applied, from
    :func:`kos_core.pluginlib.settings`. ``None`` (the default) declares nothing: kos
    then checks none of the section's keys, and the plugin reads them as strings with
    :func:`kos_core.pluginlib.options`; ``()`` declares that it reads none.

    ::

        PluginSpec(
            name="clock",
            main="kos_plugins_clock.plugin",
            settings=(
                Setting("tick", float, 1.0, "seconds between ticks", minimum=0.1),
                Setting("timezone", str, "UTC", "the zone the time is told in"),
            ),
        )
    """

    name: str
    main: str
    description: str = ""
    run_at_boot: bool = True
    services: tuple[str, ...] = ()
    settings: tuple[Setting[Any], ...] | None = None

    def __post_init__(self) -> None:
        if self.settings is None:
            return
        object.__setattr__(self, "settings", tuple(self.settings))
        seen: set[str] = set()
        for setting in self.settings:
            if not isinstance(setting, Setting):
                raise TypeError(f"settings holds {setting!r}, not a Setting")
            if setting.name in seen:
                raise ValueError(f"setting {setting.name!r} is declared twice")
            seen.add(setting.name)


# -- discovery ---------------------------------------------------------------


@hookspec(firstresult=True)
def kos_plugin_spec() -> PluginSpec:  # type: ignore[empty-body]
    """Describe the plugin this distribution provides.

    Called once per plugin when the kernel or the CLI discovers installed plugins.
    Return a :class:`PluginSpec` whose ``name`` is the entry point's name.
    """


# -- command line --------------------------------------------------------------


@hookspec
def kos_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``kos`` command line.

    Called when the ``kos`` CLI starts, with its top-level click group; call
    ``cli.add_command(...)`` (or use ``@cli.command()``). Import heavy modules
    inside the command functions, not at module level, so ``kos --help`` stays fast.
    The commands added (and their subcommands) report errors as kos's own do: a
    :class:`~kos_core.errors.KosError` is one line on stderr and exit status 1
    (2 for a :class:`~kos_core.errors.UsageError`).
    """
