"""What a new process imports: ``import kos_core``, ``kos --help``, ``kos ls`` and a new
client each load only what they use (benchmarks/startup.py times them; this keeps them
lazy).

Each case runs in a fresh interpreter that writes the names in ``sys.modules`` to a
file as it exits. A fake distribution in a temporary site folder on ``PYTHONPATH``
declares a toy plugin that adds a command, and the toy interfaces' module under
``kos.interfaces``, as an installed distribution would.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import click
import pytest

from coretest_util import EchoServer, echo_server, python_env
from kos_core import connect
from kos_core.cli.app import LAZY_COMMANDS, cli
from kos_core.cli.common import help_width
from kos_core.testing import KernelProcess

#: never imported by ``import kos_core``
HEAVY = (
    "click",
    "importlib.metadata",
    "kos_core._client",
    "kos_core._rpc",
    "kos_core.interface",
    "pluggy",
    "rpyc",
    "ssl",
    "typing",
)
#: kos's commands that live in modules of their own: imported only when they run
COMMAND_MODULES = tuple(f"kos_core.cli.{module}" for module, _, _ in LAZY_COMMANDS.values())
#: never imported by ``kos --help`` (it imports click, pluggy and the plugins' hooks)
NOT_FOR_HELP = (
    "importlib.metadata",
    "kos_core._client",
    "kos_core._rpc",
    "pathlib",
    "rpyc",
    "shutil",
    "ssl",
    "urllib.parse",
    *COMMAND_MODULES,
)
#: never imported by ``kos ls`` on its kernel's Unix socket
NOT_FOR_LS = (
    "importlib.metadata",
    "kos_core._kernel.discovery",
    "kos_core._net.tls",
    "pathlib",
    "pluggy",
    "shutil",
    "urllib.parse",
    *COMMAND_MODULES,
)
#: never imported to read a kernel's connection file and pass the handshake on its
#: Unix socket
NOT_FOR_UNIX_WIRE = ("kos_core._net.tls", "pathlib", "ssl", "urllib.parse")
#: never imported by a client that looks a service up on its kernel's Unix socket and
#: calls it
NOT_FOR_CLIENT = (
    "click",
    "difflib",
    "importlib.metadata",
    "kos_core._net.tls",
    "kos_core._rpc.rpyc_seam.peer",
    "kos_core._rpc.server",
    "kos_core._rpc.session",
    "pluggy",
    "rpyc",
    "ssl",
)

HOOKS = '''
    from kos_core.hookspecs import PluginSpec, hookimpl


    @hookimpl
    def kos_plugin_spec():
        return PluginSpec(name="toycmd", main="toycmd_main", run_at_boot=False)


    @hookimpl
    def kos_register_commands(cli):
        @cli.command(name="toycmd-hello")
        def hello():
            """Say hello from the toy plugin."""
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site folder holding the toy distribution: a plugin with a command, and the
    toy interfaces (``toyapi``, from this tests folder) under ``kos.interfaces``.
    """
    folder = tmp_path / "site"
    info = folder / "kos_toy_startup-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kos-toy-startup\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[kos.plugins]\ntoycmd = kostoy_startup_hooks\n\n[kos.interfaces]\nToyAPI = toyapi\n"
    )
    (folder / "kostoy_startup_hooks.py").write_text(textwrap.dedent(HOOKS))
    return folder


def modules_after(code: str, site: Path, tmp_path: Path, *args: str) -> tuple[set[str], str]:
    """Run ``code`` (with ``args``) in a new interpreter; the modules it had imported
    when it exited, and its standard output.
    """
    dump = tmp_path / "modules.json"
    prelude = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(dump)!r}, 'w').write(json.dumps(list(sys.modules))))\n"
    )
    env = python_env({"KOS_LOAD_PLUGINS": "toycmd"})
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(dump.read_text())), done.stdout


def test_import_kos_core_imports_only_its_errors(site: Path, tmp_path: Path) -> None:
    modules, _ = modules_after("import kos_core", site, tmp_path)
    assert "kos_core.errors" in modules
    assert sorted(m for m in HEAVY if m in modules) == []
    # what was deferred is still there on first use
    later, out = modules_after(
        "import kos_core; print(kos_core.Interface.__name__, kos_core.connect.__name__)",
        site,
        tmp_path,
    )
    assert out.split() == ["Interface", "connect"]
    assert {"kos_core.interface", "kos_core._client"} <= later


def test_kos_help_lists_plugin_commands_without_the_client(site: Path, tmp_path: Path) -> None:
    modules, out = modules_after("from kos_core.cli import main; main()", site, tmp_path, "--help")
    assert "toycmd-hello" in out  # the toy plugin's command is listed
    assert "Say hello from the toy plugin." in out
    assert "kostoy_startup_hooks" in modules
    assert sorted(m for m in NOT_FOR_HELP if m in modules) == []


def test_a_new_client_loads_neither_metadata_nor_the_serving_side(
    site: Path, tmp_path: Path, kernel: KernelProcess
) -> None:
    server: EchoServer
    with echo_server() as server, connect() as binder:
        binder.bind("echo", "ToyAPI.Echo", server.sbh)
        modules, out = modules_after(
            "import kos_core\nkos = kos_core.connect()\nprint(kos.lookup('echo').Pair(7, 'x'))\n",
            site,
            tmp_path,
        )
    assert out.strip() == "(7, 'x')"
    assert "toyapi" in modules  # found through its kos.interfaces entry point
    assert sorted(m for m in NOT_FOR_CLIENT if m in modules) == []


def test_kos_ls_loads_no_other_command_nor_discovery(
    site: Path, tmp_path: Path, kernel: KernelProcess
) -> None:
    modules, out = modules_after("from kos_core.cli import main; main()", site, tmp_path, "ls")
    assert out.split()[:2] == ["NAME", "TYPE"]
    assert sorted(m for m in NOT_FOR_LS if m in modules) == []


def test_the_unix_socket_handshake_loads_no_tls(
    site: Path, tmp_path: Path, kernel: KernelProcess
) -> None:
    code = (
        "from kos_core._net import connection_file, wire\n"
        f"info = connection_file.read({kernel.env.kernel!r})\n"
        "with wire.Address.parse(info.address).connect(10) as sock:\n"
        "    wire.client_handshake(sock, info.secret)\n"
        "    print('in')\n"
    )
    modules, out = modules_after(code, site, tmp_path)
    assert out.split() == ["in"]
    assert sorted(m for m in NOT_FOR_UNIX_WIRE if m in modules) == []


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_kos_help_lists_a_lazy_command_as_its_own_help_says(name: str) -> None:
    module, attribute, summary = LAZY_COMMANDS[name]
    command = getattr(importlib.import_module(f"kos_core.cli.{module}"), attribute)
    assert command.name == name
    listed = click.Command(name, help=summary)  # what kos --help shows before the import
    for limit in range(10, 200, 7):
        assert listed.get_short_help_str(limit) == command.get_short_help_str(limit)
    assert cli.get_command(click.Context(cli), name) is command


@pytest.mark.parametrize("columns", [None, "", "x", "0", "-3", "40", "60", "79", "100", "300"])
def test_help_is_as_wide_as_click_would_make_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    # click's own width: HelpFormatter(width=None) asks shutil
    assert help_width() == max(min(shutil.get_terminal_size().columns, 80) - 2, 50)
    assert help_width() == click.HelpFormatter().width


@pytest.mark.parametrize("columns", [30, 64, 120])
def test_kos_help_is_as_wide_as_the_terminal_as_click_would_make_it(columns: int) -> None:
    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        code = (  # kos's top-level context, and click's own (which asks shutil)
            "import click, shutil, sys\n"
            "from kos_core.cli.app import KosContext, cli\n"
            "from kos_core.cli.common import help_width\n"
            "width = max(min(shutil.get_terminal_size().columns, 80) - 2, 50)\n"
            "ours = cli.get_help(KosContext(cli, info_name='kos'))\n"
            "theirs = cli.get_help(click.Context(cli, info_name='kos'))\n"
            "print(help_width(), width, ours == theirs, file=sys.stderr)\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.stderr.split() == [str(max(min(columns, 80) - 2, 50))] * 2 + ["True"]
