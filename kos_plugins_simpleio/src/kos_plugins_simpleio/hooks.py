"""How kos discovers the simpleio plugin (entry point ``kos.plugins: simpleio``)."""

from __future__ import annotations

from kos_core.hookspecs import PluginSpec, hookimpl


@hookimpl
def kos_plugin_spec() -> PluginSpec:
    """The simpleio plugin runs ``kos_plugins_simpleio.plugin``."""
    return PluginSpec(
        name="simpleio",
        main="kos_plugins_simpleio.plugin",
        description="a Tk talk window per client on the kernel's display",
        services=("simpleio",),
    )
