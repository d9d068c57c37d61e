"""What a new process imports: ``import kos_core``, ``kos --help`` and a new client each
load only what they use (benchmarks/startup.py times them; this keeps them lazy).

Each case runs in a fresh interpreter that writes the names in ``sys.modules`` to a
file as it exits. A fake distribution in a temporary site folder on ``PYTHONPATH``
declares a toy plugin that adds a command, and the toy interfaces' module under
``kos.interfaces``, as an installed distribution would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coretest_util import EchoServer, echo_server, python_env
from kos_core import connect
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
#: never imported by ``kos --help`` (it imports click, pluggy and the plugins' hooks)
NOT_FOR_HELP = ("importlib.metadata", "kos_core._client", "kos_core._rpc", "rpyc", "ssl")
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
