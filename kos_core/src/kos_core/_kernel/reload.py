"""The plugin records a kernel's setup files describe, and reloading them into a running
kernel (``kos reload``, SIGHUP): exactly the plugins whose settings changed are started,
stopped or restarted; a bad file changes nothing.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kos_core._kernel import access
from kos_core._kernel.discovery import InstalledPlugin, declared_settings
from kos_core._kernel.setup_files import PluginSettings, SetupConfig, load_setup, log_setup_read
from kos_core._kernel.supervisor import PluginRecord
from kos_core._world.member import EXPORT_ENV, parse_export
from kos_core.errors import KosError, SetupFileError, UsageError

if TYPE_CHECKING:
    from kos_core._kernel.core import KernelCore

log = logging.getLogger("kos.kernel")

#: What ``Kernel.Reload`` did to one plugin: started, stopped, restarted or updated
#: (its new settings apply at its next start).
Change = tuple[str, str]


def plugin_command(
    name: str, kernel: str, installed: InstalledPlugin | None, settings: PluginSettings
) -> list[str] | None:
    """The command line that runs a plugin: its setup-file ``file``, else its module."""
    if settings.file is not None:
        target = [str(settings.file)]
    elif installed is not None:
        target = ["-m", installed.spec.main]
    else:
        return None
    return [sys.executable, *target, "-n", kernel, *settings.args]


def declared_services(
    name: str, installed: InstalledPlugin | None, settings: PluginSettings
) -> tuple[str, ...]:
    """The top-level names a plugin may bind: its setup section's ``services``, else what
    its :class:`~kos_core.hookspecs.PluginSpec` declares, else its own name.
    """
    if "services" in settings.options:
        try:
            return access.parse_services(settings.options["services"])
        except (ValueError, KosError) as exc:
            raise UsageError(f"{settings.where}: [{name}] services: {exc}") from None
    if installed is not None and installed.spec.services:
        return tuple(installed.spec.services)
    return (name,)


@dataclass
class Records:
    """The plugins a kernel's setup files describe."""

    records: dict[str, PluginRecord]
    #: the plugins that serve the world (in a world only)
    exported: set[str]


def records_from_setup(
    kernel: str,
    installed: Mapping[str, InstalledPlugin],
    setup: SetupConfig,
    in_world: bool,
) -> Records:
    """One record per installed plugin and per setup section (a section naming no
    installed plugin and no ``file`` was reported by discovery and is left out).
    """
    out = Records({}, set())
    for name in sorted(set(installed) | set(setup.sections)):
        plugin = installed.get(name)
        settings = setup.settings_for(name, plugin.spec.run_at_boot if plugin else True)
        command = plugin_command(name, kernel, plugin, settings)
        if command is None:
            continue
        record = out.records[name] = PluginRecord(
            name,
            command,
            settings.run_at_boot,
            dict(settings.options),
            settings.supervision,
            services=declared_services(name, plugin, settings),
            setup_file=str(setup.file_of(name) or ""),
        )
        if in_world:  # in a world, only exporting plugins serve TCP
            export = parse_export(name, settings.options, settings.where)
            record.env[EXPORT_ENV] = "yes" if export else "no"
            if export:
                out.exported.add(name)
    return out


def _settings(record: PluginRecord) -> tuple[object, ...]:
    return (
        record.command,
        record.run_at_boot,
        record.options,
        record.supervision,
        record.services,
        record.env,
        record.setup_file,
    )


def _take_settings(record: PluginRecord, new: PluginRecord) -> None:
    record.command, record.run_at_boot = new.command, new.run_at_boot
    record.options, record.supervision = new.options, new.supervision
    record.services, record.env, record.setup_file = new.services, new.env, new.setup_file


@dataclass
class _Plan:
    changes: list[Change]
    stop: list[str]
    start: list[str]
    forget: list[str]


def _apply(core: KernelCore, setup: SetupConfig, new: Records) -> _Plan:
    """(Main thread.) Take the new settings into the records; say what to stop and start."""
    plan = _Plan([], [], [], [])
    with core.supervisor.lock:
        records = core.records
        for name, fresh in new.records.items():
            old = records.get(name)
            if old is None:
                records[name] = fresh
                plan.changes.append((name, "started" if fresh.run_at_boot else "updated"))
                if fresh.run_at_boot:
                    plan.start.append(name)
                continue
            if old.command is not None and _settings(old) == _settings(fresh):
                continue
            running = old.command is not None and (old.wanted or old.alive)
            _take_settings(old, fresh)
            if running:
                plan.stop.append(name)
                plan.start.append(name)
                plan.changes.append((name, "restarted"))
            elif fresh.run_at_boot and old.session is None:
                plan.start.append(name)
                plan.changes.append((name, "started"))
            else:
                plan.changes.append((name, "updated"))
        for name, old in records.items():
            if old.command is not None and name not in new.records:
                plan.stop.append(name)
                plan.forget.append(name)
                plan.changes.append((name, "stopped"))
        core.reserved = access.reserved_names((r.name, r.services) for r in records.values())
        core.exported = new.exported
        core.setup = setup
        core.station.access = setup.kp_access
    return plan


def reload_setup(core: KernelCore) -> tuple[str, list[str], list[Change]]:
    """Read ``core``'s setup files again and apply them; return the directory, the files
    read, and what was done to each plugin whose settings changed.

    A bad file changes nothing: :class:`~kos_core.errors.UsageError` saying ``file:line``.
    """
    directory = core.setup.directory
    if directory is None:
        raise UsageError(f"kernel {core.name!r} was given no configuration directory")
    with core.reload_lock:
        try:
            setup = load_setup(
                directory, core.name, core.installed, declared_settings(core.installed)
            )
            new = records_from_setup(core.name, core.installed, setup, core.world is not None)
        except SetupFileError as exc:
            raise UsageError(f"{exc}; nothing was changed") from None
        except UsageError as exc:
            raise UsageError(f"{exc}; nothing was changed") from None
        log_setup_read(setup)
        plan = core.supervisor.call_in_main(lambda: _apply(core, setup, new))
        for name, what in plan.changes:
            log.info("plugin %s: settings changed in the setup files; %s", name, what)
        core.supervisor.stop_and_wait(plan.stop)
        for name in plan.forget:
            core.supervisor.forget(name)
        for name in plan.start:
            core.supervisor.start(name)
    log.info("reload done: %d plugin(s) changed", len(plan.changes))
    return str(directory), [p.name for p in setup.files], plan.changes


def install_reload_signal(asked: threading.Event) -> None:
    """SIGHUP sets ``asked`` (the kernel's loop then reloads, see :func:`reload_in_background`)."""

    def handler(signum: int, frame: object) -> None:
        asked.set()

    signal.signal(signal.SIGHUP, handler)


def reload_in_background(core: KernelCore) -> threading.Thread:
    """Reload on a thread of its own (the main thread must keep supervising meanwhile);
    a bad file is logged with its ``file:line`` and changes nothing.
    """

    def run() -> None:
        log.info("reload asked by SIGHUP")
        try:
            reload_setup(core)
        except KosError as exc:
            log.error("reload refused: %s", exc)

    thread = threading.Thread(target=run, name="kos-reload", daemon=True)
    thread.start()
    return thread
