"""Knowbot Programs at one station: submit, list, kill, logs, status; a KP that ends is
never restarted and keeps its exit status; none outlives its kernel.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import kos_core
from kos_core.testing import KernelProcess, descendants_of, process_ended, wait_for
from kos_helpers import Cli, assert_one_line_error
from kp_helpers import reported, row, submit, wait_ended, write_kp

STORE = """
class Store:
    def __main__(self, kos):
        report(kos, "store", {"args": kos.args, "id": kos.id, "at": time.time()})
        kos.lookup("bitbucket").Set("from-kp", b"stored by a KP")
        print("stored", flush=True)
        time.sleep(60)
"""

#: a KP that starts a child of its own, then waits
PARENT = """
class Parent:
    def __main__(self, kos):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        report(kos, "parent", {"pid": os.getpid(), "child": pid})
        time.sleep(60)
"""

ENDINGS = """
class Exits:
    def __main__(self, kos):
        print("exiting with 3", flush=True)
        raise SystemExit(3)

class Fails:
    def __main__(self, kos):
        raise RuntimeError("this KP fails")

class BadInit:
    def __init__(self):
        raise ValueError("no, thank you")
    def __main__(self, kos):
        pass
"""


def test_submit_runs_a_kp_that_stores_in_bitbucket_and_is_listed(
    station: KernelProcess, cli: Cli, tmp_path: Path
) -> None:
    path = write_kp(tmp_path, "store", STORE)
    before = time.time()
    result = cli("kp", "submit", str(path), "--", "one", "--two")
    assert result.returncode == 0, str(result)
    kp_id = result.stdout.strip()
    with kos_core.connect() as kos:
        report = reported(kos, "store")
        assert report["args"] == ["one", "--two"] and report["id"] == kp_id
        assert report["at"] >= before
        assert kos.lookup("bitbucket").Get("from-kp") == b"stored by a KP"
        found = row(kos, kp_id)
        assert found is not None and found["state"] == "running" and found["pid"] > 0
        assert found["class"] == "Store" and found["origin"] == "submitted"
    listed = cli("kp", "list", "--json")
    (entry,) = json.loads(listed.stdout)["kps"]
    assert entry["id"] == kp_id and entry["state"] == "running"
    status = cli("status", "--json")
    assert [k["id"] for k in json.loads(status.stdout)["kps"]] == [kp_id]
    assert kp_id in cli("status").stdout
    logs = wait_for(
        lambda: "stored" in cli("logs", f"kp/{kp_id}").stdout and cli("logs", f"kp/{kp_id}")
    )
    assert "confined: landlock" in logs.stdout


def test_kill_ends_the_kp_and_every_process_it_started(
    station: KernelProcess, cli: Cli, tmp_path: Path
) -> None:
    path = write_kp(tmp_path, "parent", PARENT)
    with kos_core.connect() as kos:
        kp_id = submit(kos, path, "Parent")
        pids = reported(kos, "parent")
        assert not process_ended(pids["pid"]) and not process_ended(pids["child"])
        result = cli("kp", "kill", kp_id)
        assert result.returncode == 0 and result.stdout.strip() == f"{kp_id}: ended"
        wait_for(lambda: process_ended(pids["pid"]) and process_ended(pids["child"]), 5)
        ended = row(kos, kp_id)
        assert ended is not None and ended["last_exit"] == "killed by the operator"
        assert ended["pid"] == 0
        assert kp_id not in kos.list("kps")  # its context went with it
    assert_one_line_error(cli("kp", "kill", "nosuchkp"), 1, "no KP 'nosuchkp'")


def test_an_ended_kp_is_never_restarted_and_keeps_its_exit_status(
    station: KernelProcess, tmp_path: Path
) -> None:
    path = write_kp(tmp_path, "endings", ENDINGS)
    with kos_core.connect() as kos:
        exits = submit(kos, path, "Exits")
        fails = submit(kos, path, "Fails")
        assert wait_ended(kos, exits)["last_exit"] == "exit status 3"
        assert wait_ended(kos, fails)["last_exit"] == "exit status 1"
        # Another KP runs to its end after them: by then a restart would have shown.
        later = submit(kos, path, "Exits")
        wait_ended(kos, later)
        rows = {r[0]: r for r in kos.kernel.KPs()}
        assert len(rows) == 3 and all(r[2] == "ended" and r[3] == 0 for r in rows.values())
    log = (station.env.state_dir / station.env.kernel / "logs" / f"kp-{fails}.log").read_text()
    assert "RuntimeError: this KP fails" in log
    assert log.count("confined:") == 1  # started once


def test_a_kp_that_cannot_start_is_one_clear_line(
    station: KernelProcess, cli: Cli, tmp_path: Path
) -> None:
    path = write_kp(tmp_path, "endings", ENDINGS)
    assert_one_line_error(
        cli("kp", "submit", f"{path}:BadInit"), 1, "could not start", "ValueError: no, thank you"
    )
    assert_one_line_error(cli("kp", "submit", f"{path}:Nope"), 1, "has no class 'Nope'")
    assert_one_line_error(cli("kp", "submit", str(path)), 2, "say which class")
    assert_one_line_error(cli("kp", "submit", str(tmp_path / "missing.py")), 2, "cannot read")
    assert_one_line_error(
        cli("kp", "submit", f"{path}:Exits", "--limit", "cpu=100000"), 2, "cpu=100000"
    )


def test_sigkill_of_the_kernel_leaves_no_kp_process(station: KernelProcess, tmp_path: Path) -> None:
    path = write_kp(tmp_path, "store", STORE)
    with kos_core.connect() as kos:
        kp_id = submit(kos, path, "Store")
        pid = int(row(kos, kp_id)["pid"])  # type: ignore[index]
    assert pid in descendants_of(station.pid)
    station.process.send_signal(signal.SIGKILL)
    wait_for(lambda: process_ended(pid), 5, "the KP to end with its kernel")


def test_run_kp_runs_an_object_in_this_process(station: KernelProcess) -> None:
    class Local:
        def __main__(self, kos: kos_core.Kos, ns: object = None) -> str:
            kos.lookup("bitbucket").Set("local", b"yes")
            return "ran here" if ns is None else "as a plugin"

    assert kos_core.run_kp(Local()) == "ran here"
    with kos_core.connect() as kos:
        assert kos.lookup("bitbucket").Get("local") == b"yes"
