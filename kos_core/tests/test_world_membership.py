"""A kernel's lease against a real etcd: how refusals and silence are told apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kos_core._world import membership
from kos_core._world.etcd import Etcd
from kos_core._world.etcd_errors import EtcdRefused
from kos_core._world.layout import KernelRecord, Layout
from kos_core._world.membership import Membership
from kos_core._world.url import WorldURL
from kos_core.errors import WorldUnavailable
from kos_core.testing import EtcdProcess, wait_for

LAYOUT = Layout("/kos/")
TTL = 3


class FlakyEtcd(Etcd):
    """A real etcd whose keep-alives fail as told: etcd's own overload reply ("request
    timed out") cannot be produced on demand, so it is raised here, where kos's
    client would raise it.
    """

    def __init__(self, url: WorldURL) -> None:
        super().__init__(url)
        self.failure: type[WorldUnavailable] | None = None
        self.keepalives = 0
        self.failed = 0
        #: how many keep-alives had failed at each reachability change
        self.failed_at_change: list[int] = []

    def keepalive(self, lease: int) -> int:
        self.keepalives += 1
        if self.failure is not None:
            self.failed += 1
            raise self.failure("etcd refused lease/keepalive: request timed out")
        return super().keepalive(lease)


@pytest.fixture
def joined(etcd: EtcdProcess) -> Iterator[tuple[FlakyEtcd, Membership, list[bool]]]:
    """A kernel's membership, and each reachability change it reported."""
    client = FlakyEtcd(WorldURL.parse(etcd.url))
    changes: list[bool] = []
    lock = threading.Lock()

    def reachable(flag: bool) -> None:
        with lock:
            changes.append(flag)
            client.failed_at_change.append(client.failed)

    record = KernelRecord("A", "host", "127.0.0.2:4000", "ca", 1, time.time(), 1)
    member = Membership(
        client, LAYOUT, record, on_joined=lambda lease: None, on_reachable=reachable, ttl=TTL
    )
    member.join()
    try:
        yield client, member, changes
    finally:
        member.leave()


def test_an_overloaded_etcd_keeps_the_kernel_reachable_while_its_lease_surely_holds(
    joined: tuple[FlakyEtcd, Membership, list[bool]],
) -> None:
    client, member, changes = joined
    assert changes == [True]
    wait_for(lambda: client.keepalives >= 1, 5, "a first keep-alive")
    client.failure = EtcdRefused
    refused_at = time.monotonic()
    wait_for(lambda: changes[-1] is False, TTL + 2, "the kernel to give up on its lease")
    waited = time.monotonic() - refused_at
    # refused keep-alives were retried, and the kernel stayed reachable meanwhile
    assert client.failed_at_change[-1] >= 3
    assert waited >= TTL * membership.BUSY_GRACE - TTL / 3 - 0.1
    client.failure = None
    wait_for(lambda: changes[-1] is True, 5, "the kernel reachable again")
    assert member.lease != 0


def test_silence_makes_the_kernel_unreachable_at_the_first_failed_keepalive(
    joined: tuple[FlakyEtcd, Membership, list[bool]],
) -> None:
    client, _member, changes = joined
    wait_for(lambda: client.keepalives >= 1, 5, "a first keep-alive")
    client.failure = WorldUnavailable
    wait_for(lambda: changes[-1] is False, TTL, "the kernel to be unreachable")
    assert client.failed_at_change[-1] == 1  # no grace
