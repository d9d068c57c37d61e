"""Which plugins a test's kernel boots: the plugin under test alone, unless the test asks
for others (``@pytest.mark.kos_plugins("bitbucket")``) or sets ``$KOS_LOAD_PLUGINS``.

The plugin under test is what the distribution holding the test declares: the
``kos.plugins`` entry points in the nearest ``pyproject.toml`` above the test file.
Tests outside a plugin distribution boot every installed plugin, as ``kos run`` does.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

#: the marker naming more plugins a test's kernels boot
MARKER = "kos_plugins"


@functools.cache
def declared_plugins(project: Path) -> tuple[str, ...]:
    """The names of the ``kos.plugins`` entry points ``project`` (a pyproject.toml) declares."""
    try:
        data = tomllib.loads(project.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    points = data.get("project", {}).get("entry-points", {}).get("kos.plugins", {})
    return tuple(sorted(points)) if isinstance(points, dict) else ()


def plugins_under_test(test_file: Path) -> tuple[str, ...]:
    """The plugins of the distribution ``test_file`` belongs to (empty outside one)."""
    for folder in test_file.resolve().parents:
        project = folder / "pyproject.toml"
        if project.is_file():
            return declared_plugins(project)
    return ()


def load_plugins_environ(test_file: Path, also: Iterable[str]) -> dict[str, str]:
    """The environment that makes a test's kernels boot the plugin under test and
    ``also``; empty (boot every installed plugin) outside a plugin distribution or when
    ``$KOS_LOAD_PLUGINS`` is set already.
    """
    if "KOS_LOAD_PLUGINS" in os.environ:
        return {}
    own = plugins_under_test(test_file)
    if not own:
        return {}
    return {"KOS_LOAD_PLUGINS": ",".join(dict.fromkeys([*own, *also]))}
