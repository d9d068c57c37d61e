"""The hooks through which a plugin distribution tells kos about itself.

A plugin distribution names a module under the entry-point group ``kos.plugins``
(the entry point's name is the plugin's name) and implements these hooks there
with :data:`hookimpl`. Keep that module light: the CLI imports it to list plugins.

Hooks, by phase:

* **discovery** — :func:`kos_plugin_spec`: what the kernel runs for this plugin.
* **command line** — :func:`kos_register_commands`: extra ``kos`` subcommands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

__all__ = ["PluginSpec", "hookimpl", "hookspec", "kos_plugin_spec", "kos_register_commands"]

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
    """

    name: str
    main: str
    description: str = ""
    run_at_boot: bool = True
    services: tuple[str, ...] = ()


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
