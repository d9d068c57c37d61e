"""Finding installed plugins: entry points of group ``kos.plugins`` loaded through pluggy.

One plugin that fails to import, or describes itself wrongly, is recorded as
broken (with its distribution and the error) and skipped; it never stops the
kernel or the CLI. ``$KOS_LOAD_PLUGINS`` (comma-separated names) limits which
plugins load; set it to the empty string to load none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import pluggy

from kos_core import hookspecs
from kos_core._entry_points import EntryPoint, entry_points
from kos_core._kernel.plugin_settings import Declared, spec_problem
from kos_core.hookspecs import PluginSpec

ENTRY_POINT_GROUP = "kos.plugins"
LOAD_ENV = "KOS_LOAD_PLUGINS"


# Named tuples and a plain class, not dataclasses: kos --help discovers plugins, and
# making a dataclass takes longer than the rest of this module.


class InstalledPlugin(NamedTuple):
    """A plugin found among the installed distributions."""

    name: str
    distribution: str
    version: str
    spec: PluginSpec


class BrokenPlugin(NamedTuple):
    """A plugin whose entry point could not be used, and why."""

    name: str
    distribution: str
    error: str


class Discovery:
    """The outcome of discovery: usable plugins by name, and broken ones."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.plugins: dict[str, InstalledPlugin] = {}
        self.broken: list[BrokenPlugin] = []
        #: installed plugins that ``$KOS_LOAD_PLUGINS`` left out
        self.skipped: set[str] = set()

    @property
    def known(self) -> set[str]:
        """Every installed plugin name: loaded, broken or left out."""
        return set(self.plugins) | {b.name for b in self.broken} | self.skipped

    @property
    def declared(self) -> dict[str, Declared]:
        """The settings each usable plugin declares (``None``: it declares nothing)."""
        return declared_settings(self.plugins)


def declared_settings(installed: Mapping[str, InstalledPlugin]) -> dict[str, Declared]:
    """The settings each of ``installed`` declares, by plugin name."""
    return {name: plugin.spec.settings for name, plugin in installed.items()}


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the kos hookspecs and nothing registered."""
    manager = pluggy.PluginManager("kos")
    manager.add_hookspecs(hookspecs)
    return manager


def _wanted() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _entry_points() -> list[tuple[EntryPoint, str, str]]:
    """Every ``kos.plugins`` entry point with its distribution's name and version,
    in ``sys.path`` order (so the distribution Python would import wins a name).
    """
    return [(ep, *ep.distribution()) for ep in entry_points(ENTRY_POINT_GROUP)]


def discover() -> Discovery:
    """Load every installed plugin's entry point (as limited by ``$KOS_LOAD_PLUGINS``)."""
    found = Discovery(make_plugin_manager())
    wanted = _wanted()
    for ep, dist, version in _entry_points():
        if wanted is not None and ep.name not in wanted:
            found.skipped.add(ep.name)
            continue
        problem = _load_one(found, ep)
        if problem is not None:
            found.broken.append(BrokenPlugin(ep.name, dist, problem))
            continue
        spec = _spec_of(found.manager, ep.name)
        if isinstance(spec, str):
            found.manager.unregister(name=ep.name)
            found.broken.append(BrokenPlugin(ep.name, dist, spec))
            continue
        found.plugins[ep.name] = InstalledPlugin(ep.name, dist, version, spec)
    return found


def installed_spec(name: str) -> PluginSpec | str | None:
    """The spec of installed plugin ``name`` (from the distribution :func:`discover`
    would use), why it cannot be used, or ``None`` if no plugin of that name is installed.
    Loads that plugin's entry point only.
    """
    found = Discovery(make_plugin_manager())
    for ep, _dist, _version in _entry_points():
        if ep.name == name:
            problem = _load_one(found, ep)
            return problem if problem is not None else _spec_of(found.manager, name)
    return None


def _load_one(found: Discovery, ep: EntryPoint) -> str | None:
    manager = found.manager
    if ep.name in found.plugins or manager.get_plugin(ep.name) is not None:
        return f"the name {ep.name!r} is already provided by another distribution"
    # What pluggy's load_setuptools_entrypoints does, one entry point at a time, so
    # that each plugin's failure stays its own.
    try:
        manager.register(ep.load(), name=ep.name)
        manager.check_pending()
    except Exception as exc:  # any failure of third-party code is that plugin's problem
        if manager.get_plugin(ep.name) is not None:
            manager.unregister(name=ep.name)
        return f"{type(exc).__name__}: {exc}"
    return None


def _spec_of(manager: pluggy.PluginManager, name: str) -> PluginSpec | str:
    others = [p for n, p in manager.list_name_plugin() if n != name and p is not None]
    caller = manager.subset_hook_caller("kos_plugin_spec", remove_plugins=others)
    try:
        spec = caller()
    except Exception as exc:
        return f"kos_plugin_spec failed: {type(exc).__name__}: {exc}"
    if not isinstance(spec, PluginSpec):
        return "it does not implement kos_plugin_spec (or returned no PluginSpec)"
    if spec.name != name:
        return f"its entry point is named {name!r} but kos_plugin_spec names {spec.name!r}"
    return spec_problem(spec) or spec
