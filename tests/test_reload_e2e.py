"""``kos reload`` and SIGHUP: the setup files read again, exactly the changed plugins
started, stopped or restarted; a bad file changes nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos_core.errors import NameNotFound
from kos_core.testing import KernelProcess, KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error, write_plugin_script


def section(name: str, script: Path, extra: str = "") -> str:
    return f"[{name}]\nfile: {script}\n{extra}"


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    return {name: write_plugin_script(tmp_path, name) for name in ("keep", "change", "gone", "new")}


@pytest.fixture
def kernel(
    kos_env: KosEnv, start_kernel: StartKernel, scripts: dict[str, Path]
) -> Iterator[KernelProcess]:
    """A kernel running plugins keep, change and gone (bitbucket does not boot)."""
    kos_env.write_setup(
        "[bitbucket]\nrun-at-boot: no\n"
        + "".join(section(n, scripts[n]) for n in ("keep", "change", "gone"))
    )
    process = start_kernel()
    for name in ("keep", "change", "gone"):
        process.wait_plugin(name, services=[name])
    yield process


def pids(kernel: KernelProcess) -> dict[str, int]:
    with kernel.connect() as kos:
        return {row[0]: row[2] for row in kos.plugins() if row[1] == "running"}


def test_reload_starts_stops_and_restarts_exactly_the_changed_plugins(
    kernel: KernelProcess, kos_env: KosEnv, scripts: dict[str, Path], cli: Cli
) -> None:
    before = pids(kernel)
    kos_env.write_setup(
        "[bitbucket]\nrun-at-boot: no\n"
        + section("keep", scripts["keep"])
        + section("change", scripts["change"], "color: blue\n")
        + section("new", scripts["new"])
    )
    result = cli("reload")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == f"read {kos_env.config_dir}: plugins"
    assert sorted(lines[1:]) == ["change: restarted", "gone: stopped", "new: started"]
    after = pids(kernel)
    assert after["keep"] == before["keep"]  # unchanged: not touched
    assert after["change"] != before["change"]
    assert "new" in after and "gone" not in after
    with kernel.connect() as kos:
        assert "gone" not in [row[0] for row in kos.plugins()]
        with pytest.raises(NameNotFound):
            kos.kernel.Lookup("gone")
        assert kos.kernel.Lookup("new")[0] == "service"  # --wait: bound when reload returns
        with pytest.raises(NameNotFound, match="no plugin named 'gone'"):
            kos.kernel.StartPlugin("gone")

    # The figure: a reload that restarts one plugin, from the shell, until it serves again.
    kos_env.write_setup(
        "[bitbucket]\nrun-at-boot: no\n"
        + section("keep", scripts["keep"])
        + section("change", scripts["change"], "color: red\n")
        + section("new", scripts["new"])
    )
    started = time.monotonic()
    result = cli("reload")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[1:] == ["change: restarted"]
    print(f"\nFIGURE kos reload, one plugin restarted: {elapsed * 1000:.0f} ms")
    assert kernel.log().count("setup files in") == 3  # at start and at each reload


def test_a_bad_file_changes_nothing_by_cli_or_sighup(
    kernel: KernelProcess, kos_env: KosEnv, scripts: dict[str, Path], cli: Cli
) -> None:
    before = pids(kernel)
    path = kos_env.write_setup(
        "[bitbucket]\nrun-at-boot: no\n"
        + section("keep", scripts["keep"], "run-at-boot: maybe\n")
        + section("new", scripts["new"])
    )
    result = cli("reload")
    assert_one_line_error(result, 2, f"{path}:5:", "run-at-boot", "nothing was changed")
    os.kill(kernel.pid, signal.SIGHUP)
    wait_for(lambda: f"reload refused: {path}:5:" in kernel.log(), 10, "the refusal logged")
    assert pids(kernel) == before

    # SIGHUP with a good file: "gone" and "change" leave, "new" comes.
    kos_env.write_setup(
        "[bitbucket]\nrun-at-boot: no\n"
        + section("keep", scripts["keep"])
        + section("new", scripts["new"])
    )
    os.kill(kernel.pid, signal.SIGHUP)
    kernel.wait_plugin("new", services=["new"])
    wait_for(lambda: set(pids(kernel)) == {"keep", "new"}, 10, "change and gone to stop")
    assert pids(kernel)["keep"] == before["keep"]
