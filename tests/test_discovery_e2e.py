"""Entry-point discovery with real distributions: broken plugins, KOS_LOAD_PLUGINS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kos_core
from kos_core.testing import KosEnv, StartKernel, wait_for
from kos_helpers import Cli, booting_line, dedent


@pytest.fixture
def broken_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution ``kosbroken`` whose ``kos.plugins`` entry point raises on import,
    put on PYTHONPATH (for the kernels and commands this test starts).
    """
    site = tmp_path / "site"
    site.mkdir()
    (site / "kosbroken_plugin.py").write_text(
        'raise ImportError("kosbroken needs the frobnicator library")\n'
    )
    info = site / "kosbroken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kosbroken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kos.plugins]\nbroken = kosbroken_plugin\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


@pytest.mark.all_plugins
def test_broken_plugin_is_skipped_and_named_by_plugins(
    kos_env: KosEnv, broken_dist: Path, cli: Cli
) -> None:
    result = cli("plugins")
    assert result.returncode == 0, str(result)
    rows = [line.split() for line in result.stdout.splitlines()]
    assert any(r[:2] == ["bitbucket", "kos-plugins-bitbucket"] for r in rows)
    (broken,) = [r for r in rows if r and r[0] == "broken"]
    assert broken[1] == "kosbroken"
    assert "broken" in broken[4:]  # its state
    assert "Traceback" not in result.stderr
    warning = [line for line in result.stderr.splitlines() if "broken" in line]
    assert warning, result.stderr
    assert "ImportError" in warning[0]
    assert "frobnicator" in warning[0]

    data = json.loads(cli("plugins", "--json").stdout)
    (entry,) = [p for p in data["plugins"] if p["name"] == "broken"]
    assert entry["distribution"] == "kosbroken"
    assert entry["state"] == "broken"
    assert "frobnicator" in entry["description"]


@pytest.mark.all_plugins
def test_kernel_boots_the_others_and_warns_about_a_broken_plugin(
    kos_env: KosEnv, broken_dist: Path, start_kernel: StartKernel
) -> None:
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    log = kernel.log()
    warnings = [line for line in log.splitlines() if "warning" in line and "broken" in line]
    assert warnings, log
    assert "kosbroken" in warnings[0]
    assert "ImportError" in warnings[0]
    assert "frobnicator" in warnings[0]
    assert "Traceback" not in log
    assert kernel.plugin_row("broken") is None
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("despite", b"broken")
        assert bb.Get("despite") == b"broken"


def test_broken_plugin_in_a_setup_file_does_not_stop_the_kernel(
    kos_env: KosEnv, broken_dist: Path, start_kernel: StartKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "bitbucket,broken")
    kos_env.write_setup("[broken]\nrun-at-boot: 1\n\n[bitbucket]\nrun-at-boot: 1\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    log = kernel.log()
    assert any("warning" in line and "kosbroken" in line for line in log.splitlines()), log


def test_empty_kos_load_plugins_loads_none(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "")
    kernel = start_kernel()
    wait_for(lambda: "booting no plugins" in kernel.log(), 10, "the kernel to finish booting")
    with kos_core.connect() as kos:
        assert kos.plugins() == []
        assert "bitbucket" not in kos.list()
    result = cli("plugins", "--json", extra_env={"KOS_LOAD_PLUGINS": ""})
    assert result.returncode == 0, str(result)
    assert json.loads(result.stdout)["plugins"] == []


def test_kos_load_plugins_names_the_plugins_to_load(
    kos_env: KosEnv,
    broken_dist: Path,
    start_kernel: StartKernel,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "bitbucket")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert "broken" not in kernel.log()  # not loaded, so not even tried
    result = cli("plugins", "--json", extra_env={"KOS_LOAD_PLUGINS": "bitbucket"})
    assert [p["name"] for p in json.loads(result.stdout)["plugins"]] == ["bitbucket"]
    assert "broken" not in result.stderr
    # a comma-separated list names several
    both = cli("plugins", "--json", extra_env={"KOS_LOAD_PLUGINS": "bitbucket, broken"})
    assert sorted(p["name"] for p in json.loads(both.stdout)["plugins"]) == ["bitbucket", "broken"]


def test_plugin_started_by_the_kernel_runs_in_its_own_directory(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    script = tmp_path / "where.py"
    out = tmp_path / "where.out"
    script.write_text(
        dedent(
            f"""
            import os, sys
            from pathlib import Path
            Path({str(out)!r}).write_text(os.getcwd() + "\\n" + " ".join(sys.argv[1:]))
            """
        )
    )
    kos_env.write_setup(f"[where]\nfile: {script}\nargs: --flag 'two words'\n")
    start_kernel()
    wait_for(out.exists, 10, "the script plugin to run")
    wait_for(lambda: "\n" in out.read_text(), 5, "the script to write its line")
    cwd, argv = out.read_text().split("\n")
    assert Path(cwd) == kos_env.state_dir / kos_env.kernel / "plugins" / "where"
    assert argv == f"-n {kos_env.kernel} --flag two words"


def test_setup_section_of_a_plugin_kos_load_plugins_leaves_out(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bitbucket is installed; KOS_LOAD_PLUGINS only says not to load it this time,
    # so its section in the user's setup file is not an error ("not installed" is false)
    kos_env.write_setup("[bitbucket]\nargs: --capacity 10\n")
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "")
    result = cli("plugins", extra_env={"KOS_LOAD_PLUGINS": ""})
    assert result.returncode == 0, str(result)
    kernel = start_kernel()
    booting = wait_for(lambda: booting_line(kernel), 10, "the kernel to finish booting")
    assert "bitbucket" not in booting
    with kos_core.connect() as kos:
        assert "bitbucket" not in kos.list()
