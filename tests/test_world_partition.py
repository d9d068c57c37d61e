"""A kernel cut off from etcd by the network (its own network namespace, its link
taken down) loses its names elsewhere within the TTL, fails its own world lookups,
keeps its local names, and rejoins by itself when the link returns.

The test makes its own namespace and veth pair with addresses in 10.213.0.0/16 and
touches nothing else; both are removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kos_core._world.membership import LEASE_TTL
from kos_core.errors import WorldUnavailable
from kos_core.testing import EtcdProcess, require, require_etcd, wait_for
from kos_helpers import CLI, run
from world_helpers import World


@dataclass
class Netns:
    """A network namespace joined to this one by a veth pair."""

    name: str
    host_link: str
    host_ip: str
    ns_ip: str

    @property
    def exec_prefix(self) -> list[str]:
        """Run a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def link(self, up: bool) -> None:
        """Take this side of the pair down (the namespace is cut off) or up."""
        _ip("link", "set", self.host_link, "up" if up else "down")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Netns]:
    require(
        os.geteuid() == 0 and shutil.which("ip") is not None,
        "the partition test needs root and iproute2 to make a network namespace",
    )
    tag = os.getpid() % 10000
    subnet = f"10.213.{os.getpid() % 250}"
    space = Netns(f"kos-test-{tag}", f"kt{tag}h", f"{subnet}.1", f"{subnet}.2")
    inner = f"kt{tag}n"
    try:
        _ip("netns", "add", space.name)
        _ip("link", "add", space.host_link, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", space.name)
        _ip("addr", "add", f"{space.host_ip}/24", "dev", space.host_link)
        _ip("link", "set", space.host_link, "up")
        _ip("-n", space.name, "addr", "add", f"{space.ns_ip}/24", "dev", inner)
        _ip("-n", space.name, "link", "set", inner, "up")
        _ip("-n", space.name, "link", "set", "lo", "up")
        yield space
    finally:
        subprocess.run(["ip", "netns", "del", space.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", space.host_link], capture_output=True, timeout=10)


@pytest.fixture
def far_etcd(netns: Netns) -> Iterator[EtcdProcess]:
    """etcd on this side of the veth pair, where the namespace reaches it."""
    require_etcd()
    base = Path(tempfile.mkdtemp(prefix="kos-etcd-"))
    server = EtcdProcess(base / "data", host=netns.host_ip)
    try:
        yield server.start()
    finally:
        server.kill()
        shutil.rmtree(base, ignore_errors=True)


def test_a_kernel_cut_off_by_the_network_loses_its_names_and_recovers(
    netns: Netns, far_etcd: EtcdProcess, tmp_path: Path
) -> None:
    world = World(far_etcd, tmp_path)
    try:
        world.start("A", host=netns.ns_ip, prefix=netns.exec_prefix)
        world.start("B", setup="[bitbucket]\nexport: no\n")
        world.wait_plugin("A", "bitbucket", ["bitbucket"])
        wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "A's names")
        with world.client("B") as kos:
            kos.lookup("world/A/bitbucket").Set("k", b"across the link")
        netns.link(False)
        try:
            wait_for(lambda: world.names_seen_by("B") == ["B"], LEASE_TTL + 1, "A to vanish")
            with world.client("A") as kos:
                wait_for(lambda: _unavailable(kos), LEASE_TTL, "A to see it is cut off")
            env = {**os.environ, **world.envs["A"].environ()}
            local = run(  # a client on A's host: local names keep working
                [*netns.exec_prefix, *CLI, "call", "bitbucket", "Get", "k"],
                env=env,
                cwd=tmp_path,
                timeout=30,
            )
            assert (local.returncode, local.stdout.strip()) == (0, "across the link"), local
        finally:
            netns.link(True)
        wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 15, "A's return")
        with world.client("A") as kos:
            wait_for(lambda: kos.list("world") == ["A", "B"], 10, "A to see the world again")
        assert world.kernels["A"].process.poll() is None
    finally:
        world.stop()


def _unavailable(kos: object) -> bool:
    try:
        kos.list("world")  # type: ignore[attr-defined]
    except WorldUnavailable:
        return True
    return False
