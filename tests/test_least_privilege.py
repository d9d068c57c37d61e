"""Credentials by kind: what a plugin may do at its kernel, and what it may not.

Each attack here worked once, when every plugin and client held the operator's
secret; a plugin run by the kernel now holds a credential of its own, which lets it
register as itself, bind the names it declares and look things up — nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import kos_core
from kos_core import PermissionDenied, RegistrationRefused, RemoteError
from kos_core.testing import KernelProcess, KosEnv, StartKernel, shared_kernel, wait_for
from kos_helpers import connection_info, dedent
from kos_plugins_bitbucket import BitBucket

#: A plugin that tries, with its own credential, what an impostor would; it writes
#: what each attempt gave to its ``report`` setting and then serves until stopped.
ATTACKER = dedent(
    """
    import json, os, sys
    from kos_core import pluginlib, _rpc
    from kos_core.kernel_api import Kernel
    from kos_core.testing import wait_for

    kos, ns = pluginlib.register("mallory")
    wait_for(lambda: "bitbucket" in kos.list(""), 10, "bitbucket to be bound")  # booted beside
    token = kos._link.token
    second = _rpc.make_proxy(Kernel, _rpc.ClientConnection(kos._link.address, token, "kernel"))

    def attempt(func):
        try:
            result = func()
        except Exception as exc:
            return [type(exc).__name__, str(exc)]
        return ["ok", repr(result)]

    fake = "kos+unix:///elsewhere/p1.sock#" + "x" * 32
    report = {
        "pid": os.getpid(),
        "token": token,
        "stop": attempt(lambda: kos.kernel.StopPlugin("bitbucket")),
        "start": attempt(lambda: kos.kernel.StartPlugin("bitbucket")),
        "restart": attempt(lambda: kos.kernel.RestartPlugin("bitbucket")),
        "table": attempt(lambda: kos.kernel.Plugins()),
        "logpath": attempt(lambda: kos.kernel.LogPath("bitbucket")),
        "reload": attempt(lambda: kos.kernel.Reload()),
        "register_other": attempt(lambda: second.RegisterPlugin("bitbucket", 1)),
        "register_wrong_pid": attempt(lambda: second.RegisterPlugin("mallory", 1)),
        "bind_taken": attempt(lambda: kos.kernel.Bind("bitbucket", "BitBucketAPI.BitBucket", fake)),
        "bind_reserved": attempt(lambda: kos.kernel.Bind("notes", "BitBucketAPI.BitBucket", fake)),
        "bind_private": attempt(
            lambda: kos.kernel.Bind("plugins/bitbucket/x", "BitBucketAPI.BitBucket", fake)
        ),
        "bind_free": attempt(lambda: kos.kernel.Bind("free", "BitBucketAPI.BitBucket", fake)),
        "bind_own": attempt(lambda: kos.kernel.Bind("mallory", "BitBucketAPI.BitBucket", fake)),
        "bind_own_context": attempt(
            lambda: kos.kernel.Bind("plugins/mallory/x", "BitBucketAPI.BitBucket", fake)
        ),
        "lookup": attempt(lambda: kos.kernel.Lookup("bitbucket")[0]),
        "list": attempt(lambda: len(kos.list(""))),
    }
    path = pluginlib.options()["report"]
    with open(path + ".tmp", "w") as fh:
        json.dump(report, fh)
    os.replace(path + ".tmp", path)
    kos.run()
    """
)

#: A plugin that declares ``notes`` and binds it when started.
NOTES = dedent(
    """
    from kos_core import pluginlib
    from kos_plugins_bitbucket.plugin import BitBucket
    kos, ns = pluginlib.register("notes")
    sid = kos.bind_service("notes", BitBucket(1024), "BitBucketAPI.BitBucket")
    kos.run()
    """
)


def write_attack_setup(place: Path) -> str:
    """Write the ``mallory`` and ``notes`` scripts into ``place``; the setup file that
    runs ``mallory`` (its report: ``place/report.json``) and declares ``notes``, stopped.
    """
    (place / "mallory.py").write_text(ATTACKER)
    (place / "notes.py").write_text(NOTES)
    return (
        f"[mallory]\nfile: {place / 'mallory.py'}\nservices: mallory\n"
        f"report: {place / 'report.json'}\n"
        f"[notes]\nfile: {place / 'notes.py'}\nservices: notes\nrun-at-boot: no\n"
    )


def mallorys_report(kernel: KernelProcess, place: Path) -> Any:
    """The kernel and what each of ``mallory``'s attacks gave, once it has written it."""
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    kernel.wait_plugin("mallory")
    report = place / "report.json"
    wait_for(report.exists, 15, "the attacker's report")
    return kernel, json.loads(report.read_text())


@pytest.fixture
def attacked(kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path) -> Any:
    """A kernel of its own running bitbucket, a stopped ``notes`` plugin that declares
    ``notes``, and ``mallory``, which tried every attack; returns (kernel, report). For
    tests that change what the kernel runs.
    """
    kernel = start_kernel(setup=write_attack_setup(tmp_path))
    return mallorys_report(kernel, tmp_path)


#: The module's kernel as :func:`attacked` sets it up, for the tests that only look.
attacked_kernel = shared_kernel(
    setup=lambda env: write_attack_setup(env.config_dir.parent),
    environ={"KOS_LOAD_PLUGINS": "bitbucket"},
    plugins={"bitbucket": ["bitbucket"], "mallory": []},
)


@pytest.fixture
def attacked_shared(attacked_kernel: KernelProcess) -> Any:
    """:func:`attacked`, on the module's kernel."""
    return mallorys_report(attacked_kernel, attacked_kernel.env.config_dir.parent)


def test_a_plugin_cannot_control_other_plugins(attacked_shared: Any) -> None:
    _, report = attacked_shared
    for attempt in ("stop", "start", "restart", "table", "logpath", "reload"):
        kind, message = report[attempt]
        assert kind == "PermissionDenied", (attempt, report[attempt])
        assert "operator" in message


def test_a_plugin_cannot_register_as_another_or_under_a_false_pid(attacked_shared: Any) -> None:
    _, report = attacked_shared
    assert report["register_other"][0] == "PermissionDenied"
    kind, message = report["register_wrong_pid"]
    assert kind == "RegistrationRefused"
    assert f"pid {report['pid']}" in message  # the kernel saw who really asked


def test_a_plugin_binds_only_what_it_declares(attacked_shared: Any) -> None:
    _, report = attacked_shared
    assert report["bind_taken"][0] == "PermissionDenied"
    assert report["bind_reserved"] == ["PermissionDenied", "'notes' is reserved for plugin 'notes'"]
    assert report["bind_private"][0] == "PermissionDenied"
    assert report["bind_free"][0] == "PermissionDenied"
    assert report["bind_own"][0] == "ok"
    assert report["bind_own_context"][0] == "ok"
    assert report["lookup"] == ["ok", "'service'"]
    assert report["list"][0] == "ok"


def test_attacks_change_nothing_for_the_operator(attacked: Any, kos_env: KosEnv) -> None:
    kernel, _ = attacked
    row = kernel.plugin_row("bitbucket")
    assert row is not None and row[1] == "running"
    with kos_core.connect() as kos:
        sbh = kos.kernel.Lookup("bitbucket")[2]
        assert sbh.startswith(f"kos+unix://{kos_env.runtime_dir}/p{row[2]}.sock#")
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("k", b"still mine")
        assert bb.Get("k") == b"still mine"
        assert "notes" not in kos.list("")  # nobody took the stopped plugin's name
        assert kos.kernel.StartPlugin("notes") in ("starting", "running")
    kernel.wait_plugin("notes", services=["notes"])


def test_a_declared_name_stays_reserved_while_its_plugin_is_stopped(attacked: Any) -> None:
    kernel, report = attacked
    with kos_core.connect() as kos:
        kos.kernel.StopPlugin("bitbucket")
    wait_for(lambda: (kernel.plugin_row("bitbucket") or ("", ""))[1] == "stopped", 10, "stop")
    with kos_core.connect() as kos:
        assert "bitbucket" not in kos.list("")
        mallory = kos_core._rpc.make_proxy(
            kos_core.kernel_api.Kernel,
            kos_core._rpc.ClientConnection(kos._link.address, report["token"], "kernel"),
        )
        fake = "kos+unix:///elsewhere/p1.sock#" + "y" * 32
        with pytest.raises(PermissionDenied, match="reserved for plugin 'bitbucket'"):
            mallory.Bind("bitbucket", "BitBucketAPI.BitBucket", fake)


def test_the_plugin_credential_is_its_own_and_not_on_its_command_line(
    attacked_shared: Any,
) -> None:
    kernel, report = attacked_shared
    token = report["token"]
    assert token != connection_info(kernel.env)["secret"]
    pid = report["pid"]
    assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert token.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    environ = dict(
        line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_text().split("\0") if line
    )
    handed = Path(f"/proc/{pid}/fd/{environ['KOS_CREDENTIAL_FD']}")
    # The pipe it came through was read once and closed (the number may be reused).
    assert not handed.exists() or "pipe:" not in os.readlink(handed)


def test_the_kernel_dials_no_address_a_peer_hands_it(attacked_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        elsewhere = "kos+unix:///tmp/elsewhere/p1.sock#" + "z" * 32
        with pytest.raises(PermissionDenied, match="health"):
            kos.kernel.RegisterPlugin("dialer", os.getpid(), elsewhere)
        with pytest.raises(RegistrationRefused, match=f"pid {os.getpid()}"):
            kos.kernel.RegisterPlugin("liar", 1)


def test_a_kernel_request_is_small(attacked_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        with pytest.raises(RemoteError, match="RequestTooLarge"):
            kos.kernel.Lookup("a" * (1024 * 1024))
        assert kos.kernel.Lookup("bitbucket")[0] == "service"  # the connection goes on
