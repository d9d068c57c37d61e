"""Hostile values in etcd are ignored with a log line: they never crash a kernel nor
redirect a client.
"""

from __future__ import annotations

import json

from kos_core._world.layout import KernelRecord, Name
from kos_core.testing import wait_for
from world_helpers import World


def test_garbage_huge_and_misdirecting_values_are_ignored_and_logged(world: World) -> None:
    world.start("A")
    world.start("B", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "A's bitbucket")
    etcd = world.etcd_client()
    a_record = json.loads(etcd.get("/kos/kernels/A").value)  # type: ignore[union-attr]
    a_sbh = json.loads(etcd.get("/kos/names/A/bitbucket").value)["sbh"]  # type: ignore[union-attr]
    lease = etcd.grant(60)
    # a record pointing at A's address, as if it were another kernel
    thief = KernelRecord("X", "thief", a_record["address"], a_record["ca"], 1, 0.0, 1)
    etcd.put("/kos/kernels/X", thief.encode(), lease)
    etcd.put("/kos/names/X/bitbucket", Name("BitBucketAPI.BitBucket", a_sbh).encode(), lease)
    # a name under A's path that A did not write, pointing at another host
    etcd.put(
        "/kos/names/A/evil",
        Name("BitBucketAPI.BitBucket", "kos+tcp://127.0.0.66:1#t").encode(),
        lease,
    )
    etcd.put("/kos/kernels/garbage", b"\xff\x00 not json", lease)
    etcd.put("/kos/names/A/huge", b"x" * 300_000, lease)
    etcd.put("/kos/kernels/bad name!", b"{}", lease)
    etcd.put("/kos/elsewhere", b"?", lease)
    etcd.put("/kos/kernels/Z", b'{"name": "Z"}', lease)
    kernel_b = world.kernels["B"]
    wait_for(lambda: kernel_b.log().count("world: ignoring") >= 7, 10, "B to log the values")
    assert world.names_seen_by("B") == ["A", "B"]
    assert world.names_seen_by("B", "world/A") == ["bitbucket"]
    with world.client("B") as kos:
        kos.lookup("world/A/bitbucket").Set("k", b"v")  # still A's, still reachable
    log = kernel_b.log()
    assert "claims address" in log and "not JSON" in log and "300000 bytes" in log
    assert "/kos/names/A/evil" in log
    assert "Traceback" not in log
    for kernel in world.kernels.values():
        assert kernel.process.poll() is None
