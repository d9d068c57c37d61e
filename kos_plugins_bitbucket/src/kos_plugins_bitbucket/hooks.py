"""How the kernel discovers the bitbucket plugin (entry point ``kos.plugins: bitbucket``)."""

from __future__ import annotations

from kos_core.hookspecs import PluginSpec, hookimpl


@hookimpl
def kos_plugin_spec() -> PluginSpec:
    """The bitbucket plugin runs ``kos_plugins_bitbucket.plugin``."""
    return PluginSpec(
        name="bitbucket",
        main="kos_plugins_bitbucket.plugin",
        description="named byte strings shared across the kernel, fixed capacity",
        services=("bitbucket",),
        settings=(),  # its capacity is a command-line option (args: --capacity N)
    )
