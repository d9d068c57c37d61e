"""The bastion: a KP holds the KP credential only. It looks up and lists what the
station's ``[kp-access]`` policy allows, binds only under ``kps/<id>/``, and calls no
kernel operation; its calls to services go directly to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kos_core
from kos_core.testing import KernelProcess, KosEnv, StartKernel, wait_for
from kos_plugins_bitbucket import BitBucket
from kp_helpers import reported, submit, write_kp

ATTACKER = """
from kos_plugins_bitbucket.plugin import BitBucket

def attempt(func):
    try:
        return ["ok", repr(func())]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

class Attacker:
    def __main__(self, kos):
        kernel = kos._kos.kernel  # the raw kernel proxy, around the bastion
        fake = "kos+unix:///elsewhere/p1.sock#" + "x" * 32
        typename = "BitBucketAPI.BitBucket"
        own = kos.bind_service("bucket", BitBucket(1024), typename)
        report(kos, "attacks", {
            "own": own,
            "lookup_allowed": attempt(lambda: kos.lookup("bitbucket").List()),
            "lookup_plugins": attempt(lambda: kos.lookup("plugins")),
            "lookup_via_link": attempt(lambda: kos.lookup("plugins/bitbucket/kos/bitbucket")),
            "list_top": attempt(lambda: kos.list("")),
            "list_own": attempt(lambda: kos.list(kos.context)),
            "bind_top": attempt(lambda: kernel.Bind("free", typename, fake)),
            "bind_taken": attempt(lambda: kernel.Bind("bitbucket", typename, fake)),
            "bind_other_kp": attempt(lambda: kernel.Bind("kps/other/x", typename, fake)),
            "bind_plugin_context": attempt(
                lambda: kernel.Bind("plugins/bitbucket/x", typename, fake)
            ),
            "plugins": attempt(lambda: kernel.Plugins()),
            "stop": attempt(lambda: kernel.StopPlugin("bitbucket")),
            "logpath": attempt(lambda: kernel.LogPath("bitbucket")),
            "register": attempt(lambda: kernel.RegisterPlugin("bitbucket", os.getpid())),
            "submit": attempt(lambda: kernel.SubmitKP("x.py:X", "class X: pass", [], "")),
            "kps": attempt(lambda: kernel.KPs()),
            "kill": attempt(lambda: kernel.KillKP(kos.id)),
            "receive": attempt(
                lambda: kernel.ReceiveKP(("x.py:X", "class X: pass", [], "", "here"), b"{}")
            ),
        })
        kos.run()
"""

LOOKER = """
class Looker:
    def __main__(self, kos):
        try:
            kos.lookup("bitbucket")
            print("looked up bitbucket", flush=True)
        except Exception as exc:
            print("refused:", type(exc).__name__, exc, flush=True)
"""


@pytest.fixture
def attacked(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> Iterator[tuple[KernelProcess, str, Any]]:
    """A station whose policy opens bitbucket, and the report of a KP that tried the rest."""
    kos_env.write_setup("[kp-access]\nlookup: bitbucket\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        kp_id = submit(kos, write_kp(tmp_path, "attacker", ATTACKER), "Attacker")
        yield kernel, kp_id, reported(kos, "attacks")


def test_a_kp_looks_up_only_what_the_policy_allows(attacked: Any) -> None:
    _, kp_id, report = attacked
    assert report["lookup_allowed"][0] == "ok"
    for attempt in ("lookup_plugins", "lookup_via_link", "list_top"):
        assert report[attempt][0] == "PermissionDenied", (attempt, report[attempt])
        assert f"KP '{kp_id}'" in report[attempt][1]
    assert report["list_own"] == ["ok", "['bucket']"]


def test_a_kp_binds_only_under_its_own_context(attacked: Any) -> None:
    _, kp_id, report = attacked
    for attempt in ("bind_top", "bind_taken", "bind_other_kp", "bind_plugin_context"):
        assert report[attempt][0] == "PermissionDenied", (attempt, report[attempt])
    assert report["bind_top"][1] == f"KP {kp_id} may bind only under kps/{kp_id}/"
    assert report["own"] == f"kps/{kp_id}/bucket"
    with kos_core.connect() as kos:  # what it serves is called directly, as any service
        bucket = kos.lookup(f"kps/{kp_id}/bucket", BitBucket)
        bucket.Set("k", b"v")
        assert bucket.Get("k") == b"v"
        assert kos.lookup("bitbucket").Get  # the plugin's own name is still the plugin's
        assert kos.kernel.Lookup("bitbucket")[2] != kos.kernel.Lookup(report["own"])[2]


def test_a_kp_calls_no_kernel_operation(attacked: Any) -> None:
    kernel, kp_id, report = attacked
    for attempt in ("plugins", "stop", "logpath", "submit", "kps", "kill", "register", "receive"):
        assert report[attempt][0] == "PermissionDenied", (attempt, report[attempt])
    row = kernel.plugin_row("bitbucket")
    assert row is not None and row[1] == "running"
    with kos_core.connect() as kos:
        assert [r[2] for r in kos.kernel.KPs() if r[0] == kp_id] == ["running"]


def test_with_no_policy_a_kp_looks_up_nothing(kos_kernel: KernelProcess, tmp_path: Path) -> None:
    kos_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        kp_id = submit(kos, write_kp(tmp_path, "looker", LOOKER), "Looker")
    log = kos_kernel.env.state_dir / kos_kernel.env.kernel / "logs" / f"kp-{kp_id}.log"
    line = wait_for(lambda: "refused:" in log.read_text() and log.read_text(), 10)
    assert "refused: PermissionDenied 'bitbucket' is not open to KP" in line


REPORTER = """
class Reporter:
    def __main__(self, kos):
        report(kos, "where", kos.lookup("bitbucket")._kos_sbh.split("#")[0])
"""


def test_a_kp_reaches_plugins_of_a_station_that_serves_them_over_tcp(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    kos_env.write_setup("[kp-access]\nlookup: bitbucket\n")
    kernel = start_kernel("--listen", "127.0.0.1:0")
    pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        assert kos.kernel.Lookup("bitbucket")[2].startswith("kos+tcp://127.0.0.1:")
        submit(kos, write_kp(tmp_path, "reporter", REPORTER), "Reporter")
        # the KP (no network) was given the plugin's Unix socket, and its call got there
        assert reported(kos, "where").endswith(f"/p{pid}.sock")
