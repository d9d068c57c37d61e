"""Plugin discovery through entry points and pluggy (kos_core._kernel.discovery).

Fake plugin distributions are real ``.dist-info`` directories in a temporary
folder put on ``sys.path``: kos's own reader (``kos_core._entry_points``), like
``importlib.metadata``, reads them exactly as it reads installed ones.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kos_core import PluginSpec
from kos_core._kernel.discovery import (
    ENTRY_POINT_GROUP,
    LOAD_ENV,
    BrokenPlugin,
    Discovery,
    discover,
    make_plugin_manager,
)

GOOD = """
    from kos_core import PluginSpec, hookimpl

    @hookimpl
    def kos_plugin_spec():
        return PluginSpec(name={name!r}, main={main!r}, description="a toy", run_at_boot=False)
"""

Installer = Callable[..., str]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installer]:
    """Install fake distributions: ``install(dist, {entry name: module source}, ...)``.

    Returns a function that writes one distribution (with one module per entry
    point) into a site folder on ``sys.path`` and returns the module name prefix.
    """
    monkeypatch.delenv(LOAD_ENV, raising=False)
    sites: dict[str, Path] = {}
    modules: list[str] = []

    def installer(
        dist: str,
        plugins: dict[str, str],
        version: str = "1.0",
        site: str = "site",
        extra_entry_points: str = "",
    ) -> str:
        where = sites.get(site)
        if where is None:
            where = sites[site] = tmp_path / site
            where.mkdir()
            monkeypatch.syspath_prepend(str(where))
        info = where / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        prefix = f"kostoy_{uuid.uuid4().hex[:10]}"
        lines = [f"[{ENTRY_POINT_GROUP}]"]
        for name, source in plugins.items():
            module = f"{prefix}_{name.replace('-', '_')}"
            modules.append(module)
            (where / f"{module}.py").write_text(textwrap.dedent(source))
            lines.append(f"{name} = {module}")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n" + extra_entry_points)
        import importlib

        importlib.invalidate_caches()
        return prefix

    yield installer
    for module in modules:
        sys.modules.pop(module, None)


def good(name: str, main: str = "toy.main") -> str:
    return GOOD.format(name=name, main=main)


def broken_named(found: Discovery, name: str) -> BrokenPlugin:
    matches = [b for b in found.broken if b.name == name]
    assert len(matches) == 1, found.broken
    return matches[0]


def test_a_good_plugin_is_found(install: Installer) -> None:
    install("toy-good-dist", {"toygood": good("toygood", "toygood.main")}, version="1.2.3")
    found = discover()
    plugin = found.plugins["toygood"]
    assert plugin.name == "toygood"
    assert plugin.distribution == "toy-good-dist"
    assert plugin.version == "1.2.3"
    assert plugin.spec == PluginSpec(
        name="toygood", main="toygood.main", description="a toy", run_at_boot=False
    )
    assert found.manager.get_plugin("toygood") is not None
    assert all(b.name != "toygood" for b in found.broken)


def test_an_import_error_is_reported_and_others_still_load(install: Installer) -> None:
    install(
        "toy-mixed",
        {
            "toya-raises": "raise RuntimeError('plugin module exploded')\n",
            "toyb-syntax": "def broken(:\n",
            "toyc-good": good("toyc-good"),
            "toyd-imports": "import kostoy_no_such_module_anywhere\n",
        },
    )
    install("toy-later", {"toyz-good": good("toyz-good")})
    found = discover()
    assert {"toyc-good", "toyz-good"} <= set(found.plugins)
    exploded = broken_named(found, "toya-raises")
    assert exploded.distribution == "toy-mixed"
    assert "RuntimeError" in exploded.error
    assert "plugin module exploded" in exploded.error
    assert "SyntaxError" in broken_named(found, "toyb-syntax").error
    assert "kostoy_no_such_module_anywhere" in broken_named(found, "toyd-imports").error
    for name in ("toya-raises", "toyb-syntax", "toyd-imports"):
        assert name not in found.plugins
        assert found.manager.get_plugin(name) is None


def test_entry_point_naming_a_missing_module(tmp_path: Path, install: Installer) -> None:
    install(
        "toy-dangling",
        {},
        extra_entry_points="toydangling = kostoy_module_that_is_not_there\n",
    )
    found = discover()
    assert "toydangling" not in found.plugins
    assert "ModuleNotFoundError" in broken_named(found, "toydangling").error


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("X = 1\n", "does not implement kos_plugin_spec"),
        (
            """
            from kos_core import hookimpl

            @hookimpl
            def kos_plugin_spec():
                return None
            """,
            "does not implement kos_plugin_spec",
        ),
        (
            """
            from kos_core import hookimpl

            @hookimpl
            def kos_plugin_spec():
                return {"name": "toyplugin"}
            """,
            "returned no PluginSpec",
        ),
        (
            """
            from kos_core import hookimpl

            @hookimpl
            def kos_plugin_spec():
                raise KeyError("spec exploded")
            """,
            "spec exploded",
        ),
        (good("someone-else"), "'someone-else'"),
    ],
    ids=["no-hook", "returns-none", "returns-dict", "raises", "wrong-name"],
)
def test_a_plugin_that_describes_itself_wrongly_is_broken(
    install: Installer, source: str, message: str
) -> None:
    install("toy-wrong", {"toyplugin": source})
    install("toy-right", {"toyright": good("toyright")})
    found = discover()
    assert "toyplugin" not in found.plugins
    assert "someone-else" not in found.plugins
    problem = broken_named(found, "toyplugin")
    assert message in problem.error
    assert problem.distribution == "toy-wrong"
    assert found.manager.get_plugin("toyplugin") is None
    assert found.plugins["toyright"].spec.name == "toyright"


@pytest.mark.parametrize(
    "source",
    [
        """
        from kos_core import hookimpl

        @hookimpl
        def kos_plugin_spek():
            pass
        """,
        """
        from kos_core import PluginSpec, hookimpl

        @hookimpl
        def kos_plugin_spec():
            return PluginSpec(name="toymisspelt", main="m")

        @hookimpl
        def kos_plugin_spek():
            pass
        """,
    ],
    ids=["only-misspelt", "one-misspelt"],
)
def test_a_misspelled_hookimpl_is_broken(install: Installer, source: str) -> None:
    install("toy-misspelt", {"toymisspelt": source})
    install("toy-fine", {"toyzfine": good("toyzfine")})
    found = discover()
    assert "toymisspelt" not in found.plugins
    assert "kos_plugin_spek" in broken_named(found, "toymisspelt").error
    assert found.manager.get_plugin("toymisspelt") is None
    assert "toyzfine" in found.plugins


def test_bad_hook_signature_is_broken(install: Installer) -> None:
    source = """
        from kos_core import hookimpl

        @hookimpl
        def kos_register_commands(cli, unexpected):
            pass
    """
    install("toy-badsig", {"toybadsig": source})
    found = discover()
    assert "unexpected" in broken_named(found, "toybadsig").error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", set()),
        (" , ", set()),
        ("toyone", {"toyone"}),
        ("toyone,toythree", {"toyone", "toythree"}),
        (" toytwo , nosuchplugin ", {"toytwo"}),
    ],
)
def test_kos_load_plugins_limits_what_loads(
    install: Installer, monkeypatch: pytest.MonkeyPatch, value: str, expected: set[str]
) -> None:
    install(
        "toy-three",
        {
            "toyone": good("toyone"),
            "toytwo": good("toytwo"),
            "toythree": good("toythree"),
            "toybroken": "raise ImportError('never loaded unless asked')\n",
        },
    )
    monkeypatch.setenv(LOAD_ENV, value)
    found = discover()
    assert set(found.plugins) == expected
    assert found.broken == []
    assert {name for name, _ in found.manager.list_name_plugin()} == expected


def test_without_kos_load_plugins_everything_installed_is_tried(install: Installer) -> None:
    install("toy-two", {"toyone": good("toyone"), "toytwo": good("toytwo")})
    found = discover()
    assert {"toyone", "toytwo"} <= set(found.plugins)


def test_two_distributions_with_one_name(install: Installer) -> None:
    first = install("toy-first", {"toydup": good("toydup", "first.main")}, site="site1")
    second = install("toy-second", {"toydup": good("toydup", "second.main")}, site="site2")
    assert first != second
    # syspath_prepend puts the later site first on sys.path
    found = discover()
    plugin = found.plugins["toydup"]
    assert plugin.distribution == "toy-second"
    assert plugin.spec.main == "second.main"
    problem = broken_named(found, "toydup")
    assert problem.distribution == "toy-first"
    assert "already provided by another distribution" in problem.error


def test_make_plugin_manager_has_the_kos_hooks() -> None:
    manager = make_plugin_manager()
    assert manager.project_name == "kos"
    assert hasattr(manager.hook, "kos_plugin_spec")
    assert hasattr(manager.hook, "kos_register_commands")
    assert manager.list_name_plugin() == []


def test_two_distributions_with_one_name_first_broken(install: Installer) -> None:
    install("toy-first", {"toydup": good("toydup", "first.main")}, site="site1")
    install("toy-second", {"toydup": "raise RuntimeError('second is broken')\n"}, site="site2")
    found = discover()
    problems = {b.distribution: b.error for b in found.broken if b.name == "toydup"}
    assert "second is broken" in problems["toy-second"]
    # Each distribution's report must be about that distribution: toy-first's own
    # module imports fine, so it is either loaded or reported for its own reason.
    if "toy-first" in problems:
        assert "second is broken" not in problems["toy-first"], problems
    else:
        assert found.plugins["toydup"].distribution == "toy-first"
