"""What the plugin setup files say, once read and checked (:mod:`.setup_files` reads
them): the merged configuration, and the settings it gives each plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from kos_core._kernel.policy import Supervision
from kos_core._kp.policy import KPAccess
from kos_core.errors import SetupFileError

__all__ = ["Origin", "PluginSettings", "SetupConfig"]

_BUILT_IN = "built-in default"


@dataclass(frozen=True)
class Origin:
    """Where a key's value was set: a setup file, its line, and the section there (the
    plugin's own, or ``DEFAULTS``).
    """

    path: Path
    line: int
    section: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class PluginSettings:
    """What the setup files say about one plugin."""

    name: str
    #: Whether the kernel starts this plugin when it boots.
    run_at_boot: bool
    #: The ``args`` key split like a shell command line.
    args: tuple[str, ...]
    #: The ``file`` key: a script to run as this plugin, or ``None``.
    file: Path | None
    #: Every key of the section (``[DEFAULTS]`` merged in), after interpolation.
    options: Mapping[str, str]
    #: ``path:line`` of the section header that defined the plugin, or ``"built-in default"``.
    where: str
    #: How the kernel supervises it (restart policy, health checks, log rotation).
    supervision: Supervision = field(default_factory=Supervision)
    #: Where each key of ``options`` was set.
    origins: Mapping[str, Origin] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class _Implicit:
    """The settings ``[DEFAULTS]`` alone gives a plugin that has no section."""

    run_at_boot: bool | None
    args: tuple[str, ...]
    file: Path | None
    options: Mapping[str, str]
    supervision: Supervision = field(default_factory=Supervision)
    origins: Mapping[str, Origin] = field(default_factory=dict)


_NOTHING = _Implicit(None, (), None, MappingProxyType({}))


@dataclass(frozen=True)
class SetupConfig:
    """The merged content of a configuration directory's setup files."""

    #: The files that existed and were read, in order.
    files: tuple[Path, ...]
    #: One entry per ``[name]`` section found in the files.  A section whose files
    #: do not set ``run-at-boot`` (nor ``[DEFAULTS]``) says ``True`` here;
    #: :meth:`settings_for` gives it the caller's default instead.
    sections: Mapping[str, PluginSettings]
    #: The station's policy for KPs (the ``[kp-access]`` section; not a plugin).
    kp_access: KPAccess = field(default_factory=KPAccess)
    #: The configuration directory the files were looked for in.
    directory: Path | None = None
    #: ``path:line: message`` for each key of a plugin's section that neither kos nor
    #: the plugin reads (for plugins that declare their settings).
    warnings: tuple[str, ...] = ()
    # What [DEFAULTS] gives plugins without a section, or why it cannot be used.
    _implicit: _Implicit | SetupFileError = field(default=_NOTHING, repr=False, compare=False)
    # Sections for which no file sets run-at-boot.
    _boot_unset: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def file_of(self, name: str) -> Path | None:
        """The setup file that holds plugin ``name``'s section (its first header), or where
        one would go (``plugins`` in the directory); ``None`` without a directory.
        """
        section = self.sections.get(name)
        if section is not None:
            return Path(section.where.rpartition(":")[0])
        return self.directory / "plugins" if self.directory is not None else None

    def settings_for(self, name: str, default_run_at_boot: bool = True) -> PluginSettings:
        """Return the settings of one plugin.

        Its section if there is one; otherwise ``[DEFAULTS]`` applied to an implicit
        empty section, with ``where="built-in default"``.  Either way ``run_at_boot``
        comes from ``run-at-boot`` if the section or ``[DEFAULTS]`` sets it, and is
        ``default_run_at_boot`` otherwise.

        Raises :class:`SetupFileError` only when the plugin has no section and
        ``[DEFAULTS]`` cannot be used on its own (for example it refers to a key that
        only sections define); :func:`load_setup` already reports that when an
        installed plugin has no section.
        """
        section = self.sections.get(name)
        if section is not None:
            if name in self._boot_unset and section.run_at_boot != default_run_at_boot:
                return replace(section, run_at_boot=default_run_at_boot)
            return section
        implicit = self._implicit
        if isinstance(implicit, SetupFileError):
            raise implicit
        run_at_boot = implicit.run_at_boot
        return PluginSettings(
            name=name,
            run_at_boot=default_run_at_boot if run_at_boot is None else run_at_boot,
            args=implicit.args,
            file=implicit.file,
            options=implicit.options,
            where=_BUILT_IN,
            supervision=implicit.supervision,
            origins=implicit.origins,
        )

    def defaults(self) -> tuple[Mapping[str, str], Mapping[str, Origin]] | None:
        """The keys of ``[DEFAULTS]`` (interpolated) and where each was set; ``None``
        when ``[DEFAULTS]`` cannot be read on its own (it refers to a key only sections
        define).
        """
        implicit = self._implicit
        if isinstance(implicit, SetupFileError):
            return None
        return implicit.options, implicit.origins
