"""Plugins that misbehave quietly are told apart, and operators (and clients) can wait
for a plugin to be up: the registration deadline, the ``kos.run()`` hint,
``kos plugin start|restart --wait``, ``Kos.restart_plugin`` and ``lookup(path, wait=)``.
"""

from __future__ import annotations

import time

import pytest

import kos_core
from kos_core.errors import KosError, NameNotFound
from kos_core.testing import KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error

SILENT = "import time\nprint('thinking', flush=True)\ntime.sleep(600)\n"

NO_RUN = """\
from kos_core import pluginlib
from kos_plugins_bitbucket.plugin import BitBucket

kos, ns = pluginlib.register("norun")
kos.bind_service("norun", BitBucket(100), "BitBucketAPI.BitBucket")
print("bound; forgot kos.run()", flush=True)
"""


def test_a_plugin_that_never_registers_is_killed_at_its_deadline(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    (kos_env.config_dir / "silent.py").write_text(SILENT)
    kos_env.write_setup("[silent]\nfile: silent.py\nregister-timeout: 0.5\nstartretries: 0\n")
    started = time.monotonic()
    kernel = start_kernel()
    row = wait_for(
        lambda: (r := kernel.plugin_row("silent")) and r[1] == "fatal" and r, 15, "silent fatal"
    )
    took = time.monotonic() - started
    assert row[5] == "did not register in 0.5 s", row
    assert took < 8.0, f"{took:.1f} s"
    assert "plugin silent did not register in 0.5 s; killing it" in kernel.log()


def test_a_plugin_that_forgets_kos_run_gets_a_warning(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    (kos_env.config_dir / "norun.py").write_text(NO_RUN)
    kos_env.write_setup("[norun]\nfile: norun.py\nrestart: never\n")
    kernel = start_kernel()
    row = wait_for(
        lambda: (r := kernel.plugin_row("norun")) and r[1] == "exited" and r, 15, "norun exited"
    )
    assert "ended after binding norun without serving (kos.run()?)" in row[5], row
    log = kernel.log()
    assert "WARNING: plugin norun ended by itself (exit status 0) after binding norun" in log
    assert "kos.run()" in log


def test_restart_waits_until_the_services_are_bound(start_kernel: StartKernel, cli: Cli) -> None:
    kernel = start_kernel()
    old = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    for _ in range(3):
        result = cli("plugin", "restart", "bitbucket")
        assert result.returncode == 0, str(result)
        assert result.stdout.startswith("bitbucket: running (pid "), result.stdout
        assert result.stdout.rstrip().endswith("bound bitbucket)"), result.stdout
        assert f"pid {old};" not in result.stdout
        # a call straight after finds it
        assert cli("call", "bitbucket", "List").returncode == 0
    stopped = cli("plugin", "stop", "bitbucket")
    assert stopped.stdout.strip() == "bitbucket: stopped", str(stopped)


def test_start_wait_says_why_a_plugin_did_not_start(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    (kos_env.config_dir / "crashy.py").write_text("raise SystemExit('error: no database')\n")
    kos_env.write_setup("[crashy]\nfile: crashy.py\nrun-at-boot: no\nrestart: never\n")
    start_kernel()
    assert_one_line_error(
        cli("plugin", "start", "crashy"),
        1,
        "plugin crashy did not start; it is exited: exit status 1: error: no database",
    )


def test_the_client_restarts_and_looks_up_with_wait(start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        row = kos.restart_plugin("bitbucket")
        assert row[1] == "running" and "bitbucket" in row[3]
        kos.lookup("bitbucket").Set("k", b"v")
        assert kos.stop_plugin("bitbucket")[1] == "stopped"
        with pytest.raises(NameNotFound, match="plugin bitbucket is stopped"):
            kos.lookup("bitbucket", wait=0.2)
        kos.start_plugin("bitbucket", wait=False)
        kos.lookup("bitbucket", wait=10).Set("k", b"v")  # waits for the bind
        with pytest.raises(KosError, match="no plugin named 'nosuch'"):
            kos.start_plugin("nosuch")
