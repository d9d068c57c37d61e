"""pluginlib with a real kernel and real plugin processes (only kos-core installed).

The plugin is a script in ``tmp_path`` using the toy interface, named in a setup
file by ``file:`` (the kernel launches it) or started by hand.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coretest_util import (
    TOY_PLUGIN,
    TOY_SERVICES,
    Processes,
    connection_of,
    kernel_environ,
    python_env,
    write_script,
)
from kos_core import _rpc
from kos_core.errors import AuthenticationFailed, NameNotFound
from kos_core.testing import (
    KernelProcess,
    KosEnv,
    StartKernel,
    process_ended,
    shared_kernel,
    wait_for,
)
from toyapi import Echo


@pytest.fixture
def procs() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "toyplugin.py", TOY_PLUGIN)


def read_report(path: Path, kernel: KernelProcess | None = None) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        if not path.exists():
            return {}
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    try:
        return wait_for(ready, 15.0, f"the plugin's report {path}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{kernel.log() if kernel else ''}") from None


def toy_setup(script: Path, report: Path) -> str:
    """The setup file launching the toy plugin ``script``, which writes ``report``."""
    return (
        "# the toy plugin, run from a file\n"
        "[toy]\n"
        f"file: {script}\n"
        "args: --color=blue extra-arg\n"
        f"report: {report}\n"
        "service: toy-echo\n"
        f"{TOY_SERVICES}"
        "greeting: hello %(service)s\n"
    )


@pytest.fixture
def booted(
    env: KosEnv, start_kernel: StartKernel, script: Path, tmp_path: Path
) -> tuple[KernelProcess, dict[str, Any]]:
    """A kernel of its own that launched the toy plugin from its setup file; and the
    plugin's report. For tests that stop the plugin or the kernel.
    """
    report = tmp_path / "report.json"
    kernel = start_kernel(setup=toy_setup(script, report))
    kernel.wait_plugin("toy", services=["toy-echo"])
    return kernel, read_report(report, kernel)


def shared_script(env: KosEnv) -> Path:
    """The toy plugin script of :data:`toy_kernel` (beside its place's directories)."""
    return env.config_dir.parent / "toyplugin.py"


def shared_report(env: KosEnv) -> Path:
    """Where :data:`toy_kernel`'s toy plugin writes its report."""
    return env.config_dir.parent / "report.json"


def write_shared_setup(env: KosEnv) -> str:
    """Write :data:`toy_kernel`'s plugin script; its setup file."""
    return toy_setup(write_script(shared_script(env), TOY_PLUGIN), shared_report(env))


#: The module's kernel running the toy plugin, for the tests that only look at it.
toy_kernel = shared_kernel(
    setup=write_shared_setup, environ=kernel_environ(), plugins={"toy": ["toy-echo"]}
)


@pytest.fixture
def toy(toy_kernel: KernelProcess) -> tuple[KernelProcess, dict[str, Any]]:
    """The module's kernel running the toy plugin; and the plugin's report."""
    return toy_kernel, read_report(shared_report(toy_kernel.env), toy_kernel)


def start_by_hand(
    procs: Processes, script: Path, tmp_path: Path, name: str, *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    report = tmp_path / f"report-{name}.json"
    process = procs.python(
        script,
        *args,
        env=python_env(
            {"TOY_PLUGIN_NAME": name, "TOY_SERVICE": f"{name}-echo", "TOY_REPORT": str(report)}
        ),
        log=tmp_path / f"{name}.log",
    )
    return process, report


# -- a plugin the kernel launches ---------------------------------------------------------


def test_kernel_launches_the_plugin_in_its_own_directory(
    toy: tuple[KernelProcess, dict[str, Any]],
) -> None:
    kernel, report = toy
    env = kernel.env
    expected = env.state_dir / env.kernel / "plugins" / "toy"
    assert Path(report["cwd"]).resolve() == expected.resolve()
    assert expected.is_dir()


def test_kernel_passes_its_name_and_the_args(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    kernel, report = toy
    argv = report["argv"]
    assert Path(argv[0]).resolve() == shared_script(kernel.env).resolve()
    assert argv[1:3] == ["-n", kernel.name]
    assert argv[3:] == ["--color=blue", "extra-arg"]


def test_plugin_sees_its_section_options(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    kernel, report = toy
    options = report["options"]
    assert options["report"] == str(shared_report(kernel.env))
    assert options["service"] == "toy-echo"
    assert options["greeting"] == "hello toy-echo"
    assert options["args"] == "--color=blue extra-arg"
    assert Path(options["file"]).resolve() == shared_script(kernel.env).resolve()


def test_register_gives_the_private_context(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    _, report = toy
    assert report["ns_path"] == "plugins/toy"
    assert report["ns_list"] == ["kos", "world"]
    # ns.lookup("kos") is the kernel's top context (and so is "world" here)
    assert report["kos_list"] == report["top_list"]
    assert report["world_list"] == report["top_list"]
    assert "plugins" in report["top_list"]


def test_bind_service_errors(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    _, report = toy
    kind, message = report["rebind"]
    assert kind == "NameAlreadyBound"
    assert "toy-echo" in message
    kind, message = report["half"]
    assert kind == "TypeError"
    assert "missing" in message
    assert "Bytes" in message


def test_unbind_service_removes_the_name(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    kernel, report = toy
    assert "toy-echo-temp" in report["before_unbind"]
    assert "toy-echo-temp" not in report["after_unbind"]
    assert "toy-echo-half" not in report["after_unbind"]
    with kernel.connect() as kos:
        assert "toy-echo-temp" not in kos.list()
        with pytest.raises(NameNotFound):
            kos.lookup("toy-echo-temp")
    # and the old SBH no longer reaches anything
    stale = _rpc.object_of_sbh(report["temp_sbh"], Echo)
    with pytest.raises(AuthenticationFailed):
        stale.Str("x")


def test_clients_call_the_plugin_directly(toy: tuple[KernelProcess, dict[str, Any]]) -> None:
    kernel, report = toy
    with kernel.connect() as kos:
        echo = kos.lookup("toy-echo")
        assert isinstance(echo, Echo)
        assert echo.Words(["a", "b"]) == ["a", "b"]
        assert echo.Open().Incr() == 1
        via_link = kos.lookup("plugins/toy/kos/toy-echo", Echo)
        assert via_link.Str("via link") == "via link"
        link = connection_of(echo)
        assert link.address.path is not None
        assert Path(link.address.path).name == f"p{report['pid']}.sock"
        assert stat.S_IMODE(os.stat(link.address.path).st_mode) == 0o600
        rows = {row[0]: row for row in kos.plugins()}
        row = rows["toy"]
        assert (row[1], row[2], row[3]) == ("running", report["pid"], ["toy-echo"])


def test_plugin_ends_on_sigterm_and_its_services_go(
    booted: tuple[KernelProcess, dict[str, Any]],
) -> None:
    kernel, report = booted
    os.kill(report["pid"], signal.SIGTERM)
    wait_for(lambda: process_ended(report["pid"]), 5.0, "the plugin to exit")

    def gone() -> bool:
        row = kernel.plugin_row("toy")
        return row is not None and row[1] == "exited" and row[3] == []

    wait_for(gone, 5.0, "the kernel to see the plugin exit")
    with kernel.connect() as kos:
        assert "toy-echo" not in kos.list()
        assert "toy" not in kos.list("plugins")
    assert "toy plugin toy exiting" in kernel.log()


def test_plugin_exits_when_the_kernel_is_killed(
    env: KosEnv,
    booted: tuple[KernelProcess, dict[str, Any]],
    procs: Processes,
    script: Path,
    tmp_path: Path,
) -> None:
    kernel, report = booted
    by_hand, hand_report = start_by_hand(procs, script, tmp_path, "hand")
    # Its report is written once all its calls to the kernel are done: killing the kernel
    # earlier would fail one of them, and the plugin would exit 1 for that.
    read_report(hand_report, kernel)
    pids = [report["pid"], by_hand.pid]
    assert not any(process_ended(pid) for pid in pids)
    os.kill(kernel.pid, signal.SIGKILL)
    kernel.process.wait(5)
    wait_for(lambda: all(process_ended(pid) for pid in pids), 2.0, "the plugins to exit")
    assert by_hand.wait(1) == 0
    said = (tmp_path / "hand.log").read_text()
    assert f"kernel {env.kernel!r} went away" in said  # it says which kernel went away
    assert "Traceback" not in said


# -- plugins started by hand --------------------------------------------------------------


def run_script(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``script`` to its end, its output captured, ``env`` added to :func:`python_env`."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=python_env(env),
        capture_output=True,
        check=False,
        timeout=30,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    """The error of a plugin that exited with status 1 and one line on stderr."""
    assert result.returncode == 1
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_services_disappear_when_the_plugins_connection_drops(
    kernel: KernelProcess, procs: Processes, script: Path, tmp_path: Path
) -> None:
    plugin, report_path = start_by_hand(procs, script, tmp_path, "hand")
    kernel.wait_plugin("hand", services=["hand-echo"])
    report = read_report(report_path)
    assert report["ns_path"] == "plugins/hand"
    with kernel.connect() as kos:
        assert kos.lookup("hand-echo").Str("hi") == "hi"
        assert "hand" in kos.list("plugins")
    plugin.send_signal(signal.SIGKILL)
    plugin.wait(5)

    def cleaned() -> bool:
        with kernel.connect() as kos:
            return "hand-echo" not in kos.list() and "hand" not in kos.list("plugins")

    wait_for(cleaned, 5.0, "the kernel to unbind the dead plugin's services")
    assert kernel.plugin_row("hand") is None


def test_a_taken_plugin_name_is_refused(
    kernel: KernelProcess, procs: Processes, script: Path, tmp_path: Path
) -> None:
    start_by_hand(procs, script, tmp_path, "hand")
    kernel.wait_plugin("hand", services=["hand-echo"])
    second = run_script(script, TOY_PLUGIN_NAME="hand", TOY_SERVICE="other-echo")
    err = one_line_error(second)
    assert err.startswith("kos plugin hand: error: registration refused")
    with kernel.connect() as kos:
        assert "other-echo" not in kos.list()


def test_register_without_a_kernel_exits_1_with_one_line(env: KosEnv, script: Path) -> None:
    err = one_line_error(run_script(script, "-n", "nokernel", TOY_PLUGIN_NAME="lonely"))
    assert "kos plugin lonely: error:" in err
    assert "nokernel" in err


def test_register_rejects_a_bad_plugin_name(env: KosEnv, script: Path) -> None:
    result = run_script(script, TOY_PLUGIN_NAME="bad name")
    assert result.returncode == 1
    assert "bad plugin name" in result.stderr.decode()


GETOPT_SCRIPT = """
import getopt
import sys

from kos_core import pluginlib

try:
    pluginlib.register("opts", shortopts="v", longopts=["level="])
except getopt.GetoptError as exc:
    print("getopt:", exc)
    sys.exit(7)
"""


@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["-n"], ["--level"]])
def test_register_raises_getopt_error_on_a_bad_command_line(
    env: KosEnv, tmp_path: Path, args: list[str]
) -> None:
    path = write_script(tmp_path / "opts.py", GETOPT_SCRIPT)
    result = run_script(path, *args)
    assert result.returncode == 7, result.stderr.decode()
    assert result.stdout.startswith(b"getopt:")


def test_dash_n_overrides_the_kernel_name(
    kernel: KernelProcess, procs: Processes, script: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report-named.json"
    procs.python(
        script,
        "-n",
        kernel.env.kernel,
        env=python_env(
            {
                "KOS_KERNEL": "some-other-kernel",
                "TOY_PLUGIN_NAME": "named",
                "TOY_REPORT": str(report),
            }
        ),
    )
    kernel.wait_plugin("named", services=["toy-echo"])
    assert read_report(report)["ns_path"] == "plugins/named"


def test_plugin_sees_no_options_when_started_by_hand(
    kernel: KernelProcess, procs: Processes, script: Path, tmp_path: Path
) -> None:
    _, report_path = start_by_hand(procs, script, tmp_path, "hand")
    report = read_report(report_path)
    assert report["options"] == {}
    assert report["argv"][1:] == []
