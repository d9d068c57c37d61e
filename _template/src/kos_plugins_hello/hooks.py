"""How kos discovers the hello plugin (keep this module light: the CLI imports it)."""

from __future__ import annotations

from kos_core.hookspecs import PluginSpec, Setting, hookimpl

#: A key of the plugin's ``[hello]`` setup-file section. The kernel checks its value
#: when it reads the setup files; the plugin reads it with ``pluginlib.settings()``.
GREETING = Setting("greeting", str, "hello", "the word Hello() greets with")


@hookimpl
def kos_plugin_spec() -> PluginSpec:
    """The kernel runs ``python -m kos_plugins_hello.plugin -n KERNEL``."""
    return PluginSpec(
        name="hello",
        main="kos_plugins_hello.plugin",
        description="says hello",
        services=("hello",),  # the names it binds (reserved for it)
        settings=(GREETING,),  # the keys of [hello] it reads (kos plugins --settings hello)
    )
