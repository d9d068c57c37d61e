"""The README's set-up commands: the test command runs in a virtual environment, CI runs
exactly it, and the simpleio session passes, with skips, on a machine without X tools.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The ``sh`` blocks at the top of README.md, before its first rule."""
    top = (ROOT / "README.md").read_text().partition("\n---\n")[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", top, re.S)]


def test_the_readme_has_two_commands_and_the_test_one_uses_a_virtual_environment() -> None:
    install, test = readme_commands()
    assert "\n" not in install and "\n" not in test
    assert install.startswith("python3 -m venv .venv && ") and install.endswith("kos run")
    # Nothing is installed into the system Python (PEP 668 refuses it on Debian).
    assert test.startswith("python3 -m venv .venv && .venv/bin/pip install ")
    assert "python3 -m pip" not in test and test.endswith(".venv/bin/nox")
    ci = (ROOT / ".ci" / "run").read_text().rstrip("\n").splitlines()
    assert ci[-1] == test


def test_the_simpleio_session_skips_at_once_without_the_X_tools(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH that has none of the X tools
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "KOS_LOAD_PLUGINS")}
    env["PATH"] = str(bare)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", "tests"],
        cwd=ROOT / "kos_plugins_simpleio",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout
    assert re.search(r"\d+ passed, \d+ skipped", result.stdout), result.stdout
    assert "install the Debian packages imagemagick x11-utils xclip xdotool xvfb" in result.stdout
    assert took < 10.0, f"the session took {took:.1f} s"

    with_ci = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "tests"],
        cwd=ROOT / "kos_plugins_simpleio",
        env={**env, "CI": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert with_ci.returncode == 1 and "X tools missing" in with_ci.stdout, with_ci.stdout
