"""Plugin setup files: which plugins the kernel runs, and with what arguments.

A setup file is made of ``[name]`` sections of ``key: value`` lines, with ``#``
comments, indented continuation lines, a ``[DEFAULTS]`` section whose keys apply
to every section, ``%(name)s`` interpolation and case-sensitive keys.  Up to three
layers are read from the configuration directory, each overriding the previous
one key by key: ``plugins``, ``plugins.local`` and ``plugins.<kernel>``.

Values are parsed with :mod:`configparser`; a scan of our own records where every
section and key comes from, so that each problem is reported as a
:class:`~kos_core.errors.SetupFileError` with its file and line. What the files say
(:class:`SetupConfig`, :class:`PluginSettings`) is declared in :mod:`.setup_config`.
"""

from __future__ import annotations

import configparser
import logging
import os
import shlex
import stat
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from kos_core._kernel.plugin_settings import (
    ARGS,
    FILE,
    RUN_AT_BOOT,
    Declared,
    check_values,
    unknown_key,
)
from kos_core._kernel.policy import Supervision, parse_supervision
from kos_core._kernel.setup_config import Origin, PluginSettings, SetupConfig, _Implicit
from kos_core._kernel.setup_interpolation import _diagnose, _scope
from kos_core._kernel.setup_scan import (
    _DEFAULTS,
    _from_parser_error,
    _Layer,
    _Parser,
    _quote,
    _read_lines,
    _reason,
    _scan,
)
from kos_core._kp.policy import SECTION as _KP_ACCESS
from kos_core._kp.policy import KPAccess, parse_access
from kos_core.errors import SetupFileError

__all__ = [
    "Origin",
    "PluginSettings",
    "SetupConfig",
    "default_config_dir",
    "load_setup",
    "log_setup_read",
    "setup_file_paths",
]

_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES


def default_config_dir() -> Path:
    """Return the configuration directory.

    ``$KOS_CONFIG`` if set and not empty, else ``$XDG_CONFIG_HOME/kos``, else
    ``~/.config/kos``.
    """
    if env := os.environ.get("KOS_CONFIG"):
        return Path(env)
    if xdg := os.environ.get("XDG_CONFIG_HOME"):
        return Path(xdg) / "kos"
    return Path.home() / ".config" / "kos"


def log_setup_read(setup: SetupConfig) -> None:
    """Log which directory the setup files were looked for in, and which were read."""
    files = ", ".join(p.name for p in setup.files) or "none (every installed plugin boots)"
    log = logging.getLogger("kos.kernel")
    log.info("setup files in %s: %s", setup.directory, files)
    for warning in setup.warnings:
        log.warning("%s", warning)


def setup_file_paths(config_dir: Path, kernel: str) -> list[Path]:
    """Return the setup files of ``kernel`` in reading order, whether they exist or not."""
    return [
        config_dir / "plugins",
        config_dir / "plugins.local",
        config_dir / f"plugins.{kernel}",
    ]


def load_setup(
    config_dir: Path,
    kernel: str,
    known_plugins: Collection[str],
    declared: Mapping[str, Declared] | None = None,
) -> SetupConfig:
    """Read and check the setup files of ``kernel`` in ``config_dir``.

    ``known_plugins`` are the installed plugins; a section naming anything else
    must have a ``file`` key.  ``declared`` gives the settings installed plugins
    declare (their :class:`~kos_core.hookspecs.PluginSpec` ``settings``): their
    values are checked, and a key of such a plugin's section that neither kos nor
    the plugin reads gives a warning (:attr:`SetupConfig.warnings`).  A missing
    directory or missing files are fine (no file at all gives an empty
    configuration).  The first problem found, layers in order, is raised as
    :class:`SetupFileError`.
    """
    try:
        dir_mode = config_dir.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return SetupConfig(files=(), sections=MappingProxyType({}), directory=config_dir)
    except OSError as exc:
        raise SetupFileError(str(config_dir), None, f"cannot read it: {_reason(exc)}") from None
    if not stat.S_ISDIR(dir_mode):
        raise SetupFileError(str(config_dir), None, "is not a directory")

    layers: list[_Layer] = []
    paths: list[Path] = []
    for path in setup_file_paths(config_dir, kernel):
        if path in paths:  # a kernel named "local"
            continue
        paths.append(path)
        lines = _read_lines(path)
        if lines is not None:
            layers.append(_scan(path, len(layers), lines))

    parser = _Parser()
    for layer in layers:
        try:
            parser.read_file(layer.lines, source=str(layer.path))
        except configparser.Error as exc:  # the scan should have caught it first
            raise _from_parser_error(layer.path, exc) from None
    merged = _Merged(parser, layers)
    return replace(merged.build(known_plugins, declared or {}), directory=config_dir)


# -- reading and scanning -----------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """An error and where it sits in reading order."""

    layer: int
    line: int
    error: SetupFileError

    @property
    def order(self) -> tuple[int, int]:
        return (self.layer, self.line)


@dataclass(frozen=True)
class _Values:
    """The keys kos reads from one section, checked."""

    run_at_boot: bool | None
    args: tuple[str, ...]
    file: Path | None
    options: Mapping[str, str]
    supervision: Supervision
    origins: Mapping[str, Origin]


class _Merged:
    """All layers read into one parser, with where each section and key was set."""

    def __init__(self, parser: _Parser, layers: Sequence[_Layer]) -> None:
        self.parser = parser
        self.layers = layers
        # First header of each plugin section, in reading order.
        self.headers: dict[str, tuple[_Layer, int]] = {}
        # The layer and line that set each key last: later layers win.
        self.origins: dict[tuple[str, str], tuple[_Layer, int]] = {}
        for layer in layers:
            for name, line in layer.headers.items():
                if name != _DEFAULTS:
                    self.headers.setdefault(name, (layer, line))
            for skey, line in layer.keys.items():
                self.origins[skey] = (layer, line)

    def build(
        self, known_plugins: Collection[str], declared: Mapping[str, Declared]
    ) -> SetupConfig:
        """Check every section and return the configuration, or raise the first problem."""
        known = set(known_plugins)
        problems: list[_Problem] = []
        warnings: list[tuple[tuple[int, int], str]] = []
        sections: dict[str, PluginSettings] = {}
        boot_unset: set[str] = set()
        kp_access = self.kp_access(problems)
        for name, (layer, line) in self.headers.items():
            if name == _KP_ACCESS:
                continue
            values, found = self.evaluate(name)
            problems.extend(found)
            if name not in known and not self.parser.has_option(name, FILE):
                installed = ", ".join(sorted(known)) or "none"
                problems.append(
                    _Problem(
                        layer.index,
                        line,
                        SetupFileError(
                            str(layer.path),
                            line,
                            f"unknown plugin {_quote(name)}: not installed "
                            f"(installed: {installed}); "
                            'give it a "file:" key to run a script',
                        ),
                    )
                )
            if values is not None and values.file is None:
                problems.extend(self.check_declared(name, values.options, declared.get(name)))
                warnings.extend(self.unknown_keys(name, values.options, declared.get(name)))
            if values is not None:
                if values.run_at_boot is None:
                    boot_unset.add(name)
                sections[name] = PluginSettings(
                    name=name,
                    run_at_boot=True if values.run_at_boot is None else values.run_at_boot,
                    args=values.args,
                    file=values.file,
                    options=values.options,
                    where=f"{layer.path}:{line}",
                    supervision=values.supervision,
                    origins=values.origins,
                )

        implicit: _Implicit | SetupFileError
        values, found = self.evaluate(_DEFAULTS)
        if values is not None:
            implicit = _Implicit(
                values.run_at_boot,
                values.args,
                values.file,
                values.options,
                values.supervision,
                values.origins,
            )
            if values.file is None:
                for name in sorted(known - set(self.headers)):
                    problems.extend(self.check_declared(name, values.options, declared.get(name)))
        else:
            first = min(found, key=lambda p: p.order)
            implicit = first.error
            if any(name not in self.headers for name in known):
                problems.extend(found)

        if problems:
            raise min(problems, key=lambda p: p.order).error
        return SetupConfig(
            files=tuple(layer.path for layer in self.layers),
            sections=MappingProxyType(sections),
            kp_access=kp_access,
            warnings=tuple(text for _, text in sorted(warnings)),
            _implicit=implicit,
            _boot_unset=frozenset(boot_unset),
        )

    def check_declared(
        self, name: str, options: Mapping[str, str], settings: Declared
    ) -> list[_Problem]:
        """The bad values of the settings plugin ``name`` declares (none if it declares
        nothing). A bad value from ``[DEFAULTS]`` names the plugin that reads it.
        """
        found: list[_Problem] = []

        def report(key: str, message: str) -> None:
            if (name, key) not in self.origins:
                message += f" in [DEFAULTS], which plugin {name} reads"
            found.append(self.problem(name, key, message))

        if settings is not None:
            check_values(settings, options, report)
        return found

    def unknown_keys(
        self, name: str, options: Mapping[str, str], settings: Declared
    ) -> list[tuple[tuple[int, int], str]]:
        """A warning, in reading order, for each key that ``[name]`` itself sets and that
        neither kos nor the plugin reads (none if the plugin declares nothing).
        """
        found: list[tuple[tuple[int, int], str]] = []
        if settings is None:
            return found
        for key in options:
            if (name, key) not in self.origins:
                continue  # from [DEFAULTS]: shared by every section
            message = unknown_key(name, key, settings)
            if message is not None:
                layer, line = self.origins[name, key]
                found.append(((layer.index, line), f"{layer.path}:{line}: {message}"))
        return found

    def kp_access(self, problems: list[_Problem]) -> KPAccess:
        """The ``[kp-access]`` section's policy (its own keys, not ``[DEFAULTS]``)."""
        if _KP_ACCESS not in self.headers:
            return KPAccess()
        own = {
            k: self.parser.get(_KP_ACCESS, k, raw=True) for s, k in self.origins if s == _KP_ACCESS
        }

        def report(key: str, message: str) -> None:
            problems.append(self.problem(_KP_ACCESS, key, message))

        return parse_access(own, report) or KPAccess()

    def origin(self, section: str, key: str) -> tuple[_Layer, int]:
        """Where the value ``key`` has in ``section`` was set (its own, or ``[DEFAULTS]``)."""
        found = self.origins.get((section, key))
        return found if found is not None else self.origins[_DEFAULTS, key]

    def problem(self, section: str, key: str, message: str) -> _Problem:
        """Make a problem reported at the line that set ``key`` for ``section``."""
        layer, line = self.origin(section, key)
        return _Problem(layer.index, line, SetupFileError(str(layer.path), line, message))

    def evaluate(self, section: str) -> tuple[_Values | None, list[_Problem]]:
        """Interpolate and check the keys of ``section`` (``DEFAULTS``: the implicit section)."""
        raw = dict(self.parser.items(section, raw=True))
        problems: list[_Problem] = []
        options: dict[str, str] = {}
        for key in raw:
            try:
                options[key] = self.parser.get(section, key)
            except configparser.InterpolationError as exc:
                culprit, detail = _diagnose(raw, key, _scope(section), exc)
                message = f"bad interpolation in {_quote(culprit)}: {detail}"
                problems.append(self.problem(section, culprit, message))

        run_at_boot: bool | None = None
        if (value := options.get(RUN_AT_BOOT)) is not None:
            run_at_boot = _BOOLEANS.get(value.strip().lower())
            if run_at_boot is None:
                problems.append(
                    self.problem(
                        section,
                        RUN_AT_BOOT,
                        f"bad value for run-at-boot: {_quote(value)} "
                        "(use 1/0, yes/no, true/false or on/off)",
                    )
                )

        args: tuple[str, ...] = ()
        if (value := options.get(ARGS)) is not None:
            try:
                args = tuple(shlex.split(value))
            except ValueError as exc:
                reason = str(exc)
                reason = reason[:1].lower() + reason[1:]
                problems.append(self.problem(section, ARGS, f"bad value for args: {reason}"))

        file: Path | None = None
        if (value := options.get(FILE)) is not None:
            if not value.strip():
                problems.append(
                    self.problem(section, FILE, "empty value for file (give the path of a script)")
                )
            else:
                layer, _ = self.origin(section, FILE)
                file = (layer.path.parent / Path(value.strip()).expanduser()).absolute()

        def report(key: str, message: str) -> None:
            problems.append(self.problem(section, key, message))

        supervision = parse_supervision(options, report)
        if problems or supervision is None:
            return None, problems
        origins = {}
        for key in options:
            layer, line = self.origin(section, key)
            own = (section, key) in self.origins
            origins[key] = Origin(layer.path, line, section if own else _DEFAULTS)
        return (
            _Values(
                run_at_boot,
                args,
                file,
                MappingProxyType(options),
                supervision,
                MappingProxyType(origins),
            ),
            [],
        )
