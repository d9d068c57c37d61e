"""Plugins started by hand, as the tutorial's scripts: register, serve, refuse, end."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

import kos_core
from conftest import StartPlugin
from kos_core.errors import NameNotFound
from kos_core.testing import KernelProcess, KosEnv, StartKernel, wait_for
from kos_helpers import (
    GETOPT_EXIT,
    Cli,
    HandPlugin,
    assert_one_line_error,
    write_plugin_script,
)
from kos_plugins_bitbucket import BitBucket, BucketFull


def serving(kernel: KernelProcess, plugin: HandPlugin, name: str, service: str) -> int:
    """Wait until the hand-started ``plugin`` is registered as ``name`` and serves ``service``."""

    def ready() -> int:
        if plugin.process.poll() is not None:
            raise AssertionError(
                f"plugin exited with {plugin.process.returncode}\n"
                f"{plugin.stdout()}{plugin.stderr()}"
            )
        row = kernel.plugin_row(name)
        bound = row and row[1] == "running" and service in row[3]
        # "registered" is printed inside the plugin's try: from then on a signal runs
        # its finally block
        return int(row[2]) if bound and "registered" in plugin.stdout() else 0

    return wait_for(ready, 15, f"hand-started plugin {name} to serve {service}")


def test_hand_started_plugin_registers_and_serves(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path, cli: Cli
) -> None:
    plugin = start_plugin(write_plugin_script(tmp_path, "handbucket"))
    assert serving(bb_kernel, plugin, "handbucket", "handbucket") == plugin.pid
    # ns is its private context, holding kos and world
    assert "context plugins/handbucket kos world" in plugin.stdout()

    ls = cli("ls")
    assert ls.returncode == 0, str(ls)
    assert any(
        line.split() == ["handbucket", "BitBucketAPI.BitBucket"] for line in ls.stdout.splitlines()
    )
    ls_private = cli("ls", "plugins/handbucket")
    assert ls_private.returncode == 0, str(ls_private)
    names = [line.split()[0] for line in ls_private.stdout.splitlines()[1:]]
    assert names == ["kos@", "world@"]
    ls_plugins = cli("ls", "plugins")
    assert "handbucket/" in ls_plugins.stdout.split()

    table = cli("plugins")
    assert table.returncode == 0, str(table)
    (row,) = [line.split() for line in table.stdout.splitlines() if line.startswith("handbucket ")]
    assert row[4:] == ["running", str(plugin.pid)]
    assert {r["name"]: r["pid"] for r in json.loads(cli("plugins", "--json").stdout)["plugins"]}[
        "handbucket"
    ] == plugin.pid

    with kos_core.connect() as kos:
        hb = kos.lookup("handbucket", BitBucket)
        hb.Set("hand", b"made")
        assert hb.Get("hand") == b"made"
        with pytest.raises(BucketFull):  # the script's bucket holds 1000 bytes
            hb.Set("big", b"x" * 1001)
        # its links lead back to the top context
        assert "bitbucket" in kos.list("plugins/handbucket/kos")
        assert kos.lookup("plugins/handbucket/kos/handbucket", BitBucket).Get("hand") == b"made"
    assert cli("call", "handbucket", "Get", "hand").stdout == "made"


def test_hand_started_plugin_ends_cleanly_on_sigterm(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    plugin = start_plugin(write_plugin_script(tmp_path, "termbucket"))
    serving(bb_kernel, plugin, "termbucket", "termbucket")
    plugin.process.send_signal(signal.SIGTERM)
    assert plugin.wait(10) == 0, plugin.stderr()
    assert "exiting" in plugin.stdout()  # its finally block ran
    assert "Traceback" not in plugin.stderr()
    with kos_core.connect() as kos:
        wait_for(lambda: "termbucket" not in kos.list(), 10, "termbucket to be unbound")
        with pytest.raises(NameNotFound):
            kos.lookup("termbucket")
        wait_for(
            lambda: bb_kernel.plugin_row("termbucket") is None,
            10,
            "the hand-started plugin to leave the plugin table",
        )


def test_hand_started_plugin_ends_on_ctrl_c(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    plugin = start_plugin(write_plugin_script(tmp_path, "intbucket"))
    serving(bb_kernel, plugin, "intbucket", "intbucket")
    plugin.process.send_signal(signal.SIGINT)
    plugin.wait(10)
    assert "exiting" in plugin.stdout()
    with kos_core.connect() as kos:
        wait_for(lambda: "intbucket" not in kos.list(), 10, "intbucket to be unbound")


def test_duplicate_plugin_name_is_refused(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    script = write_plugin_script(tmp_path, "dupbucket")
    first = start_plugin(script)
    serving(bb_kernel, first, "dupbucket", "dupbucket")
    second = start_plugin(script).result(15)
    assert_one_line_error(second, 1, "dupbucket", "already registered")
    assert "registered" not in second.stdout
    # the first one keeps serving
    assert first.process.poll() is None
    with kos_core.connect() as kos:
        kos.lookup("dupbucket").Set("a", b"b")
    assert bb_kernel.plugin_row("dupbucket")[2] == first.pid  # type: ignore[index]


def test_hand_started_plugin_cannot_take_a_kernel_run_plugins_name(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    pid = bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    result = start_plugin(write_plugin_script(tmp_path, "bitbucket")).result(15)
    assert_one_line_error(result, 1, "bitbucket")
    assert bb_kernel.plugin_row("bitbucket")[1:3] == ("running", pid)  # type: ignore[index]


def test_plugin_with_an_unknown_kernel_exits_1(
    kos_env: KosEnv, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    result = start_plugin(write_plugin_script(tmp_path, "lost"), kernel="nosuchkernel").result(15)
    assert_one_line_error(result, 1, "nosuchkernel")
    assert result.stdout == ""


def test_bad_plugin_command_line_raises_getopt_error(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    result = start_plugin(write_plugin_script(tmp_path, "bogus"), args=["--bogus"]).result(15)
    assert result.returncode == GETOPT_EXIT, str(result)
    assert "GETOPT-ERROR:" in result.stderr
    assert "bogus" in result.stderr
    assert bb_kernel.plugin_row("bogus") is None  # it never registered


def test_plugin_options_are_accepted_by_register(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    # --kernel NAME is the long form of -n NAME
    script = write_plugin_script(tmp_path, "longopt")
    plugin = start_plugin(script, kernel="nosuchkernel", args=["--kernel", bb_kernel.env.kernel])
    serving(bb_kernel, plugin, "longopt", "longopt")


def test_binding_a_taken_service_name_fails_the_plugin(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    # as in the tutorial: the script does no error handling, so bind_service's error ends it
    result = start_plugin(write_plugin_script(tmp_path, "squatter", service="bitbucket")).result(15)
    assert result.returncode != 0
    assert "NameAlreadyBound" in result.stderr
    assert "registered" not in result.stdout
    with kos_core.connect() as kos:
        kos.lookup("bitbucket", BitBucket).Set("owner", b"kernel's bitbucket")
    wait_for(lambda: bb_kernel.plugin_row("squatter") is None, 10, "squatter to be forgotten")


def test_hand_started_plugin_can_use_an_installed_name_the_kernel_does_not_run(
    kos_env: KosEnv, start_kernel: StartKernel, start_plugin: StartPlugin, tmp_path: Path, cli: Cli
) -> None:
    kos_env.write_setup("[bitbucket]\nrun-at-boot: 0\n")
    kernel = start_kernel()
    assert kernel.plugin_row("bitbucket")[1] == "stopped"  # type: ignore[index]
    plugin = start_plugin(write_plugin_script(tmp_path, "bitbucket"))
    assert serving(kernel, plugin, "bitbucket", "bitbucket") == plugin.pid
    rows = [line.split() for line in cli("plugins").stdout.splitlines()]
    assert rows[1][:2] == ["bitbucket", "kos-plugins-bitbucket"]
    assert rows[1][3:] == ["no", "running", str(plugin.pid)]
    plugin.process.send_signal(signal.SIGTERM)
    plugin.wait(10)
    wait_for(
        lambda: kernel.plugin_row("bitbucket")[1:3] == ("stopped", 0),  # type: ignore[index]
        10,
        "bitbucket to be stopped again",
    )


def test_killed_hand_started_plugin_is_unbound(
    bb_kernel: KernelProcess, start_plugin: StartPlugin, tmp_path: Path
) -> None:
    plugin = start_plugin(write_plugin_script(tmp_path, "doomed"))
    serving(bb_kernel, plugin, "doomed", "doomed")
    with kos_core.connect() as kos:
        doomed = kos.lookup("doomed", BitBucket)
        doomed.Set("a", b"b")
        plugin.process.send_signal(signal.SIGKILL)
        plugin.wait(10)
        wait_for(lambda: "doomed" not in kos.list(), 10, "doomed to be unbound")
        with pytest.raises(NameNotFound):
            kos.lookup("doomed")
        assert "doomed" not in kos.list("plugins")
        assert bb_kernel.plugin_row("doomed") is None
        # the kernel and its own plugin are unaffected
        kos.lookup("bitbucket").Set("fine", b"yes")
