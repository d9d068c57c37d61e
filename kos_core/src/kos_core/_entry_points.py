"""Entry points of the installed distributions, read without :mod:`importlib.metadata`.

kos reads two entry-point groups: ``kos.plugins`` (plugin discovery, and the commands
plugins add to ``kos``) and ``kos.interfaces`` (finding an interface by wire name).
Importing :mod:`importlib.metadata` costs a new process more than a plugin command or
a client's whole lookup (it brings ``email``, ``zipfile``, ``csv``), so this reads the
files itself: the ``entry_points.txt`` of each ``*.dist-info`` or ``*.egg-info``
directory in the folders of ``sys.path``, in ``sys.path`` order, the first distribution
of a name winning (the one Python would import), as importlib.metadata finds them on a
file system. A distribution's name and version come from its ``METADATA`` (or
``PKG-INFO``) headers, read only when asked for. Distributions inside zip archives on
``sys.path`` are not seen. Nothing is cached: each call sees what is installed now.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["EntryPoint", "entry_points"]

_SUFFIXES = (".dist-info", ".egg-info")


class EntryPoint:
    """One entry point: ``name = value`` in ``group`` of the distribution in ``path``."""

    __slots__ = ("group", "name", "path", "value")

    def __init__(self, group: str, name: str, value: str, path: str) -> None:
        self.group = group
        self.name = name
        self.value = value
        self.path = path  # the distribution's .dist-info (or .egg-info) directory

    def __repr__(self) -> str:
        return f"EntryPoint({self.group!r}, {self.name!r}, {self.value!r})"

    @property
    def module(self) -> str:
        """The module the value names (``module`` or ``module:attribute``)."""
        return self.value.partition(":")[0].strip()

    def load(self) -> Any:
        """Import the module the value names; the attribute after ``:``, if any."""
        target = self.value.partition("[")[0]  # extras, if any, do not matter here
        module, _, attribute = target.partition(":")
        found: Any = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            found = getattr(found, part)
        return found

    def distribution(self) -> tuple[str, str]:
        """The distribution's name and version, from its metadata headers (``"?"`` when
        missing).
        """
        headers = {"name": "?", "version": "?"}
        for filename in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self.path, filename), encoding="utf-8") as file:
                    for line in file:
                        if not line.strip():
                            break  # the headers end at the first empty line
                        key, colon, value = line.partition(":")
                        if colon and key.strip().lower() in headers:
                            headers[key.strip().lower()] = value.strip() or "?"
            except OSError:
                continue
            break
        return headers["name"], headers["version"]


def _normalized(name: str) -> str:
    for separator in "-.":
        name = name.replace(separator, "_")
    return name.lower()


def _distribution_dirs() -> Iterator[str]:
    """Each installed distribution's metadata directory, once per distribution name."""
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # not a folder (a zip archive), or gone
            continue
        for filename in names:
            if not filename.endswith(_SUFFIXES):
                continue
            distribution = _normalized(filename.rpartition(".")[0].partition("-")[0])
            if distribution in seen:
                continue
            seen.add(distribution)
            yield os.path.join(folder, filename)


def entry_points(group: str, name: str | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` (only those called ``name``, if given) of every
    installed distribution, in ``sys.path`` order.
    """
    found: list[EntryPoint] = []
    for path in _distribution_dirs():
        try:
            with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as file:
                text = file.read()
        except OSError:  # none, or an .egg-info that is a file
            continue
        section = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            key, equals, value = line.partition("=")
            if section == group and equals and (name is None or key.strip() == name):
                found.append(EntryPoint(group, key.strip(), value.strip(), path))
    return found
