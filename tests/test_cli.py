"""The ``kos`` command line: plugins, ls, call, help, exit codes and one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import kos_core
from kos_core.errors import KernelUnreachable
from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import HEADER, Cli, assert_one_line_error, connection_file, kos_environ, table

BB_VERSION = version("kos-plugins-bitbucket")


def test_plugins_without_a_kernel(kos_env: KosEnv, cli: Cli) -> None:
    result = cli("plugins")
    assert result.returncode == 0, str(result)
    rows = table(result.stdout)
    assert rows[0] == HEADER
    assert ["bitbucket", "kos-plugins-bitbucket", BB_VERSION, "yes", "-", "-"] in rows
    assert f"no kernel named {kos_env.kernel!r} is running" in result.stderr
    assert "Traceback" not in result.stderr

    data = json.loads(cli("plugins", "--json").stdout)
    assert data["kernel"] == kos_env.kernel
    assert data["running"] is False
    (bb,) = [p for p in data["plugins"] if p["name"] == "bitbucket"]
    assert bb["distribution"] == "kos-plugins-bitbucket"
    assert bb["version"] == BB_VERSION
    assert bb["run_at_boot"] is True
    assert bb["pid"] is None


def test_plugins_reads_the_setup_files(kos_env: KosEnv, cli: Cli) -> None:
    kos_env.write_setup("[bitbucket]\nrun-at-boot: no\n")
    rows = table(cli("plugins").stdout)
    assert ["bitbucket", "kos-plugins-bitbucket", BB_VERSION, "no", "-", "-"] in rows


@pytest.mark.parametrize(
    "args",
    [
        ("ls", "-n", "nosuchkernel"),
        ("call", "-n", "nosuchkernel", "bitbucket", "List"),
        ("ls", "--kernel", "nosuchkernel"),
    ],
)
def test_unknown_kernel_is_one_line(kos_env: KosEnv, cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert_one_line_error(result, 1, "nosuchkernel")
    assert result.stdout == ""


def test_plugins_names_an_unknown_kernel(kos_env: KosEnv, cli: Cli) -> None:
    result = cli("plugins", "-n", "nosuchkernel")
    assert result.returncode == 0, str(result)
    assert "no kernel named 'nosuchkernel' is running" in result.stderr


def test_bad_kernel_name_is_a_usage_error(kos_env: KosEnv, cli: Cli) -> None:
    assert_one_line_error(cli("ls", "-n", "bad/name"), 2, "bad/name")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--help",), ["run", "plugins", "ls", "call", "--version"]),
        (("run", "--help"), ["-n, --kernel", "--config", "--listen", "--log-level"]),
        (("call", "--help"), ["SERVICE", "METHOD", "-n, --kernel", "Set greeting hello"]),
        (("plugins", "--help"), ["--json", "-n, --kernel"]),
        (("ls", "--help"), ["PATH", "-n, --kernel"]),
    ],
)
def test_help(kos_env: KosEnv, cli: Cli, args: tuple[str, ...], expected: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 0, str(result)
    assert result.stdout.startswith("Usage: ")
    for text in expected:
        assert text in result.stdout, text
    assert result.stderr == ""


@pytest.mark.all_plugins
def test_help_loads_the_plugins_hooks_but_not_the_client(kos_env: KosEnv, tmp_path: Path) -> None:
    """``kos --help`` lists the commands installed plugins add, importing each plugin's
    hooks module, and never kos's client, rpyc, importlib.metadata or a plugin's
    interfaces (benchmarks/startup.py times it).
    """
    dump = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(dump)!r}, 'w').write(json.dumps(list(sys.modules))))\n"
        "from kos_core.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--help"],
        env=kos_environ(kos_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:1] == ["http"] for line in done.stdout.splitlines())  # kos http
    imported = set(json.loads(dump.read_text()))
    hooks = {f"kos_plugins_{name}.hooks" for name in ("bitbucket", "http", "simpleio")}
    assert hooks <= imported
    unwanted = ("rpyc", "importlib.metadata", "kos_core._client", "kos_core._rpc")
    assert sorted(m for m in imported if m.startswith(unwanted) or m.endswith(".api")) == []


def test_version(kos_env: KosEnv, cli: Cli) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert version("kos-core") in result.stdout


def test_bad_options_exit_2(kos_env: KosEnv, cli: Cli) -> None:
    for args in (("run", "--bogus"), ("nosuchcommand",), ("plugins", "--bogus")):
        result = cli(*args)
        assert result.returncode == 2, str(result)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("kos: error: ") and result.stderr.count("\n") == 1


def test_run_with_an_address_it_cannot_listen_on(kos_env: KosEnv, cli: Cli, tmp_path: Path) -> None:
    missing_dir = tmp_path / "no-such-dir" / "k.sock"
    result = cli("run", "--listen", f"unix:{missing_dir}", timeout=20)
    assert_one_line_error(result, 1, str(missing_dir))
    assert not connection_file(kos_env).exists()


def test_run_with_a_tcp_port_in_use(kos_env: KosEnv, cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = cli("run", "--listen", f"127.0.0.1:{port}", timeout=20)
    assert_one_line_error(result, 1, str(port))
    assert not connection_file(kos_env).exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("run", "--listen", "bogus"), "bogus"),
        (("run", "-n", "bad/name"), "bad/name"),
        (("run", "--log-level", "loud"), "loud"),
    ],
)
def test_run_usage_errors(kos_env: KosEnv, cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    result = cli(*args, timeout=20)
    assert result.returncode == 2, str(result)
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert not connection_file(kos_env).exists()


def test_commands_with_a_stale_connection_file(
    kos_env: KosEnv, bb_kernel: KernelProcess, cli: Cli
) -> None:
    bb_kernel.process.send_signal(signal.SIGKILL)
    bb_kernel.process.wait(10)
    bb_kernel.kill_group()
    assert connection_file(kos_env).exists()
    for args in (("ls",), ("call", "bitbucket", "List")):
        assert_one_line_error(cli(*args), 1, kos_env.kernel)
    result = cli("plugins")
    assert result.returncode == 0, str(result)
    assert "is running" in result.stderr


def test_runtime_dir_falls_back_to_xdg_runtime_dir(
    kos_env: KosEnv, cli: Cli, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    result = cli("ls", extra_env={"KOS_RUNTIME_DIR": "", "XDG_RUNTIME_DIR": str(xdg)})
    assert_one_line_error(result, 1, str(xdg / "kos" / f"{kos_env.kernel}.kernel.json"))
    assert stat.S_IMODE((xdg / "kos").stat().st_mode) == 0o700


def test_kernel_name_defaults_to_the_short_host_name(kos_env: KosEnv, cli: Cli) -> None:
    host = socket.gethostname().split(".")[0]
    result = cli("ls", extra_env={"KOS_KERNEL": ""})
    assert_one_line_error(result, 1, repr(host))


def test_connect_to_an_unknown_kernel_raises(kos_env: KosEnv) -> None:
    with pytest.raises(KernelUnreachable, match="nosuchkernel"):
        kos_core.connect("nosuchkernel")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("KOS_CALL_TIMEOUT", "soon", "number of seconds"),
        ("KOS_CALL_TIMEOUT", "nan", "number of seconds"),
        ("KOS_MAX_REQUEST", "-1", "number of bytes"),
        ("KOS_CHILD_CLIENT_TIMEOUT", "inf", "number of seconds"),
    ],
)
def test_a_bad_number_in_the_environment_is_one_line(
    kos_env: KosEnv, cli: Cli, variable: str, value: str, fragment: str
) -> None:
    for args in (("ls",), ("call", "bitbucket", "List"), ("run", "-n", "never")):
        if variable == "KOS_CHILD_CLIENT_TIMEOUT" and args[0] != "run":
            continue  # read by plugins' factories only, checked by kos run
        result = cli(*args, extra_env={variable: value})
        assert_one_line_error(result, 2, variable, fragment, repr(value))
