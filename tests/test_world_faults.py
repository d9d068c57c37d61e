"""World faults: a killed or frozen kernel loses its names within the lease's TTL;
etcd down leaves local names working and fails world lookups at once; kernels rejoin
and republish by themselves (also when etcd lost its data); a name re-taken while a
kernel was cut off makes it exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from kos_core._world.layout import KernelRecord
from kos_core._world.membership import LEASE_TTL
from kos_core.errors import WorldUnavailable
from kos_core.testing import descendants_of, process_ended, wait_for
from kos_helpers import assert_one_line_error
from world_helpers import World

LOCAL_ONLY = "[bitbucket]\nexport: no\n"


def _three(world: World) -> None:
    world.start("A")
    world.start("B")
    world.start("C", setup=LOCAL_ONLY)
    for name in ("A", "B", "C"):
        world.wait_plugin(name, "bitbucket", ["bitbucket"])
    for name in ("A", "B"):
        wait_for(lambda n=name: world.names_seen_by("C", f"world/{n}") == ["bitbucket"], 10)


def test_a_killed_kernel_loses_its_names_within_the_ttl_and_leaves_no_process(
    world: World,
) -> None:
    _three(world)
    victim = world.kernels["A"]
    tree = descendants_of(victim.pid)
    assert tree, "A's plugin runs"
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    for observer in ("B", "C"):
        wait_for(
            lambda o=observer: world.names_seen_by(o) == ["B", "C"],
            LEASE_TTL + 1,
            f"A's names to vanish from {observer}",
        )
    gone = time.monotonic() - killed
    assert gone <= LEASE_TTL + 1
    wait_for(lambda: all(process_ended(pid) for pid in tree), 5, "A's plugins to end")
    print(f"names of a SIGKILLed kernel gone everywhere after {gone:.2f} s (TTL {LEASE_TTL} s)")


def test_etcd_down_local_names_work_world_lookups_fail_at_once_and_all_republish_after_data_loss(
    world: World,
) -> None:
    _three(world)
    world.etcd.stop()
    with world.client("C") as kos:
        wait_for(lambda: _unavailable(kos), 5, "C to see etcd gone")
        started = time.monotonic()
        with pytest.raises(WorldUnavailable):
            kos.lookup("world/A/bitbucket")
        assert time.monotonic() - started < 0.5  # at once, not after a timeout
        bucket = kos.lookup("bitbucket")  # local names keep working
        bucket.Set("k", b"still here")
        assert bucket.Get("k") == b"still here"
    refused = world.cli("C", "ls", "world")
    assert_one_line_error(refused, 1, "cannot be reached")
    world.etcd.wipe()  # etcd comes back having lost every key
    world.etcd.start()
    restarted = time.monotonic()
    for observer in ("A", "B", "C"):
        wait_for(
            lambda o=observer: (
                world.names_seen_by(o) == ["A", "B", "C"]
                and world.names_seen_by(o, "world/A") == ["bitbucket"]
                and world.names_seen_by(o, "world/B") == ["bitbucket"]
            ),
            10,
            f"{observer} to see every kernel again",
        )
    recovered = time.monotonic() - restarted
    print(f"world recovered {recovered:.2f} s after etcd restarted without its data")
    with world.client("C") as kos:
        kos.lookup("world/B/bitbucket").Set("k", b"after")
    for kernel in world.kernels.values():
        assert kernel.process.poll() is None


def _unavailable(kos: object) -> bool:
    try:
        kos.list("world")  # type: ignore[attr-defined]
    except WorldUnavailable:
        return True
    return False


def test_a_frozen_kernel_loses_its_names_and_republishes_when_it_runs_again(
    world: World,
) -> None:
    _three(world)
    frozen = world.kernels["A"]
    os.kill(frozen.pid, signal.SIGSTOP)  # cut off: it renews nothing
    try:
        wait_for(lambda: world.names_seen_by("C") == ["B", "C"], LEASE_TTL + 1, "A to vanish")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for(lambda: world.names_seen_by("C", "world/A") == ["bitbucket"], 10, "A to rejoin")
    assert frozen.process.poll() is None
    assert "joining again" in frozen.log()


def test_a_kernel_whose_name_was_taken_while_it_was_cut_off_exits_2(world: World) -> None:
    world.start("A")
    world.start("B", setup=LOCAL_ONLY)
    wait_for(lambda: world.names_seen_by("B") == ["A", "B"], 10, "A and B")
    frozen = world.kernels["A"]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: world.names_seen_by("B") == ["B"], LEASE_TTL + 1, "A's lease to expire")
        etcd = world.etcd_client()
        fingerprint = json.loads(etcd.get("/kos/kernels/B").value)["ca"]  # type: ignore[union-attr]
        usurper = KernelRecord("A", "elsewhere", "127.0.0.77:4000", fingerprint, 1, 0.0, 1)
        lease = etcd.grant(30)
        assert etcd.create("/kos/kernels/A", usurper.encode(), lease) is None
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert frozen.process.wait(15) == 2
    errors = [line for line in frozen.log().splitlines() if line.startswith("kos: error:")]
    assert len(errors) == 1 and "taken in the world by a kernel on host elsewhere" in errors[0]
    assert world.etcd_client().get("/kos/kernels/A") is not None  # it did not fight
