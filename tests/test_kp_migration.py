"""KP migration between two kernels of one runtime directory: the KP's source and its
plain-data attributes travel through the stations; the old process ends once the new
one runs; a refused or failed migration leaves the KP running where it was.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import kos_core
from kos_core.errors import PermissionDenied
from kos_core.testing import (
    KernelProcess,
    KosEnv,
    StartKernel,
    descendants_of,
    process_ended,
    wait_for,
)
from kos_helpers import Cli
from kp_helpers import HOPPER, HOPPER_BLOB, reported, row, submit, wait_ended, write_kp

AWAY = "kb"

#: tries moves that must fail, then reports what each raised
STAYER = """
from kos_core.errors import MigrationError

def attempt(func):
    try:
        func()
        return ["moved", ""]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

class Stayer:
    def __init__(self):
        self.count = 1

    def __main__(self, kos):
        kernel = kos._kos.kernel
        self.things = {1, 2}  # a set is not plain data
        outcome = {"set": attempt(lambda: kos.migrate(kos.args[0]))}
        del self.things
        self.big = b"x" * (16 * 1024 * 1024 + 1)
        outcome["big"] = attempt(lambda: kos.migrate(kos.args[0]))
        del self.big
        outcome["unknown"] = attempt(lambda: kos.migrate("nosuchk"))
        outcome["self"] = attempt(lambda: kos.migrate(kos.name))
        outcome["bad_name"] = attempt(lambda: kos.migrate("../kb"))
        outcome["refused"] = attempt(lambda: kos.migrate(kos.args[0]))
        self.count += 1
        outcome.update(count=self.count, pid=os.getpid(), id=kos.id)
        report(kos, "stayer", outcome)
        time.sleep(60)
"""


StartPair = Callable[..., tuple[KernelProcess, KernelProcess]]


@pytest.fixture
def start_pair(kos_env: KosEnv, start_kernel: StartKernel) -> StartPair:
    """Start kernels ``testk`` (A) and ``kb`` (B) in one runtime directory, both running
    bitbucket and letting KPs look it up; ``start_pair(accept=False)`` makes B refuse
    incoming KPs. Both are stopped after the test.
    """

    def start(accept: bool = True) -> tuple[KernelProcess, KernelProcess]:
        kos_env.write_setup("[kp-access]\nlookup: bitbucket\n")
        if not accept:
            kos_env.write_setup("[kp-access]\naccept: no\n", layer=f"plugins.{AWAY}")
        started = [
            start_kernel(env=env, ready=False)
            for env in (kos_env, dataclasses.replace(kos_env, kernel=AWAY))
        ]
        for kernel in started:
            kernel.wait_ready()
            kernel.wait_plugin("bitbucket", services=["bitbucket"])
        return started[0], started[1]

    return start


def test_a_kp_migrates_with_its_state_and_its_old_station_keeps_nothing(
    start_pair: StartPair, cli: Cli, tmp_path: Path
) -> None:
    home, away = start_pair()
    path = write_kp(tmp_path, "hopper", HOPPER)
    with kos_core.connect() as a, kos_core.connect(AWAY) as b:
        first = submit(a, path, "Hopper", AWAY)
        there = reported(b, "away")
        went = reported(a, "home")
        assert went["id"] == first and there["id"] != first
        assert there["count"] == 2 and there["visits"] == ["testk", AWAY]
        assert there["args"] == [AWAY]
        assert there["blob"] == HOPPER_BLOB
        assert b.lookup("bitbucket").Get("hopper-tag") == b"\x00\xffkp"  # B's bitbucket
        # A keeps nothing: no process, no names, not running in its table
        ended = wait_ended(a, first)  # reaped
        assert process_ended(went["pid"]) and went["pid"] not in descendants_of(home.pid)
        assert there["pid"] in descendants_of(away.pid)
        assert ended["pid"] == 0 and ended["last_exit"] == f"migrated to {AWAY} (KP {there['id']})"
        assert first not in a.list("kps")
        assert "report-after-migrate" not in a.lookup("bitbucket").List()
        moved = row(b, there["id"])
        assert moved is not None and moved["state"] == "running"
        assert moved["origin"] == f"from testk (KP {first})" and moved["class"] == "Hopper"
        assert b.list(f"kps/{there['id']}") == []  # its name at A did not travel
        with pytest.raises(PermissionDenied, match="only a KP migrates"):
            a.kernel.MigrateKP(AWAY, b"{}")
    listed = json.loads(cli("kp", "list", "--json").stdout)["kps"]
    assert [(k["id"], k["state"]) for k in listed] == [(first, "ended")]
    # SIGKILL of the kernel it moved to leaves no KP process
    away.process.send_signal(signal.SIGKILL)
    wait_for(lambda: process_ended(there["pid"]), 5, "the KP to end with its kernel")


def test_a_kp_that_cannot_move_or_is_refused_gets_migration_error_and_stays_home(
    start_pair: StartPair, tmp_path: Path
) -> None:
    home, _ = start_pair(accept=False)
    path = write_kp(tmp_path, "stayer", STAYER)
    with kos_core.connect() as a, kos_core.connect(AWAY) as b:
        kp_id = submit(a, path, "Stayer", AWAY, limits="mem=512")
        report = reported(a, "stayer")
        assert report["set"] == [
            "MigrationError",
            "self.things is a set, not plain data (str, bytes, numbers, bool, None, lists, dicts)",
        ]
        assert report["big"][0] == "MigrationError" and "at most 16777216" in report["big"][1]
        assert report["unknown"][0] == "MigrationError"
        assert "no kernel 'nosuchk' runs in this runtime directory" in report["unknown"][1]
        assert report["self"] == ["MigrationError", "the KP already runs at kernel 'testk'"]
        assert report["bad_name"][0] == "MigrationError"
        assert report["refused"] == [
            "MigrationError",
            f"kernel '{AWAY}' accepts no KPs from other kernels ([kp-access] accept: no)",
        ]
        assert report["count"] == 2 and report["id"] == kp_id  # it went on, at home
        found = row(a, kp_id)
        assert found is not None and found["state"] == "running"
        assert found["pid"] == report["pid"] and report["pid"] in descendants_of(home.pid)
        assert b.kernel.KPs() == []  # nothing arrived at B
        assert "kps" not in b.list("")  # B made no KP context either
