"""A world kept in a three-member etcd cluster (``etcd://H1:P1,H2:P2,H3:P3``): when the
member the kernels talk to stops, they switch to another; names stay, lookups work
again within moments, no kernel exits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kos_core.errors import KosError
from kos_core.testing import EtcdProcess, etcd_cluster, require_etcd, wait_for
from world_helpers import World

#: how long world lookups may fail after the member kernels talk to stops
SWITCH_LIMIT = 8.0
#: how long lookups must keep working to count as working again (while the cluster
#: elects a leader they may work, fail, and work again)
STEADY = 1.0


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[EtcdProcess]]:
    require_etcd()
    started = etcd_cluster(tmp_path / "etcd", 3)
    try:
        yield started
    finally:
        for member in started:
            member.kill()


def test_kernels_keep_their_names_when_the_member_they_use_stops(
    members: list[EtcdProcess], tmp_path: Path
) -> None:
    url = "etcd://" + ",".join(member.endpoint for member in members)
    (tmp_path / "world").mkdir()
    world = World(members[0], tmp_path / "world", url)
    try:
        world.start("A")
        world.start("B", setup="[bitbucket]\nexport: no\n")
        world.wait_plugin("A", "bitbucket", ["bitbucket"])
        wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "B to see A")
        lease = _lease_of_a(world)
        _make_leader(members, members[0])  # the worst case: the cluster elects another

        members[0].kill()  # the first endpoint: the one every kernel talks to
        stopped = time.monotonic()
        with world.client("B") as kos:
            since = wait_for(_Steady(kos, STEADY), SWITCH_LIMIT + STEADY, "steady lookups")
            kos.lookup("world/A/bitbucket").Set("k", b"after the switch")
        print(f"world lookups work again {since - stopped:.2f} s after the leader stopped")
        assert since - stopped < SWITCH_LIMIT
        assert _lease_of_a(world) == lease  # A's names were never lost
        world.start("C")  # joining through the remaining members works too
        wait_for(lambda: world.names_seen_by("B") == ["A", "B", "C"], 10, "B to see C")
        for name in ("A", "B"):
            assert world.kernels[name].process.poll() is None, world.kernels[name].log()
    finally:
        world.stop()


def _lease_of_a(world: World) -> int:
    record = world.etcd_client().get("/kos/kernels/A")
    assert record is not None
    return record.lease


def _make_leader(members: list[EtcdProcess], chosen: EtcdProcess) -> None:
    """Move the cluster's leadership to ``chosen`` (if another member has it)."""

    def status(member: EtcdProcess) -> dict[str, Any]:
        return dict(json.loads(member.ctl("endpoint", "status", "-w", "json"))[0]["Status"])

    own = status(chosen)
    if own["leader"] != own["header"]["member_id"]:
        leader = next(m for m in members if status(m)["header"]["member_id"] == own["leader"])
        leader.ctl("move-leader", f"{own['header']['member_id']:x}")
    wait_for(lambda: status(chosen)["leader"] == own["header"]["member_id"], 10, "the move")


class _Steady:
    """Lookups of world/A/bitbucket through ``kos``, as a :func:`wait_for` condition:
    the time they started to work, once they have worked ``seconds`` without a failure.
    """

    def __init__(self, kos: Any, seconds: float) -> None:
        self.kos = kos
        self.seconds = seconds
        self.since: float | None = None

    def __call__(self) -> float | None:
        try:
            self.kos.lookup("world/A/bitbucket")
        except KosError:
            self.since = None
            return None
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return self.since if now - self.since >= self.seconds else None
