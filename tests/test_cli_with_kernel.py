"""The ``kos`` command line against one running kernel (shared by this module's tests)."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

import kos_core
from kos_core.errors import InterfaceNotFound
from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import HEADER, Cli, assert_one_line_error, table

BB_VERSION = version("kos-plugins-bitbucket")


@pytest.fixture
def kos_env(shared_kos_env: KosEnv) -> KosEnv:
    """The tests of this module share one kernel (none of them stops it)."""
    return shared_kos_env


@pytest.fixture
def bb_kernel(shared_bb_kernel: KernelProcess) -> KernelProcess:
    """The module's shared kernel."""
    return shared_bb_kernel


def test_plugins_with_a_running_kernel(bb_kernel: KernelProcess, cli: Cli) -> None:
    pid = bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    result = cli("plugins")
    assert result.returncode == 0, str(result)
    rows = table(result.stdout)
    assert rows[0] == HEADER
    assert ["bitbucket", "kos-plugins-bitbucket", BB_VERSION, "yes", "running", str(pid)] in rows
    assert "is running" not in result.stderr

    data = json.loads(cli("plugins", "--json").stdout)
    assert data["running"] is True
    (bb,) = [p for p in data["plugins"] if p["name"] == "bitbucket"]
    assert (bb["state"], bb["pid"], bb["run_at_boot"]) == ("running", pid, True)


def test_ls_shows_the_namespace(bb_kernel: KernelProcess, cli: Cli) -> None:
    result = cli("ls")
    assert result.returncode == 0, str(result)
    rows = table(result.stdout)
    assert rows[0] == ["NAME", "TYPE"]
    assert ["bitbucket", "BitBucketAPI.BitBucket"] in rows
    assert ["plugins/"] in rows
    plugins = cli("ls", "plugins")
    assert ["bitbucket/"] in table(plugins.stdout)
    private = table(cli("ls", "plugins/bitbucket").stdout)
    assert [r[0] for r in private[1:]] == ["kos@", "world@"]


def test_ls_of_a_service_or_a_missing_name(bb_kernel: KernelProcess, cli: Cli) -> None:
    assert_one_line_error(cli("ls", "bitbucket"), 2, "bitbucket", "service")
    assert_one_line_error(cli("ls", "nosuchcontext"), 1, "nosuchcontext")


def test_call_without_a_method_lists_the_methods(bb_kernel: KernelProcess, cli: Cli) -> None:
    result = cli("call", "bitbucket")
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "bitbucket: BitBucketAPI.BitBucket"
    listed = {line.strip().partition("(")[0] for line in lines[1:]}
    assert listed == {"Set", "Get", "Delete", "List"}
    assert "Set(name: str, data: bytes)" in result.stdout


def test_call_usage_errors_exit_2(bb_kernel: KernelProcess, cli: Cli) -> None:
    assert_one_line_error(cli("call", "bitbucket", "Nope"), 2, "Nope")
    assert_one_line_error(cli("call", "bitbucket", "Set", "only-a-name"), 2, "Set")
    assert_one_line_error(cli("call", "bitbucket", "Get", "a", "b"), 2, "Get")
    assert_one_line_error(cli("call", "plugins"), 2, "plugins", "context")


def test_call_of_an_unbound_service_exits_1(bb_kernel: KernelProcess, cli: Cli) -> None:
    assert_one_line_error(cli("call", "nosuchservice", "List"), 1, "nosuchservice")


def test_kernel_name_comes_from_kos_kernel(bb_kernel: KernelProcess, cli: Cli) -> None:
    # the cli fixture sets KOS_KERNEL to the test's kernel; -n is not needed
    assert cli("call", "bitbucket", "List").returncode == 0
    assert_one_line_error(cli("ls", extra_env={"KOS_KERNEL": "otherkernel"}), 1, "otherkernel")


def test_call_arguments_that_look_like_options(bb_kernel: KernelProcess, cli: Cli) -> None:
    assert cli("call", "bitbucket", "Set", "dash", "-v").returncode == 0
    assert cli("call", "bitbucket", "Get", "dash").stdout == "-v"  # bytes: as they are
    assert cli("call", "bitbucket", "Set", "n", "--", "-n").returncode == 0
    assert cli("call", "bitbucket", "Get", "n").stdout == "-n"


def test_kernel_option_after_the_arguments(bb_kernel: KernelProcess, cli: Cli) -> None:
    kernel = bb_kernel.env.kernel
    result = cli("call", "bitbucket", "List", "-n", kernel, extra_env={"KOS_KERNEL": "elsewhere"})
    assert result.returncode == 0, str(result)


def test_call_of_a_service_whose_interface_is_not_installed(
    bb_kernel: KernelProcess, cli: Cli
) -> None:
    with kos_core.connect() as kos:
        _, _, sbh = kos.kernel.Lookup("bitbucket")
        kos.bind("alien", "AlienAPI.Thing", sbh)  # lives while this connection is open
        listing = cli("ls")
        assert ["alien", "AlienAPI.Thing"] in table(listing.stdout)
        for args in (("call", "alien"), ("call", "alien", "List")):
            assert_one_line_error(cli(*args), 1, "AlienAPI.Thing")
        with pytest.raises(InterfaceNotFound):
            kos.lookup("alien")
