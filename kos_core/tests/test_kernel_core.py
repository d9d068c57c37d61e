"""The kernel as clients see it: connection file, namespace over the wire, registration.

Real ``kos run`` processes (kos_core.testing.KernelProcess), with no installed plugins
booted (``KOS_LOAD_PLUGINS=""``): one shared by the tests that leave it as they found
it (they only look, or remove what they bind before they end), and one of its own
(in its own runtime directory) for each test that stops, kills or configures one.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from coretest_util import (
    TOY_PLUGIN,
    TOY_SERVICES,
    EchoServer,
    Processes,
    connection_of,
    echo_server,
    kernel_environ,
    python_env,
    write_script,
)
from kos_core import _rpc, connect
from kos_core._net import wire
from kos_core._os import paths
from kos_core.errors import (
    AuthenticationFailed,
    KernelUnreachable,
    NameAlreadyBound,
    NameNotFound,
    NotAContext,
    RegistrationRefused,
    UsageError,
)
from kos_core.testing import (
    KernelProcess,
    KosEnv,
    StartKernel,
    process_ended,
    shared_kernel,
    wait_for,
)
from toyapi import Echo

#: The module's kernel (conftest's ``kernel`` starts one per test).
kernel = shared_kernel(environ=kernel_environ())


@pytest.fixture
def served() -> Iterator[EchoServer]:
    with echo_server() as srv:
        yield srv


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_connection_file_is_private_and_complete(kernel: KernelProcess) -> None:
    env = kernel.env
    path = Path(paths.connection_file(env.kernel))
    assert path.parent == env.runtime_dir
    assert mode(path) == 0o600
    assert mode(env.runtime_dir) == 0o700
    data = json.loads(path.read_text())
    assert data["kernel"] == env.kernel
    assert data["pid"] == kernel.pid
    assert data["protocol"] == wire.PROTOCOL_VERSION
    assert len(data["secret"]) >= 32
    address = wire.Address.parse(data["address"])
    assert address.path == str(env.runtime_dir / f"{env.kernel}.sock")
    assert mode(Path(address.path)) == 0o600
    assert [p.name for p in env.runtime_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_nothing_without_the_secret(kernel: KernelProcess) -> None:
    data = json.loads(Path(paths.connection_file(kernel.name)).read_text())
    address = wire.Address.parse(data["address"])
    secret: str = data["secret"]
    wrong = ("y" if secret[0] == "x" else "x") + secret[1:]  # one character off, always
    with pytest.raises(AuthenticationFailed):
        _rpc.ClientConnection(address, wrong, "kernel").connect()
    with pytest.raises(AuthenticationFailed):
        _rpc.ClientConnection(address, "guess", "kernel").connect()


def test_info_and_empty_plugin_table(kernel: KernelProcess) -> None:
    with connect() as kos:
        name, pid, version = kos.kernel.Info()
        assert (name, pid) == (kernel.name, kernel.pid)
        assert version
        assert kos.plugins() == []
        assert kos.list() == ["plugins"]
        assert kos.list("plugins") == []
        assert repr(kos.get_namespace()).startswith("<kos context /")


def test_client_binds_and_others_call_the_service_directly(
    kernel: KernelProcess, served: EchoServer
) -> None:
    with connect() as binder:
        assert binder.bind("mine", "ToyAPI.Echo", served.sbh) == "mine"
        with connect() as other:
            assert other.entries() == [
                ("mine", "service", "ToyAPI.Echo"),
                ("plugins", "context", ""),
            ]
            echo = other.lookup("mine")
            assert isinstance(echo, Echo)
            assert echo.Pair(1, "x") == (1, "x")
            assert served.impl.calls == [("Pair", (1, "x"))]
            assert connection_of(echo).address == served.address  # straight to the serving process
            with pytest.raises(NameAlreadyBound):
                other.bind("mine", "ToyAPI.Echo", served.sbh)
            with pytest.raises(NameNotFound):
                other.unbind("mine")  # not this connection's
            with pytest.raises(UsageError):
                other.lookup("mine", type("NotEcho", (), {"wire_name": "ToyAPI.Counter"}))

    def unbound() -> bool:
        with connect() as kos:
            return "mine" not in kos.list()

    wait_for(unbound, 5.0, "the binder's service to go with its connection")


def test_unbind_by_the_binder(kernel: KernelProcess, served: EchoServer) -> None:
    with connect() as kos:
        kos.bind("temp", "ToyAPI.Echo", served.sbh)
        kos.unbind("temp")
        assert "temp" not in kos.list()
        with pytest.raises(NameNotFound):
            kos.unbind("temp")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("nothing", NameNotFound),
        ("plugins/nothing", NameNotFound),
        ("bad name", UsageError),
        ("a//b", UsageError),
        (".hidden", UsageError),
    ],
)
def test_lookup_errors_arrive_as_their_classes(
    kernel: KernelProcess, path: str, error: type[Exception]
) -> None:
    with connect() as kos:
        with pytest.raises(error):
            kos.lookup(path)
        with pytest.raises(error):
            kos.list(path)


def test_not_a_context_over_the_wire(kernel: KernelProcess, served: EchoServer) -> None:
    with connect() as kos:
        kos.bind("svc", "ToyAPI.Echo", served.sbh)
        with pytest.raises(NotAContext):
            kos.list("svc")
        with pytest.raises(NotAContext):
            kos.lookup("svc/inner")
        with pytest.raises(NotAContext):
            kos.bind("svc/inner", "ToyAPI.Echo", served.sbh)
        kos.unbind("svc")  # the kernel is shared: leave it as it was


@pytest.mark.parametrize(
    "sbh", ["", "not an sbh", "kos+unix:///x.sock", "kos+tcp://h#tok", "kos+unix:///x#a b"]
)
def test_bind_refuses_a_malformed_sbh(kernel: KernelProcess, sbh: str) -> None:
    with connect() as kos:
        with pytest.raises(UsageError):
            kos.bind("bad", "ToyAPI.Echo", sbh)
        assert "bad" not in kos.list()


def test_register_plugin_rules(kernel: KernelProcess) -> None:
    with connect() as kos:
        entry = kos.kernel.RegisterPlugin("viaclient", os.getpid())
        assert entry.Name() == "viaclient"
        assert entry.Context() == "plugins/viaclient"
        assert entry.Services() == []
        assert kos.list("plugins/viaclient") == ["kos", "world"]
        with pytest.raises(RegistrationRefused, match="already plugin"):
            kos.kernel.RegisterPlugin("another", os.getpid())
        with connect() as other:
            with pytest.raises(RegistrationRefused, match="already registered"):
                other.kernel.RegisterPlugin("viaclient", os.getpid())
            with pytest.raises(UsageError):
                other.kernel.RegisterPlugin("bad name", os.getpid())
        rows = {row[0]: row for row in kos.plugins()}
        assert rows["viaclient"][1:3] == ("running", os.getpid())

    def forgotten() -> bool:
        with connect() as kos:
            return "viaclient" not in kos.list("plugins") and not kos.plugins()

    wait_for(forgotten, 5.0, "the registration to end with its connection")


def test_stale_connection_file_after_a_kill(env: KosEnv, start_kernel: StartKernel) -> None:
    first = start_kernel()
    os.kill(first.pid, signal.SIGKILL)
    first.process.wait(5)
    first.kill_group()
    assert Path(paths.connection_file(env.kernel)).exists()  # left behind by the killed kernel
    with pytest.raises(KernelUnreachable, match="stale connection file") as caught:
        connect()
    assert caught.value.target == f"kernel {env.kernel!r}"
    second = start_kernel()  # not blocked by it
    assert json.loads(Path(paths.connection_file(env.kernel)).read_text())["pid"] == second.pid
    with second.connect() as kos:
        assert kos.kernel.Info()[1] == second.pid


def test_no_kernel_is_kernel_unreachable(env: KosEnv) -> None:
    with pytest.raises(KernelUnreachable, match="no kernel named"):
        connect("absent")
    with pytest.raises(UsageError):
        connect("bad name")


def test_sigterm_stops_plugins_and_cleans_up(
    env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "toyplugin.py", TOY_PLUGIN)
    kernel = start_kernel(setup=f"[toy]\nfile: {script}\n{TOY_SERVICES}")
    pid = kernel.wait_plugin("toy", services=["toy-echo"])
    assert kernel.stop() == 0
    assert process_ended(pid)
    assert not Path(paths.connection_file(env.kernel)).exists()
    assert [p.name for p in env.runtime_dir.iterdir()] == []
    assert "Traceback" not in kernel.log_path.read_text()


CHATTY_PLUGIN = """
from kos_core import pluginlib

kos, ns = pluginlib.register("chatty")
print("chatty ready", flush=True)
try:
    kos.run()
finally:
    for i in range(2000):
        print("chatty stopping, line", i)
    print("chatty LAST LINE", flush=True)
"""


def test_a_plugins_last_output_is_not_lost_when_the_kernel_stops(
    env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    # KernelProcess.log() is "everything the kernel and its plugins printed": what a
    # plugin prints while it stops must be there once the kernel has exited.
    script = write_script(tmp_path / "chatty.py", CHATTY_PLUGIN)
    kernel = start_kernel(setup=f"[chatty]\nfile: {script}\n")
    kernel.wait_plugin("chatty")
    # printed once register() has returned (and armed its signal handlers)
    wait_for(lambda: "chatty ready" in kernel.log(), 10.0, "the plugin to be ready")
    assert kernel.stop() == 0
    log = kernel.log_path.read_text()
    assert "chatty stopping, line 1999" in log
    assert "chatty LAST LINE" in log
    plugin_logs = [p for p in env.state_dir.rglob("*.log") if p != kernel.log_path]
    for path in plugin_logs:
        if "chatty ready" in path.read_text():
            assert "chatty LAST LINE" in path.read_text(), path


def test_tcp_kernel_and_plugin(env: KosEnv, start_kernel: StartKernel, tmp_path: Path) -> None:
    script = write_script(tmp_path / "toyplugin.py", TOY_PLUGIN)
    procs = Processes()
    kernel = start_kernel("--listen", "127.0.0.1:0")
    try:
        data = json.loads(Path(paths.connection_file(env.kernel)).read_text())
        assert wire.Address.parse(data["address"]).path is not None  # always its socket
        address = wire.Address.parse(data["tcp"])
        assert address.host == "127.0.0.1"
        assert address.port != 0
        procs.python(script, env=python_env({"TOY_PLUGIN_NAME": "tcpy"}))
        kernel.wait_plugin("tcpy", services=["toy-echo"])
        with kernel.connect() as kos:
            kind, typename, sbh = kos.kernel.Lookup("toy-echo")
            assert (kind, typename) == ("service", "ToyAPI.Echo")
            assert sbh.startswith("kos+tcp://127.0.0.1:")
            assert kos.lookup("toy-echo").Str("over tcp") == "over tcp"
    finally:
        procs.stop_all()


def test_kernel_log_is_readable_after_stop(env: KosEnv, start_kernel: StartKernel) -> None:
    # KernelProcess is kos_core.testing's public helper: reading the log once the
    # kernel has stopped (to check what it printed on the way out) must work.
    kernel = start_kernel()
    assert kernel.name == env.kernel
    kernel.stop()
    assert "stopped" in kernel.log()
