"""The parts of kos_core.testing a plugin author relies on: the in-process harness, and
which plugins a test's kernels boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from kos_core._testkit import under_test
from kos_core.errors import RemoteError
from kos_core.testing import served
from toyapi import Counter, Echo, EchoImpl, Oops


def test_served_checks_and_raises_as_through_a_kernel() -> None:
    impl = EchoImpl()
    with served(impl, Echo) as echo:
        assert echo.Pair(1, "a") == (1, "a")
        with pytest.raises(TypeError):
            echo.Int("1")  # refused before it is sent, as with any proxy
        with pytest.raises(Oops):
            echo.Fail("declared")
        with pytest.raises(RemoteError) as caught:
            echo.Undeclared("not declared")
        assert "not declared" in str(caught.value)
        with pytest.raises(RemoteError):
            echo.BadResult()  # the server checks results against the interface
        counter = echo.Open()  # objects by reference work too
        assert counter.Incr() == 1
    with served(impl, "ToyAPI.Echo") as by_name:  # or the interface's wire name
        assert by_name.Str("x") == "x"


def test_served_refuses_an_object_that_lacks_a_method() -> None:
    with pytest.raises(TypeError, match="Value"), served(object(), Counter):
        pass


def test_the_plugin_under_test_is_the_nearest_distributions(tmp_path: Path) -> None:
    project = tmp_path / "dist"
    (project / "tests" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.entry-points."kos.plugins"]\n'
        'zeta = "x.hooks"\nalpha = "x.hooks"\n'
    )
    test_file = project / "tests" / "deep" / "test_x.py"
    assert under_test.plugins_under_test(test_file) == ("alpha", "zeta")
    environ = under_test.load_plugins_environ(test_file, ["bitbucket", "alpha"])
    assert environ == {"KOS_LOAD_PLUGINS": "alpha,zeta,bitbucket"}
    plain = tmp_path / "plain"
    (plain / "tests").mkdir(parents=True)
    (plain / "pyproject.toml").write_text('[project]\nname = "y"\n')
    assert under_test.load_plugins_environ(plain / "tests" / "test_y.py", []) == {}


def test_kos_load_plugins_set_already_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.entry-points."kos.plugins"]\nx = "x.hooks"\n'
    )
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "bitbucket")
    assert under_test.load_plugins_environ(tmp_path / "test_x.py", []) == {}
