"""The settings plugins declare, as the kernel sees them: which keys kos reads itself,
checking a section's values against a plugin's declared settings, and the warning for a
key that nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kos_core._hints import did_you_mean
from kos_core._kernel.policy import SUPERVISION_KEYS
from kos_core._setting import Setting
from kos_core.hookspecs import PluginSpec

RUN_AT_BOOT = "run-at-boot"
ARGS = "args"
FILE = "file"
SERVICES = "services"
EXPORT = "export"
#: the keys of a plugin's section that kos reads itself (no plugin may declare them)
KOS_KEYS = frozenset({RUN_AT_BOOT, ARGS, FILE, SERVICES, EXPORT, *SUPERVISION_KEYS})

#: a plugin's declared settings (``None``: it declares nothing, and nothing is checked)
Declared = Sequence[Setting[Any]] | None


def spec_problem(spec: PluginSpec) -> str | None:
    """Why ``spec``'s settings cannot be used (one names a key kos reads), or ``None``."""
    for setting in spec.settings or ():
        if setting.name in KOS_KEYS:
            return f"its setting {setting.name!r} is a key kos reads itself; give it another name"
    return None


def check_values(
    declared: Sequence[Setting[Any]],
    options: Mapping[str, str],
    report: Callable[[str, str], None],
) -> None:
    """``report(key, message)`` for each declared setting whose value in ``options``
    (a section's keys, ``[DEFAULTS]`` merged in) is bad.
    """
    for setting in declared:
        raw = options.get(setting.name)
        if raw is None:
            continue
        try:
            setting.convert(raw)
        except ValueError as exc:
            report(setting.name, str(exc))


def unknown_key(plugin: str, key: str, declared: Sequence[Setting[Any]]) -> str | None:
    """The warning for ``key`` in ``[plugin]``, or ``None`` when kos or the plugin reads it."""
    names = [s.name for s in declared]
    if key in KOS_KEYS or key in names:
        return None
    import json  # to quote the key: a plugin's discovery never needs it

    hint = did_you_mean(key, [*names, *sorted(KOS_KEYS)])
    return (
        f"unknown key {json.dumps(key, ensure_ascii=False)} in [{plugin}]{hint}:"
        f" neither kos nor plugin {plugin} reads it (see: kos plugins --settings {plugin})"
    )
