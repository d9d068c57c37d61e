"""How kos discovers the hello plugin (keep this module light: the CLI imports it)."""

from __future__ import annotations

from kos_core.hookspecs import PluginSpec, hookimpl


@hookimpl
def kos_plugin_spec() -> PluginSpec:
    """The kernel runs ``python -m kos_plugins_hello.plugin -n KERNEL``."""
    return PluginSpec(
        name="hello",
        main="kos_plugins_hello.plugin",
        description="says hello",
        services=("hello",),  # the names it binds (reserved for it)
    )
