"""How the supervisor judges a plugin's start and end: the registration deadline, an
exit that looks like a missing ``kos.run()``, and why a plugin's name is not bound.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kos_core import _hints
from kos_core._kernel import namespace
from kos_core.errors import NameNotFound

if TYPE_CHECKING:
    from kos_core._kernel.supervisor import PluginRecord

log = logging.getLogger("kos.kernel")


def past_register_deadline(record: PluginRecord, now: float) -> bool:
    """True for a plugin still starting past its ``register-timeout`` (not yet killed)."""
    limit = record.supervision.register_timeout
    return (
        record.state == "starting"
        and not record.killed_for
        and limit > 0
        and now - record.started_mono > limit
        and record.alive
    )


def ended_without_serving(record: PluginRecord, removed: list[str]) -> str:
    """For a registered plugin that ended by itself with status 0 after binding services
    (``removed``): log a warning naming ``kos.run()`` and return its LAST EXIT; "" if it
    bound nothing.
    """
    served = [p for p in removed if p != f"plugins/{record.name}"]
    if not served:
        return ""
    names = ", ".join(served)
    log.warning(
        "plugin %s ended by itself (exit status 0) after binding %s: does its main serve"
        " them with kos.run() (or pluginlib.serve)?",
        record.name,
        names,
    )
    return f"exit status 0: ended after binding {names} without serving (kos.run()?)"


def why_not_bound(
    records: Mapping[str, PluginRecord], path: str, exc: NameNotFound, reserved: dict[str, str]
) -> NameNotFound:
    """``exc``, or better: which plugin should bind ``path`` and why it has not."""
    parts = namespace.split_path(path)
    owner = reserved.get(parts[0]) if parts else None
    if owner is None and len(parts) >= 2 and parts[0] == "plugins":
        owner = parts[1] if parts[1] in records else None
    record = records.get(owner) if owner is not None else None
    if record is None or record.state == "running":
        return exc
    hint = _hints.plugin_not_running(record.name, record.state, record.last_exit)
    return NameNotFound(f"{path} is not bound: {hint}")
