"""The watched cache against a real etcd: events, compaction, etcd going away."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kos_core._net import tls
from kos_core._world import cache as cache_module
from kos_core._world.cache import WorldCache
from kos_core._world.etcd import Etcd, KeyValue, Watch
from kos_core._world.layout import KernelRecord, Layout, Name
from kos_core._world.url import WorldURL
from kos_core.errors import NameNotFound, WorldUnavailable
from kos_core.testing import EtcdProcess, wait_for

LAYOUT = Layout("/kos/")
CA = tls.fingerprint(tls.new_authority("kos world").cert_pem)
SBH = "kos+tcp://127.0.0.2:4001#token"


@pytest.fixture
def client(etcd: EtcdProcess) -> Etcd:
    return Etcd(WorldURL.parse(etcd.url))


@pytest.fixture
def cache(client: Etcd) -> Iterator[WorldCache]:
    made = WorldCache(client, LAYOUT, CA)
    try:
        yield made
    finally:
        made.stop()


def _join(client: Etcd, kernel: str = "A", port: int = 4000) -> int:
    lease = client.grant(10)
    record = KernelRecord(kernel, "host", f"127.0.0.2:{port}", CA, 1, 0.0, 1)
    client.put(LAYOUT.kernel_key(kernel), record.encode(), lease)
    return lease


def test_the_cache_follows_puts_and_deletes(client: Etcd, cache: WorldCache) -> None:
    lease = _join(client)
    cache.start()
    assert cache.wait_live(5)
    assert list(cache.kernels()) == ["A"]
    client.put(LAYOUT.name_key("A", "bb"), Name("BitBucketAPI.BitBucket", SBH).encode(), lease)
    wait_for(lambda: "bb" in cache.names("A"), 5, "the new name")
    assert cache.lookup(["A", "bb"]) == Name("BitBucketAPI.BitBucket", SBH)
    client.delete(LAYOUT.name_key("A", "bb"))
    wait_for(lambda: cache.names("A") == {}, 5, "the name to go")
    with pytest.raises(NameNotFound):
        cache.lookup(["A", "bb"])


def test_a_watch_cancelled_by_compaction_lists_again_and_watches_on(
    client: Etcd,
    cache: WorldCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lease = _join(client)
    for i in range(5):
        client.put(LAYOUT.name_key("A", f"n{i}"), Name("T.T", SBH).encode(), lease)
    revision, _ = client.range_prefix("/kos/")
    client.call("kv/compaction", {"revision": revision, "physical": True})
    real = client.range_prefix
    calls: list[int] = []

    def first_stale(prefix: str) -> tuple[int, list[KeyValue]]:
        # The first list answers as if read before the compaction (as when a cache
        # falls behind): the watch from there must be cancelled as compacted.
        now, kvs = real(prefix)
        calls.append(now)
        return (1 if len(calls) == 1 else now), kvs

    monkeypatch.setattr(client, "range_prefix", first_stale)
    with caplog.at_level(logging.INFO, logger="kos.world"):
        cache.start()
        wait_for(lambda: len(calls) >= 2 and cache.wait_live(0.1), 10, "a second list")
    assert "compacted to" in caplog.text
    client.put(LAYOUT.name_key("A", "later"), Name("T.T", SBH).encode(), lease)
    wait_for(lambda: "later" in cache.names("A"), 5, "a name put after the new watch")
    assert len(cache.names("A")) == 6


def test_the_cache_is_unavailable_at_once_when_etcd_goes_and_lists_again_when_it_is_back(
    etcd: EtcdProcess, client: Etcd, cache: WorldCache
) -> None:
    _join(client)
    cache.start()
    assert cache.wait_live(5)
    etcd.stop()
    wait_for(lambda: not cache.wait_live(0), 5, "the watch to break")
    with pytest.raises(WorldUnavailable, match="cannot be reached"):
        cache.kernels()
    etcd.start()
    _join(Etcd(WorldURL.parse(etcd.url)), "B", 4100)
    wait_for(lambda: cache.wait_live(0) and "B" in cache.kernels(), 10, "the cache to be back")


def test_each_change_of_a_name_is_reported_once_also_across_a_new_list(client: Etcd) -> None:
    changes: list[tuple[str, str, str, str]] = []
    cache = WorldCache(client, LAYOUT, CA, lambda *change: changes.append(change))
    try:
        lease = _join(client)
        client.put(LAYOUT.name_key("A", "old"), Name("T.Old", SBH).encode(), lease)
        cache.start()
        assert cache.wait_live(5)
        assert changes == [("bind", "A", "old", "T.Old")]  # from the first list
        client.put(LAYOUT.name_key("A", "bb"), Name("T.T", SBH).encode(), lease)
        wait_for(lambda: len(changes) == 2, 5, "the bind")
        client.put(LAYOUT.name_key("A", "bb"), Name("T.T", SBH).encode(), lease)  # same value
        client.put(LAYOUT.name_key("A", "bb"), Name("T.New", SBH).encode(), lease)
        wait_for(lambda: len(changes) == 4, 5, "the change")
        assert changes[1:] == [
            ("bind", "A", "bb", "T.T"),
            ("unbind", "A", "bb", "T.T"),
            ("bind", "A", "bb", "T.New"),
        ]
        # While the cache is cut off, a name goes; the next list reports it gone.
        cache.set_reachable(False)
        wait_for(lambda: not cache.wait_live(0), 5, "the watch to close")
        client.delete(LAYOUT.name_key("A", "old"))
        cache.set_reachable(True)
        wait_for(lambda: len(changes) == 5, 5, "the unbind found by the new list")
        assert changes[4] == ("unbind", "A", "old", "T.Old")
        assert cache.wait_live(5)
        assert cache.names("A").keys() == {"bb"}
    finally:
        cache.stop()


def test_a_watch_that_falls_silent_is_found_out_and_replaced(
    client: Etcd, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lease = _join(client)
    real_watch = client.watch
    watches: list[str] = []

    def first_silent(prefix: str, start_revision: int) -> Watch:
        # The first watch is a real stream that never carries this world's changes:
        # as silent as a stalled gateway watch, and as open.
        watches.append(prefix)
        return real_watch("/elsewhere/" if len(watches) == 1 else prefix, start_revision)

    monkeypatch.setattr(client, "watch", first_silent)
    monkeypatch.setattr(cache_module, "CHECK", 0.2)
    cache = WorldCache(client, LAYOUT, CA)
    try:
        with caplog.at_level(logging.WARNING, logger="kos.world"):
            cache.start()
            assert cache.wait_live(5)
            assert not cache.check_progress()  # nothing missing yet
            client.put(LAYOUT.name_key("A", "bb"), Name("T.T", SBH).encode(), lease)
            wait_for(lambda: "bb" in cache.names("A"), 10, "the name, after a new list")
        assert len(watches) == 2
        assert "the watch fell silent" in caplog.text
    finally:
        cache.stop()
