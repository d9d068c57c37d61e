"""``pluginlib.state_dir()``: a plugin's own directory, the same however it was started."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kos_core import pluginlib
from kos_core.errors import UsageError
from kos_core.testing import KosEnv, StartKernel

SCRIPT = """
import os
from kos_core import pluginlib
kos, ns = pluginlib.register("diary")
print("cwd", os.getcwd(), flush=True)
print("state", pluginlib.state_dir(), flush=True)
kos.close()
"""


def test_state_dir_needs_a_name_before_register(kos_env: KosEnv) -> None:
    with pytest.raises(UsageError, match="register"):
        pluginlib.state_dir()
    made = pluginlib.state_dir("diary")
    assert made == kos_env.state_dir / kos_env.kernel / "plugins" / "diary"
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    with pytest.raises(UsageError):
        pluginlib.state_dir("../escape")


def test_a_plugin_started_by_hand_gets_the_directory_the_kernel_would_give_it(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    start_kernel(environ={"KOS_LOAD_PLUGINS": ""})
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["cwd"] == str(tmp_path)  # wherever it was started
    assert lines["state"] == str(kos_env.state_dir / kos_env.kernel / "plugins" / "diary")
