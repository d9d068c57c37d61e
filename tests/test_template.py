"""The plugin template installs as a distribution of its own and serves through a kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_plugin_template_installs_and_passes_its_own_test(tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    install = subprocess.run(
        [*pip, "--target", str(site), str(ROOT / "_template")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    assert list(site.glob("kos_plugins_hello-*.dist-info"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("KOS_LOAD_PLUGINS", None)  # every installed plugin, the new one included
    listed = subprocess.run(
        [sys.executable, "-m", "kos_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "KOS_RUNTIME_DIR": str(tmp_path / "run"), "KOS_CONFIG": str(tmp_path)},
    )
    assert listed.returncode == 0, listed.stderr
    assert '"name": "hello"' in listed.stdout
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "_template" / "tests"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
